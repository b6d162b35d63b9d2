-- Data export, account deletion and organization deletion
-- (20261123001600_settings_billing_deletion.sql): only owners export, one at
-- a time; the step API (claim, rows, progress, finish) never returns another
-- org's rows; progress on the owners-only exports channel; export.ready;
-- the exports bucket; delete_account (sole owners refused with the org's
-- name; others leave every org, then the service role deletes the user);
-- delete_organization (owners, confirmed by name; every row of the org goes,
-- other orgs stay, the deletion is recorded and audited; the files to
-- remove are listed).
begin;
create extension if not exists pgtap with schema extensions;

select plan(47);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@export.test')),
  ('admin_a', tests.create_user('admin-a@export.test')),
  ('member_a', tests.create_user('member-a@export.test')),
  ('owner_b', tests.create_user('owner-b@export.test')),
  ('co_owner_b', tests.create_user('co-owner-b@export.test')),
  ('ops', tests.create_user('ops@export.test', '{"platform_admin": true}'));
select tests.remember('org_a', tests.create_org('export-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('export-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_b'), tests.fx('member_a'), 'viewer');

-- Data in both orgs: bots, conversations, messages, documents with a chunk,
-- calls with a transcript segment, usage, a product, files.
insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'A bot', 'export-a-bot'), (tests.fx('org_b'), 'B bot', 'export-b-bot');
insert into public.conversations (org_id, bot_id, channel) select org_id, id, 'web' from public.bots where slug like 'export-%-bot';
insert into public.messages (org_id, conversation_id, role, content)
select c.org_id, c.id, r::public.message_role, 'hello ' || r from public.conversations c join public.bots b on b.id = c.bot_id and b.slug like 'export-%-bot'
cross join unnest(array['user', 'assistant']) r;
insert into public.documents (org_id, name, mime_type, size_bytes, storage_path, status, progress)
select o, 'doc.txt', 'text/plain', 10, o || '/export/doc.txt', 'ready', 100 from unnest(array[tests.fx('org_a'), tests.fx('org_b')]) o;
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
select d.org_id, d.id, 0, 1, 1, 'chunk', 1, array_fill(0.1::real, array[1536])::extensions.vector
from public.documents d where d.org_id in (tests.fx('org_a'), tests.fx('org_b'));
insert into public.calls (org_id, direction, status, started_at) select o, 'inbound', 'in_progress', now()
from unnest(array[tests.fx('org_a'), tests.fx('org_b')]) o;
insert into public.call_transcript_segments (org_id, call_id, seq, speaker, text, start_ms, end_ms)
select c.org_id, c.id, 0, 'user', 'hi', 0, 10 from public.calls c where c.org_id in (tests.fx('org_a'), tests.fx('org_b'));
insert into public.usage_events (org_id, kind, model, tokens_in)
select o, 'chat', 'offline', 5 from unnest(array[tests.fx('org_a'), tests.fx('org_b')]) o;
insert into public.products (org_id, name, price) select o, 'thing', 1 from unnest(array[tests.fx('org_a'), tests.fx('org_b')]) o;
insert into storage.objects (bucket_id, name, metadata)
select b, o || '/' || b || '/file.bin', '{"size": 1}'
from unnest(array[tests.fx('org_a'), tests.fx('org_b')]) o cross join unnest(array['knowledge', 'recordings']) b;

-- ---------------------------------------------------------------------------
-- Export: who may, one at a time
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select throws_ok($$select public.request_data_export(tests.fx('org_a'))$$, '42501',
  'you do not have the data.export permission in this organization', 'export: a member cannot export');
select tests.act_as('admin_a');
select throws_ok($$select public.request_data_export(tests.fx('org_a'))$$, '42501', null, 'export: an admin cannot export either');
select tests.act_as('owner_a');
select tests.remember('export_a', (public.request_data_export(tests.fx('org_a'))).id);
select results_eq(
  $$select status::text, progress_percent::int, storage_prefix, tables[1], cursor ->> 'table', requested_by from public.data_exports where id = tests.fx('export_a')$$,
  $$values ('queued', 0, tests.fx('org_a') || '/exports/' || tests.fx('export_a') || '/', 'organizations', 'organizations', tests.fx('owner_a'))$$,
  'export: an owner''s request is queued, with its Storage prefix and tables'
);
select throws_ok($$select public.request_data_export(tests.fx('org_a'))$$, '23505',
  'an export of this organization is already in progress', 'export: one at a time per org');
select tests.act_as('owner_b');
select lives_ok($$select public.request_data_export(tests.fx('org_b'))$$, 'export: other orgs are not held up');
select tests.act_as('admin_a');
select is((select count(*)::int from public.data_exports), 0, 'export: admins do not see exports');

-- ---------------------------------------------------------------------------
-- Export: the steps (service role)
-- ---------------------------------------------------------------------------

select tests.act_as('owner_a');
select throws_ok($$select private.export_rows(tests.fx('export_a'), 'memberships', null, 10)$$, '42501', null,
  'export steps: not callable by signed-in users');
select tests.act_as('service_role');
select throws_ok($$select private.export_rows(tests.fx('export_a'), 'memberships', null, 10)$$, '22023', 'the export is queued, not running',
  'export rows: only for a claimed (running) export');
select is((private.claim_export_step(tests.fx('export_a'))).status::text, 'running', 'claim: the export is running');
select is(private.claim_export_step(tests.fx('export_a')), null, 'claim: not twice while the lease runs');
select results_eq(
  $$select row_key, row_data ->> 'slug' from private.export_rows(tests.fx('export_a'), 'organizations', null, 10)$$,
  $$values (tests.fx('org_a')::text, 'export-org-a')$$,
  'export rows: the organizations row is the org''s own'
);
select is(
  (select array_agg(row_key order by row_key collate "C") from private.export_rows(tests.fx('export_a'), 'memberships', null, 10)),
  (select array_agg(user_id::text order by user_id::text collate "C") from public.memberships where org_id = tests.fx('org_a')),
  'export rows: memberships of the org only (member_a''s viewer seat in B is not there), in key order'
);
select is(
  (select array_agg(r.row_key) from private.export_rows(tests.fx('export_a'), 'memberships', null, 1) first_page
   cross join lateral private.export_rows(tests.fx('export_a'), 'memberships', first_page.row_key, 10) r),
  (select (array_agg(user_id::text order by user_id::text collate "C"))[2:] from public.memberships where org_id = tests.fx('org_a')),
  'export rows: after_key resumes after the last key'
);
select is(
  (select count(*)::int from unnest((select tables from public.data_exports where id = tests.fx('export_a'))) t(name)
   cross join lateral private.export_rows(tests.fx('export_a'), t.name, null, 5000) r
   where r.row_data ->> 'org_id' = tests.fx('org_b')::text or r.row_data ->> 'id' = tests.fx('org_b')::text),
  0,
  'export rows: no table of the export returns a row of another org'
);
select cmp_ok(
  (select count(*)::int from unnest((select tables from public.data_exports where id = tests.fx('export_a'))) t(name)
   cross join lateral private.export_rows(tests.fx('export_a'), t.name, null, 5000) r),
  '>=', 12,
  'export rows: the org''s own rows are all there (org, members, settings, subscription, bot, conversation, messages, document, call, segment, usage, product, audit...)'
);
select is(
  (select count(*)::int from private.export_rows(tests.fx('export_a'), 'messages', null, 5000)), 2,
  'export rows: bigint keys page in numeric order (the org''s two messages)');
select throws_ok($$select private.export_rows(tests.fx('export_a'), 'profiles', null, 10)$$, '22023', 'not a table of this export: profiles',
  'export rows: only the fixed list of tables');
select throws_ok($$select private.export_rows(tests.fx('export_a'), 'messages', 'x; drop table public.bots', 10)$$, '22023', null,
  'export rows: a key is a key');
select results_eq(
  $$select progress_percent::int, cursor ->> 'table', lease_until from private.record_export_progress(tests.fx('export_a'), '{"table": "messages", "after": null, "part": 1}', 40)$$,
  $$values (40, 'messages', null::timestamptz)$$,
  'progress: the cursor and percent are stored and the lease released'
);
select is((private.record_export_progress(tests.fx('export_a'), '{"table": "messages"}', 10)).progress_percent::int, 40, 'progress: never goes back');
select throws_ok($$select private.record_export_progress(tests.fx('export_a'), '{"table": "secrets"}', 50)$$, '22023', null,
  'progress: the cursor names a table of the export');
select tests.act_as('postgres');
select is(
  (select count(*)::int from realtime.messages where topic = 'org:' || tests.fx('org_a') || ':exports'
     and payload -> 'record' ->> 'id' = tests.fx('export_a')::text),
  4, 'export: requested, running and each progress change are broadcast on the org''s exports channel'
);
select tests.act_as('service_role');
select is((private.finish_export(tests.fx('export_a'), true, null)).status::text, 'ready', 'finish: the export is ready');
select throws_ok($$select private.finish_export(tests.fx('export_a'), false, 'late')$$, '22023', 'the export is already ready',
  'finish: only once');
select tests.act_as('postgres');
select results_eq(
  $$select count(*)::int, min(payload ->> 'storage_prefix') from public.events where org_id = tests.fx('org_a') and type = 'export.ready'$$,
  $$values (1, tests.fx('org_a') || '/exports/' || tests.fx('export_a') || '/')$$,
  'export.ready: emitted once, with the prefix'
);
select ok((select expires_at > now() + interval '6 days' and finished_at is not null from public.data_exports where id = tests.fx('export_a')),
  'finish: a ready export expires in 7 days');
select tests.act_as('owner_a');
select lives_ok($$select public.request_data_export(tests.fx('org_a'))$$, 'export: a new one once the last is over');

-- The exports bucket and channel: owners only.
select tests.act_as('postgres');
insert into storage.objects (bucket_id, name, metadata)
values ('exports', tests.fx('org_a') || '/exports/' || tests.fx('export_a') || '/bots.json', '{"size": 2}');
select tests.act_as('owner_a');
select is((select count(*)::int from storage.objects where bucket_id = 'exports'), 1, 'exports bucket: the owner reads the files');
select tests.act_as('admin_a');
select is((select count(*)::int from storage.objects where bucket_id = 'exports'), 0, 'exports bucket: an admin does not');
select set_config('realtime.topic', 'org:' || tests.fx('org_a') || ':exports', true);
select is((select count(*)::int from realtime.messages where topic = realtime.topic()), 0, 'exports channel: an admin receives nothing');
select tests.act_as('owner_a');
select set_config('realtime.topic', 'org:' || tests.fx('org_a') || ':exports', true);
select cmp_ok((select count(*)::int from realtime.messages where topic = realtime.topic()), '>', 0, 'exports channel: the owner receives');

-- ---------------------------------------------------------------------------
-- Account deletion
-- ---------------------------------------------------------------------------

select tests.act_as('owner_b');
select throws_ok($$select public.delete_account()$$, '23514',
  'you are the only owner of "Export-Org-B": transfer ownership or delete the organization first',
  'delete_account: the sole owner of an org is refused, with the org''s name');
select tests.act_as('member_a');
select lives_ok($$select public.delete_account()$$, 'delete_account: a member deletes their account');
select tests.act_as('postgres');
select is((select count(*)::int from public.memberships where user_id = tests.fx('member_a')), 0, 'delete_account: every membership is gone');
select tests.act_as('service_role');
select ok(private.delete_user(tests.fx('member_a')), 'delete_user: the service role deletes the auth user');
select tests.act_as('postgres');
select results_eq(
  $$select (select count(*)::int from auth.users where id = tests.fx('member_a')), (select count(*)::int from public.user_settings where user_id = tests.fx('member_a')),
           (select count(*)::int from public.profiles where user_id = tests.fx('member_a'))$$,
  $$values (0, 0, 0)$$,
  'delete_user: the user, their settings and profile are gone'
);
-- A co-owner makes ownership shared: then the owner may go.
select tests.add_member(tests.fx('org_b'), tests.fx('co_owner_b'), 'owner');
select tests.act_as('service_role');
select ok(private.delete_user(tests.fx('owner_b')), 'delete_user: an owner with a co-owner may go');

-- ---------------------------------------------------------------------------
-- Organization deletion
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select throws_ok($$select public.delete_organization(tests.fx('org_a'), 'Export-Org-A')$$, '42501',
  'you do not have the org.delete permission in this organization', 'delete_organization: an admin cannot');
select tests.act_as('owner_a');
select throws_ok($$select public.delete_organization(tests.fx('org_a'), 'export-org-a')$$, '22023',
  'type the organization''s name exactly to confirm: Export-Org-A', 'delete_organization: the name must match exactly');
select lives_ok($$select public.delete_organization(tests.fx('org_a'), 'Export-Org-A')$$, 'delete_organization: the owner deletes it, confirmed by name');

select tests.act_as('postgres');
create function pg_temp.org_rows(org uuid) returns bigint language plpgsql as $$
declare t record; n bigint; total bigint := 0;
begin
  for t in select c.relname from pg_class c join pg_namespace ns on ns.oid = c.relnamespace
    where ns.nspname = 'public' and c.relkind in ('r', 'p') and c.relname <> 'audit_log'
      and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped)
  loop
    execute format('select count(*) from public.%I where org_id = $1', t.relname) into n using org;
    total := total + n;
  end loop;
  return total + (select count(*) from public.organizations where id = org);
