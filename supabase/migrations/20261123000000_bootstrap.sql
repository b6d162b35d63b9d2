-- Extensions the project relies on, in the `extensions` schema as Supabase
-- recommends (the advisors flag extensions installed in `public`).
create extension if not exists vector with schema extensions;
create extension if not exists pg_trgm with schema extensions;
