-- How the redaction of requested records (20261123009400) finds a record's audit rows. Built concurrently,
-- alone in its file (the CLI runs such a file outside a transaction): a plain build blocks every org's
-- audited writes for the whole build. If the build fails it leaves an invalid index that `if not exists`
-- would skip: drop it before pushing again.
create index concurrently if not exists audit_log_record_idx on public.audit_log (org_id, table_name, record_id);
