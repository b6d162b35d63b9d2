-- How a user's deletion finds the documents they created, to lock them before their orgs' rows
-- (private.lock_orgs_of_user, 20261123009600) and to set their created_by to null. Built concurrently, alone
-- in its file, as 20261123009700: a plain build blocks every upload and ingest step until the file commits.
create index concurrently if not exists documents_created_by_idx on public.documents (created_by);