end;
$$;
select is(pg_temp.org_rows(tests.fx('org_a')), 0::bigint, 'delete_organization: no row of the org is left in any org table');
select cmp_ok(pg_temp.org_rows(tests.fx('org_b')), '>', 10::bigint, 'delete_organization: another org keeps its rows');
select results_eq(
  $$select name, deleted_by, (row_counts ->> 'messages')::int, (row_counts ->> 'documents')::int, storage_objects from private.deleted_organizations where org_id = tests.fx('org_a')$$,
  $$values ('Export-Org-A', tests.fx('owner_a'), 2, 1, 3)$$,
  'delete_organization: the deletion record (who, what, how many) survives the org'
);
select results_eq(
  $$select actor_user_id, new_values is null from public.audit_log where org_id = tests.fx('org_a') and table_name = 'organizations' and action = 'delete'$$,
  $$values (tests.fx('owner_a'), true)$$,
  'delete_organization: the audit chain records who deleted the org'
);
select tests.act_as('service_role');
select is((select valid from public.verify_audit_chain(tests.fx('org_a'))), true, 'delete_organization: the org''s audit chain stays intact');
select results_eq(
  $$select bucket_id, name from private.org_storage_objects(tests.fx('org_a'))$$,
  $$values ('exports', tests.fx('org_a') || '/exports/' || tests.fx('export_a') || '/bots.json'),
           ('knowledge', tests.fx('org_a') || '/knowledge/file.bin'), ('recordings', tests.fx('org_a') || '/recordings/file.bin')$$,
  'delete_organization: the org''s files in every org bucket are listed for removal (and only its own)'
);
select is(private.finish_org_storage_removal(tests.fx('org_a')), 3, 'storage removal: not recorded while files are left');

select * from finish();
rollback;
