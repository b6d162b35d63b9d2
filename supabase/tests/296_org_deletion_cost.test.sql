-- Deleting an organization without auditing its cascade row by row (20261123012100_org_deletion_cost.sql):
-- delete_organization still removes every row and records the deletion, the org's own deletion and its final
-- invoice stay audited and kept, but the rows its cascade removes or sets null are neither audited one by one
-- nor broadcast; the marker it sets skips nothing for a live org's own deletes, nor for the service role's
-- direct delete of an org.
begin;
create extension if not exists pgtap with schema extensions;

select plan(17);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@odc296.test')),
  ('owner_b', tests.create_user('owner-b@odc296.test'));
select tests.remember('org_a', tests.create_org('odc296-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('odc296-org-b', tests.fx('owner_b')));
select tests.remember('org_c', tests.create_org('odc296-org-c', tests.fx('owner_b')));

-- In each org: a bot, conversations with messages, calls (some with their conversation), an appointment of a
-- call and a document of an upload batch (the cascade sets their call and batch null before it deletes them).
insert into public.bots (org_id, name, slug)
select o, 'odc296 bot', 'odc296-bot-' || right(o::text, 12)
from unnest(array[tests.fx('org_a'), tests.fx('org_b'), tests.fx('org_c')]) o;
insert into public.conversations (org_id, bot_id, channel)
select b.org_id, b.id, 'web' from public.bots b cross join generate_series(1, 4) where b.slug like 'odc296-bot-%';
insert into public.messages (org_id, conversation_id, role, content)
select c.org_id, c.id, 'user', 'odc296 hello ' || g
from public.conversations c join public.bots b on b.id = c.bot_id and b.slug like 'odc296-bot-%'
cross join generate_series(1, 3) g;
insert into public.calls (org_id, direction, status, started_at, conversation_id, bot_id)
select b.org_id, 'inbound', 'in_progress', now(), c.id, b.id
from public.bots b left join public.conversations c on c.bot_id = b.id
where b.slug like 'odc296-bot-%';
insert into public.calls (org_id, direction, status, started_at)
select o, 'inbound', 'in_progress', now() from unnest(array[tests.fx('org_a'), tests.fx('org_b'), tests.fx('org_c')]) o;
insert into public.appointments (org_id, starts_at, ends_at, attendee_name, attendee_email, source, call_id)
select c.org_id, now() + interval '3 days', now() + interval '3 days 30 minutes', 'Odc Attendee', 'attendee@odc296.test',
  'staff', c.id
from (select distinct on (org_id) org_id, id from public.calls
      where org_id in (tests.fx('org_a'), tests.fx('org_b'), tests.fx('org_c')) order by org_id, id) c;
with batches as (
  insert into public.upload_batches (org_id)
  select o from unnest(array[tests.fx('org_a'), tests.fx('org_b'), tests.fx('org_c')]) o returning id, org_id
)
insert into public.documents (org_id, name, mime_type, size_bytes, storage_path, status, progress, batch_id)
select org_id, 'odc296.txt', 'text/plain', 10, org_id || '/odc296/doc.txt', 'ready', 100, id from batches;

create temp table counts_before as
select o.id as org_id,
  (select count(*) from public.calls c where c.org_id = o.id)::int as calls,
  (select count(*) from public.conversations c where c.org_id = o.id)::int as conversations,
  (select count(*) from public.messages m where m.org_id = o.id)::int as messages,
  (select coalesce(max(a.seq), 0) from public.audit_log a where a.org_id = o.id) as last_seq,
  (select count(*) from realtime.messages m where m.topic like 'org:' || o.id || ':%')::int as broadcasts
from public.organizations o where o.id in (tests.fx('org_a'), tests.fx('org_b'), tests.fx('org_c'));
grant select on counts_before to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- delete_organization: everything goes, the cascade unaudited and unbroadcast
-- ---------------------------------------------------------------------------

select tests.act_as('owner_a');
select lives_ok(
  format($$select public.delete_organization(%L, %L)$$, tests.fx('org_a'),
    (select o.name from public.organizations o where o.id = tests.fx('org_a'))),
  'the owner deletes an org with calls, conversations, messages, an appointment and a document');
select is(pg_catalog.current_setting('private.deleting_org', true), '', 'the marker is cleared once the org is gone');
-- The redaction runs at the commit (a deferred trigger); the test's transaction is rolled back, so it asks
-- for it now.
set constraints public.organizations_redact_audit_log immediate;
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
select is(pg_temp.org_rows(tests.fx('org_a')), 0::bigint, 'no row of the deleted org is left in any org table');
select results_eq(
  $$select d.deleted_by, (d.row_counts ->> 'calls')::int, (d.row_counts ->> 'conversations')::int,
           (d.row_counts ->> 'messages')::int, (d.row_counts ->> 'appointments')::int, (d.row_counts ->> 'documents')::int
    from private.deleted_organizations d where d.org_id = tests.fx('org_a')$$,
  $$select tests.fx('owner_a'), b.calls, b.conversations, b.messages, 1, 1 from counts_before b where b.org_id = tests.fx('org_a')$$,
  'the deletion is recorded with who and the rows of each table'
);
select results_eq(
  $$select actor_user_id, count(*)::int from public.audit_log
    where org_id = tests.fx('org_a') and table_name = 'organizations' and action = 'delete' group by actor_user_id$$,
  $$values (tests.fx('owner_a'), 1)$$,
  'the org''s own deletion is audited once, with the deleting owner'
);
select is_empty(
  $$select a.table_name, a.action from public.audit_log a
    where a.org_id = tests.fx('org_a') and a.seq > (select b.last_seq from counts_before b where b.org_id = tests.fx('org_a'))
      and a.table_name not in ('organizations', 'subscriptions', 'invoices', 'invoice_lines', 'audit_log')$$,
  'no row the cascade removed or changed is audited one by one (only the final invoice, the org and the redaction)'
);
select results_eq(
  $$select a.table_name, a.action, a.actor_user_id from public.audit_log a
    where a.org_id = tests.fx('org_a') and a.seq > (select b.last_seq from counts_before b where b.org_id = tests.fx('org_a'))
      and a.table_name <> 'audit_log' order by a.seq$$,
  $$values ('subscriptions', 'update', tests.fx('owner_a')), ('organizations', 'delete', tests.fx('owner_a'))$$,
  'the subscription''s cancellation (before the org row goes) and the org''s deletion are all the deletion audits'
);
select is_empty(
  $$select seq from public.audit_log where org_id = tests.fx('org_a') and table_name <> 'audit_log'
    and (old_values is not null or new_values is not null or redacted_at is null)$$,
  'every audit row of the deleted org is redacted at the commit'
);
select tests.act_as('service_role');
select is((select valid from public.verify_audit_chain(tests.fx('org_a'))), true, 'the deleted org''s audit chain verifies');
select tests.act_as('postgres');
select is(
  (select count(*)::int from realtime.messages m where m.topic like 'org:' || tests.fx('org_a') || ':%'),
  (select b.broadcasts from counts_before b where b.org_id = tests.fx('org_a')),
  'the deletion broadcasts nothing for the rows its cascade deletes or sets null'
);

-- ---------------------------------------------------------------------------
-- The marker set through an API session skips nothing
-- ---------------------------------------------------------------------------

select tests.act_as('owner_b');
select is(pg_catalog.set_config('private.deleting_org', tests.fx('org_b')::text, true), tests.fx('org_b')::text,
  'a user can set the marker for their own org (set_config is open to every role)');
select lives_ok(
  format($$delete from public.bots where id = %L$$,
    (select b.id from public.bots b where b.slug = 'odc296-bot-' || right(tests.fx('org_b')::text, 12))),
  'the owner deletes their bot with the marker set');
select tests.act_as('postgres');
select results_eq(
  $$select a.table_name, a.action, a.actor_user_id, count(distinct a.record_id)::int from public.audit_log a
    where a.org_id = tests.fx('org_b') and a.seq > (select b.last_seq from counts_before b where b.org_id = tests.fx('org_b'))
      and a.table_name in ('bots', 'calls', 'conversations') group by 1, 2, 3 order by 1, 2$$,
  $$values ('bots', 'delete', tests.fx('owner_b'), 1), ('calls', 'update', tests.fx('owner_b'), 4),
           ('conversations', 'delete', tests.fx('owner_b'), 4)$$,
  'the bot''s deletion, its conversations'' and the set-null of its calls are audited all the same'
);
select cmp_ok(
  (select count(*)::int from realtime.messages m where m.topic like 'org:' || tests.fx('org_b') || ':%'),
  '>',
  (select b.broadcasts from counts_before b where b.org_id = tests.fx('org_b')),
  'and its calls'' changes are broadcast all the same (the org is live)'
);

-- The service role's direct delete of an org with the marker set: the marker is cleared, every row audited.
select tests.act_as('service_role');
select pg_catalog.set_config('private.deleting_org', tests.fx('org_c')::text, true);
select lives_ok(format($$delete from public.organizations where id = %L$$, tests.fx('org_c')),
  'the service role deletes an org directly with the marker set');
select is(pg_catalog.current_setting('private.deleting_org', true), '', 'its delete cleared the marker');
select tests.act_as('postgres');
select results_eq(
  $$select count(*)::int from public.audit_log a
    where a.org_id = tests.fx('org_c') and a.table_name = 'calls' and a.action = 'delete'
      and a.seq > (select b.last_seq from counts_before b where b.org_id = tests.fx('org_c'))$$,
  $$select b.calls from counts_before b where b.org_id = tests.fx('org_c')$$,
  'that deletion audits each of its calls, as before'
);

select * from finish();
rollback;
