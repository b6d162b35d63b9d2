-- How deleting a user (20261123009400) finds the calendar connections they made in the audit log. Built
-- concurrently, alone in its file, as 20261123009700.
create index concurrently if not exists audit_log_calendar_connector_idx on public.audit_log ((new_values ->> 'connected_by'))
  where table_name = 'calendar_connections';
