-- calendar_connections.org_id was the only foreign key without an index usable by its cascade: the two unique
-- keys starting with org_id are partial (account_subject null / not null), so an org's deletion read every
-- tenant's connections on Postgres 15/17, which have no skip scan (found by an index review). The table is small
-- (a row per connected calendar), so a plain build holds its writes only briefly.
create index if not exists calendar_connections_org_id_idx on public.calendar_connections (org_id);
