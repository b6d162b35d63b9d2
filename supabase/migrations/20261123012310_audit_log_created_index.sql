-- How an org's audit log is listed newest first (`order by created_at desc limit 50`): without it a page
-- scanned and sorted every row of the org (0.25 s at 123,000 rows, about 10 s at 5M). Built concurrently,
-- alone in its file: a plain build blocks every org's audited writes for the whole build.
create index concurrently if not exists audit_log_org_created_idx on public.audit_log (org_id, created_at desc);
