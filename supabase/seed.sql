-- Demo data for local runs only (`npm start`, `npm run db:reset`, `supabase db reset`).
-- Users sign in with local tokens (`npm run token -- <email>`); the password hash is a placeholder.
insert into auth.users (id, instance_id, aud, role, email, encrypted_password, email_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values
  ('00000000-0000-4000-8000-000000000001', '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
   'owner@acme.test', '', now(), '{"provider": "email", "providers": ["email"]}', '{"display_name": "Olivia Owner"}', now(), now()),
  ('00000000-0000-4000-8000-000000000002', '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
   'admin@acme.test', '', now(), '{"provider": "email", "providers": ["email"]}', '{"display_name": "Adam Admin"}', now(), now()),
  ('00000000-0000-4000-8000-000000000003', '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
   'member@acme.test', '', now(), '{"provider": "email", "providers": ["email"]}', '{"display_name": "Mia Member"}', now(), now()),
  ('00000000-0000-4000-8000-000000000004', '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
   'viewer@acme.test', '', now(), '{"provider": "email", "providers": ["email"]}', '{"display_name": "Victor Viewer"}', now(), now()),
  ('00000000-0000-4000-8000-000000000005', '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
   'owner@globex.test', '', now(), '{"provider": "email", "providers": ["email"]}', '{"display_name": "Gary Globex"}', now(), now()),
  ('00000000-0000-4000-8000-000000000006', '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
   'ops@platform.test', '', now(), '{"provider": "email", "providers": ["email"], "platform_admin": true}', '{"display_name": "Pat Platform"}', now(), now());

-- Two demo tenants: Acme with one member of each role, Globex with its owner.
insert into public.organizations (id, name, slug, created_by) values
  ('00000000-0000-4000-9000-00000000000a', 'Acme', 'acme', '00000000-0000-4000-8000-000000000001'),
  ('00000000-0000-4000-9000-00000000000b', 'Globex', 'globex', '00000000-0000-4000-8000-000000000005');
insert into public.memberships (org_id, user_id, role) values
  ('00000000-0000-4000-9000-00000000000a', '00000000-0000-4000-8000-000000000001', 'owner'),
  ('00000000-0000-4000-9000-00000000000a', '00000000-0000-4000-8000-000000000002', 'admin'),
  ('00000000-0000-4000-9000-00000000000a', '00000000-0000-4000-8000-000000000003', 'member'),
  ('00000000-0000-4000-9000-00000000000a', '00000000-0000-4000-8000-000000000004', 'viewer'),
  ('00000000-0000-4000-9000-00000000000b', '00000000-0000-4000-8000-000000000005', 'owner');
