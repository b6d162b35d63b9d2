-- The isolation matrix: for every table and view the API exposes, what
-- select, insert, update and delete do for anon, the service role, each org
-- role, the owner of another org, and a platform admin.
--
-- Outcomes:
--   select  'all'  the actor sees every fixture row the statement targets
--           'none' the actor sees none of them (RLS filters them)
--           'some:N' only N of them
--   writes  'rows:N' the statement changed N rows (0 = RLS filtered the target)
--   any     'denied' SQLSTATE 42501 (no privilege, or a row refused by a policy)
--           'error:<sqlstate>' anything else
-- Every statement targets org A's fixture rows and runs in a subtransaction
-- that is rolled back, so cases do not affect each other.
--
-- The matrix must name every relation in an exposed schema with all four
-- actions: a new table or view without its rows here fails this file.
begin;
create extension if not exists pgtap with schema extensions;

-- ---------------------------------------------------------------------------
-- Fixture: org A with one member of each role, org B with its owner, a
-- platform admin, and a user without a profile (for profile inserts).
-- ---------------------------------------------------------------------------

create temp table fixture (key text primary key, id uuid not null);
insert into fixture values
  ('owner', tests.create_user('iso-owner@a.test')),
  ('admin', tests.create_user('iso-admin@a.test')),
  ('member', tests.create_user('iso-member@a.test')),
  ('viewer', tests.create_user('iso-viewer@a.test')),
  ('other_owner', tests.create_user('iso-owner@b.test')),
  ('platform_admin', tests.create_user('iso-ops@platform.test', '{"platform_admin": true}')),
  ('loner', tests.create_user('iso-loner@c.test'));
delete from public.profiles where user_id = (select id from fixture where key = 'loner');

insert into fixture values
  ('org_a', tests.create_org('iso-a', (select id from fixture where key = 'owner'))),
  ('org_b', tests.create_org('iso-b', (select id from fixture where key = 'other_owner')));
select tests.add_member((select id from fixture where key = 'org_a'), (select id from fixture where key = k), k::public.org_role)
from unnest(array['admin', 'member', 'viewer']) k;

insert into public.invitations (org_id, email, role, expires_at)
select id, 'iso-invitee@' || key || '.test', 'member', now() + interval '7 days'
from fixture where key in ('org_a', 'org_b');
insert into fixture select 'invitation_a', i.id from public.invitations i where i.email = 'iso-invitee@org_a.test';

insert into public.api_keys (org_id, name, prefix, scopes)
select id, 'iso key', 'ak_0000000' || right(key, 1), array['chat.write']
from fixture where key in ('org_a', 'org_b');
insert into fixture select 'api_key_a', k.id from public.api_keys k where k.prefix = 'ak_0000000a';

insert into public.webhook_endpoints (org_id, url)
select id, 'https://hooks.example.com/' || key from fixture where key in ('org_a', 'org_b');
insert into fixture select 'endpoint_a', e.id from public.webhook_endpoints e where e.url = 'https://hooks.example.com/org_a';
insert into fixture select 'event_a', private.emit_event(
  (select id from fixture where key = 'org_a'), 'document.failed',
  jsonb_build_object('document_id', gen_random_uuid(), 'name', 'a.pdf', 'reason', 'probe'));
insert into fixture select 'delivery_a', d.id from public.webhook_deliveries d where d.event_id = (select id from fixture where key = 'event_a');
insert into public.webhook_attempts (org_id, delivery_id, endpoint_id, attempt_number, url, started_at, duration_ms, status_code, outcome)
select (select id from fixture where key = 'org_a'), (select id from fixture where key = 'delivery_a'),
       (select id from fixture where key = 'endpoint_a'), 1, 'https://hooks.example.com/org_a', now(), 12, 500, 'failed';

with created as (
  insert into public.projects (org_id, name) select id, 'iso project' from fixture where key = 'org_a' returning id
) insert into fixture select 'project_a', id from created;
with created as (
  insert into public.collections (org_id, name) select id, 'iso collection' from fixture where key = 'org_a' returning id
) insert into fixture select 'collection_a', id from created;
with created as (
  insert into public.upload_batches (org_id, project_id, collection_id)
  select (select id from fixture where key = 'org_a'), (select id from fixture where key = 'project_a'),
         (select id from fixture where key = 'collection_a')
  returning id
) insert into fixture select 'batch_a', id from created;
with created as (
  insert into public.documents (org_id, batch_id, collection_id, name, mime_type, size_bytes, storage_path, status, progress)
  select (select id from fixture where key = 'org_a'), (select id from fixture where key = 'batch_a'),
         (select id from fixture where key = 'collection_a'), 'iso.txt', 'text/plain', 12,
         (select id from fixture where key = 'org_a') || '/iso/iso.txt', 'ready', 100
  returning id
) insert into fixture select 'document_a', id from created;
insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
select (select id from fixture where key = 'org_a'), (select id from fixture where key = 'document_a'),
       (select id from fixture where key = 'collection_a'), 0, 1, 1, 'isolation probe', 2,
       array_fill(0.1::real, array[1536])::extensions.vector;
insert into public.usage_events (org_id, kind, model, tokens_in)
select id, 'embedding', 'offline-lexical', 2 from fixture where key = 'org_a';

-- Bots and chat (both orgs): a bot answering from a collection of its own,
-- a conversation with a message; every org has its free subscription.
insert into public.bots (org_id, name, slug) select id, 'iso bot', 'iso-bot' from fixture where key in ('org_a', 'org_b');
insert into fixture select 'bot_a', b.id from public.bots b where b.org_id = (select id from fixture where key = 'org_a');
insert into fixture select 'bot_b', b.id from public.bots b where b.org_id = (select id from fixture where key = 'org_b');
insert into public.collections (org_id, name) select id, 'iso bot collection' from fixture where key in ('org_a', 'org_b');
insert into public.bot_collections (bot_id, collection_id, org_id)
select b.id, c.id, b.org_id from public.bots b join public.collections c on c.org_id = b.org_id and c.name = 'iso bot collection'
where b.slug = 'iso-bot';
insert into public.conversations (org_id, bot_id, channel) select org_id, id, 'web' from public.bots where slug = 'iso-bot';
insert into fixture select 'conversation_a', c.id from public.conversations c where c.org_id = (select id from fixture where key = 'org_a');
insert into public.messages (org_id, conversation_id, role, content) select org_id, id, 'user', 'isolation probe' from public.conversations
where bot_id in (select id from fixture where key in ('bot_a', 'bot_b'));
insert into fixture select 'subscription_a', s.id from public.subscriptions s
where s.org_id = (select id from fixture where key = 'org_a') and s.status = 'active';

-- Settings, invoices and exports (org A, 20261123001600): the org's settings
-- row and every user's settings exist already; an invoice with its plan line
-- and an export, written as the table owner.
with created as (
  insert into public.invoices (org_id, period_start, period_end, plan_id, currency, subtotal_cents, total_cents)
  select id, date '2026-01-01', date '2026-02-01', 'free', 'USD', 0, 0 from fixture where key = 'org_a' returning id
) insert into fixture select 'invoice_a', id from created;
insert into public.invoice_lines (invoice_id, org_id, position, kind, description, quantity, unit, unit_price_cents, amount_cents)
select (select id from fixture where key = 'invoice_a'), (select id from fixture where key = 'org_a'), 1, 'plan', 'Free plan, January 2026', 1, 'month', 0, 0;
with created as (
  insert into public.data_exports (id, org_id, tables, storage_prefix)
  select g, o.id, array['organizations'], o.id || '/exports/' || g || '/' from fixture o cross join gen_random_uuid() g where o.key = 'org_a'
  returning id
) insert into fixture select 'export_a', id from created;

-- Catalog (both orgs): a category with a product.
insert into public.catalog_categories (org_id, name) select id, 'iso category' from fixture where key in ('org_a', 'org_b');
insert into fixture select 'category_a', c.id from public.catalog_categories c where c.org_id = (select id from fixture where key = 'org_a');
insert into public.products (org_id, category_id, name, price)
select org_id, id, 'iso product', 1 from public.catalog_categories where name = 'iso category';
insert into fixture select 'product_a', p.id from public.products p where p.org_id = (select id from fixture where key = 'org_a');

-- Voice calls (org A): business hours, a campaign, an inbound call made by
-- its first provider event (with a transcript segment and the raw event),
-- and a provider row (no secret needed here).
insert into public.business_hours (org_id, weekday, opens, closes) select id, 1, '09:00', '17:00' from fixture where key = 'org_a';
insert into fixture select 'business_hours_a', h.id from public.business_hours h where h.org_id = (select id from fixture where key = 'org_a');
insert into public.call_campaigns (org_id, name) select id, 'iso campaign' from fixture where key = 'org_a';
insert into fixture select 'campaign_a', c.id from public.call_campaigns c where c.org_id = (select id from fixture where key = 'org_a');
insert into fixture select 'call_a', (private.apply_call_event((select id from fixture where key = 'org_a'),
  '{"event_id": "iso-1", "provider": "vapi", "type": "call.transcript", "provider_call_id": "iso-call",
    "occurred_at": "2026-11-23T10:00:00Z", "transcript": [{"speaker": "user", "text": "hello", "start_ms": 0, "end_ms": 10}]}',
  '{}') ->> 'call_id')::uuid;
insert into public.call_providers (org_id, provider, secret_created_at) select id, 'vapi', now() from fixture where key = 'org_a';
-- Call feedback (org A, 20261123001210): the member's rating of the call, and
-- a second call for the insert probes.
insert into public.call_feedback (org_id, call_id, user_id, rating)
select (select id from fixture where key = 'org_a'), (select id from fixture where key = 'call_a'), (select id from fixture where key = 'member'), 4;
insert into fixture select 'feedback_a', f.id from public.call_feedback f where f.call_id = (select id from fixture where key = 'call_a');
with created as (
  insert into public.calls (org_id, direction, status, started_at) select id, 'inbound', 'ended', now() from fixture where key = 'org_a' returning id
) insert into fixture select 'feedback_call_a', id from created;

-- Calendar (org A, 20261123001400): a connected calendar, a closure and an
-- appointment, written as the table owner.
insert into public.calendar_connections (org_id, provider, account_email, external_calendar_id)
select id, 'google', 'iso-calendar@example.com', 'primary' from fixture where key = 'org_a';
insert into fixture select 'calendar_connection_a', c.id from public.calendar_connections c where c.org_id = (select id from fixture where key = 'org_a');
insert into public.business_closures (org_id, during, reason)
select id, tstzrange(now() + interval '30 days', now() + interval '31 days'), 'iso closure' from fixture where key = 'org_a';
insert into fixture select 'closure_a', c.id from public.business_closures c where c.org_id = (select id from fixture where key = 'org_a');
insert into public.appointments (org_id, starts_at, ends_at, attendee_name, attendee_email, source)
select id, now() + interval '40 days', now() + interval '40 days 30 minutes', 'Iso Attendee', 'iso@example.com', 'staff' from fixture where key = 'org_a';
insert into fixture select 'appointment_a', a.id from public.appointments a where a.org_id = (select id from fixture where key = 'org_a');

-- ---------------------------------------------------------------------------
-- The matrix. One row per relation and action: the statement (placeholders
-- {key} are fixture ids) and the expected outcome per actor.
-- ---------------------------------------------------------------------------

create temp table matrix (
  relation text, action text, statement text,
  anon text, service_role text, owner text, admin text, member text, viewer text, other_owner text, platform_admin text
);
insert into matrix values
  -- organizations: members read; admins rename; creation only via create_organization(), deletion only via
  -- delete_organization() (20261123010400).
  ('public.organizations', 'select', $$select count(*) from public.organizations where id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'none', 'all'),
  ('public.organizations', 'insert', $$insert into public.organizations (name, slug) values ('Probe', 'iso-probe')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.organizations', 'update', $$update public.organizations set name = 'Renamed' where id = '{org_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0'),
  ('public.organizations', 'delete', $$delete from public.organizations where id = '{org_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- memberships: members read; written only by the team RPCs (definer code).
  ('public.memberships', 'select', $$select count(*) from public.memberships where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'none', 'all'),
  ('public.memberships', 'insert', $$insert into public.memberships (org_id, user_id, role) values ('{org_a}', '{other_owner}', 'member')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.memberships', 'update', $$update public.memberships set role = 'admin' where org_id = '{org_a}' and user_id = '{member}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.memberships', 'delete', $$delete from public.memberships where org_id = '{org_a}' and user_id = '{member}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- profiles: co-members read each other's; each user edits only their own; created with the user.
  ('public.profiles', 'select', $$select count(*) from public.profiles where user_id in ('{owner}', '{admin}', '{member}', '{viewer}')$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'none', 'all'),
  ('public.profiles', 'insert', $$insert into public.profiles (user_id) values ('{loner}')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.profiles', 'update', $$update public.profiles set display_name = 'Renamed' where user_id = '{member}'$$,
   'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:1', 'rows:0', 'rows:0', 'rows:0'),
  ('public.profiles', 'delete', $$delete from public.profiles where user_id = '{member}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- invitations: admins read; written only by the invitation RPCs.
  ('public.invitations', 'select', $$select count(*) from public.invitations where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'none', 'none', 'none', 'all'),
  ('public.invitations', 'insert', $$insert into public.invitations (org_id, email, role, expires_at) values ('{org_a}', 'iso-new@a.test', 'member', now() + interval '1 day')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.invitations', 'update', $$update public.invitations set role = 'admin' where id = '{invitation_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.invitations', 'delete', $$delete from public.invitations where id = '{invitation_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- api_keys: admins read (never a secret); written only by create_api_key()/revoke_api_key().
  ('public.api_keys', 'select', $$select count(*) from public.api_keys where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'none', 'none', 'none', 'all'),
  ('public.api_keys', 'insert', $$insert into public.api_keys (org_id, name, prefix, scopes) values ('{org_a}', 'probe', 'ak_12345678', array['chat.write'])$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.api_keys', 'update', $$update public.api_keys set name = 'renamed' where id = '{api_key_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.api_keys', 'delete', $$delete from public.api_keys where id = '{api_key_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- api_key_scopes: the scope catalogue, read by signed-in users, changed only by migrations.
  ('public.api_key_scopes', 'select', $$select count(*) from public.api_key_scopes$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'all', 'all'),
  ('public.api_key_scopes', 'insert', $$insert into public.api_key_scopes (scope, description) values ('probe.scope', 'probe')$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.api_key_scopes', 'update', $$update public.api_key_scopes set description = 'changed'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.api_key_scopes', 'delete', $$delete from public.api_key_scopes$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- role_permissions: the permissions matrix, read by signed-in users, changed only by migrations.
  ('public.role_permissions', 'select', $$select count(*) from public.role_permissions$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'all', 'all'),
  ('public.role_permissions', 'insert', $$insert into public.role_permissions (permission, min_role, description) values ('probe.perm', 'viewer', 'probe')$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.role_permissions', 'update', $$update public.role_permissions set min_role = 'viewer'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.role_permissions', 'delete', $$delete from public.role_permissions$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- event_types: the event catalogue, read by signed-in users, changed only by migrations.
  ('public.event_types', 'select', $$select count(*) from public.event_types$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'all', 'all'),
  ('public.event_types', 'insert', $$insert into public.event_types (type, description, schema) values ('probe.event', 'probe', '{}')$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.event_types', 'update', $$update public.event_types set description = 'changed'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.event_types', 'delete', $$delete from public.event_types where type = 'webhook.test'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- events: members and up read; written only through private.emit_event(), by anyone.
  ('public.events', 'select', $$select count(*) from public.events where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.events', 'insert', $$insert into public.events (org_id, type, payload) values ('{org_a}', 'member.joined', '{}')$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.events', 'update', $$update public.events set payload = '{}' where id = '{event_a}'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.events', 'delete', $$delete from public.events where id = '{event_a}'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- webhook_endpoints: members and up read (no secret is stored here); admins write through the webhooks function.
  ('public.webhook_endpoints', 'select', $$select count(*) from public.webhook_endpoints where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.webhook_endpoints', 'insert', $$insert into public.webhook_endpoints (org_id, url) values ('{org_a}', 'https://hooks.example.com/new')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.webhook_endpoints', 'update', $$update public.webhook_endpoints set description = 'changed' where id = '{endpoint_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.webhook_endpoints', 'delete', $$delete from public.webhook_endpoints where id = '{endpoint_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- webhook_deliveries: members and up read; the dispatcher and the management functions write.
  ('public.webhook_deliveries', 'select', $$select count(*) from public.webhook_deliveries where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.webhook_deliveries', 'insert', $$insert into public.webhook_deliveries (org_id, endpoint_id, event_id) values ('{org_a}', '{endpoint_a}', '{event_a}')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.webhook_deliveries', 'update', $$update public.webhook_deliveries set status = 'canceled', next_attempt_at = null where id = '{delivery_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.webhook_deliveries', 'delete', $$delete from public.webhook_deliveries where id = '{delivery_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- webhook_attempts: members and up read; the dispatcher writes.
  ('public.webhook_attempts', 'select', $$select count(*) from public.webhook_attempts where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.webhook_attempts', 'insert', $$insert into public.webhook_attempts (org_id, delivery_id, endpoint_id, attempt_number, url, started_at, duration_ms, outcome) values ('{org_a}', '{delivery_a}', '{endpoint_a}', 2, 'https://x.example', now(), 1, 'failed')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.webhook_attempts', 'update', $$update public.webhook_attempts set error = 'changed' where delivery_id = '{delivery_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.webhook_attempts', 'delete', $$delete from public.webhook_attempts where delivery_id = '{delivery_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- projects and collections: viewers read, members create and rename, admins delete.
  ('public.projects', 'select', $$select count(*) from public.projects where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'none', 'all'),
  ('public.projects', 'insert', $$insert into public.projects (org_id, name) values ('{org_a}', 'iso new')$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'denied', 'denied', 'denied'),
  ('public.projects', 'update', $$update public.projects set name = 'renamed' where id = '{project_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0'),
  ('public.projects', 'delete', $$delete from public.projects where id = '{project_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0'),
  ('public.collections', 'select', $$select count(*) from public.collections where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'none', 'all'),
  ('public.collections', 'insert', $$insert into public.collections (org_id, name) values ('{org_a}', 'iso new')$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'denied', 'denied', 'denied'),
  ('public.collections', 'update', $$update public.collections set name = 'renamed' where id = '{collection_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0'),
  ('public.collections', 'delete', $$delete from public.collections where id = '{collection_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0'),

  -- upload_batches and documents: viewers read; written through create_upload_batch() and the ingest function.
  ('public.upload_batches', 'select', $$select count(*) from public.upload_batches where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'none', 'all'),
  ('public.upload_batches', 'insert', $$insert into public.upload_batches (org_id) values ('{org_a}')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.upload_batches', 'update', $$update public.upload_batches set project_id = null where id = '{batch_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.upload_batches', 'delete', $$delete from public.upload_batches where id = '{batch_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.documents', 'select', $$select count(*) from public.documents where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'none', 'all'),
  ('public.documents', 'insert', $$insert into public.documents (org_id, name, mime_type, size_bytes, storage_path) values ('{org_a}', 'n.txt', 'text/plain', 1, '{org_a}/iso/n.txt')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.documents', 'update', $$update public.documents set name = 'renamed.txt' where id = '{document_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.documents', 'delete', $$delete from public.documents where id = '{document_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.upload_batch_progress', 'select', $$select count(*) from public.upload_batch_progress where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'none', 'all'),
  ('public.upload_batch_progress', 'insert', $$insert into public.upload_batch_progress (batch_id) values ('{batch_a}')$$,
   'error:55000', 'error:55000', 'error:55000', 'error:55000', 'error:55000', 'error:55000', 'error:55000', 'error:55000'),
  ('public.upload_batch_progress', 'update', $$update public.upload_batch_progress set files = 0$$,
   'error:55000', 'error:55000', 'error:55000', 'error:55000', 'error:55000', 'error:55000', 'error:55000', 'error:55000'),
  ('public.upload_batch_progress', 'delete', $$delete from public.upload_batch_progress$$,
   'error:55000', 'error:55000', 'error:55000', 'error:55000', 'error:55000', 'error:55000', 'error:55000', 'error:55000'),

  -- document_chunks: viewers read (search); only ingestion writes.
  ('public.document_chunks', 'select', $$select count(*) from public.document_chunks where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'none', 'all'),
  ('public.document_chunks', 'insert', $$insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding) values ('{org_a}', '{document_a}', 9, 1, 1, 'x', 1, array_fill(0.2::real, array[1536])::extensions.vector)$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.document_chunks', 'update', $$update public.document_chunks set content = 'changed' where document_id = '{document_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.document_chunks', 'delete', $$delete from public.document_chunks where document_id = '{document_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- usage_events: admins and platform admins read; functions write through private.record_usage().
  ('public.usage_events', 'select', $$select count(*) from public.usage_events where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'none', 'none', 'none', 'all'),
  ('public.usage_events', 'insert', $$insert into public.usage_events (org_id, kind, model) values ('{org_a}', 'chat', 'probe')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.usage_events', 'update', $$update public.usage_events set tokens_in = 0 where org_id = '{org_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.usage_events', 'delete', $$delete from public.usage_events where org_id = '{org_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- chat_models and plans: catalogues read by signed-in users, changed only by migrations.
  ('public.chat_models', 'select', $$select count(*) from public.chat_models$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'all', 'all'),
  ('public.chat_models', 'insert', $$insert into public.chat_models (id, provider, display_name, context_window, max_output_tokens) values ('probe', 'openai', 'Probe', 10, 10)$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.chat_models', 'update', $$update public.chat_models set enabled = false$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.chat_models', 'delete', $$delete from public.chat_models where id = 'gpt-4.1'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.plans', 'select', $$select count(*) from public.plans$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'all', 'all'),
  ('public.plans', 'insert', $$insert into public.plans (id, name, monthly_chat_tokens, monthly_embedding_tokens, monthly_call_minutes, max_documents, price_cents) values ('probe', 'Probe', 1, 1, 1, 1, 0)$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.plans', 'update', $$update public.plans set price_cents = 0$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.plans', 'delete', $$delete from public.plans where id = 'business'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- bots and bot_collections: members read; admins create, change and delete (links are added and removed, not edited).
  ('public.bots', 'select', $$select count(*) from public.bots where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.bots', 'insert', $$insert into public.bots (org_id, name, slug) values ('{org_a}', 'iso new', 'iso-new')$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'denied', 'denied', 'denied', 'denied'),
  ('public.bots', 'update', $$update public.bots set name = 'renamed' where id = '{bot_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0'),
  ('public.bots', 'delete', $$delete from public.bots where id = '{bot_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0'),
  ('public.bot_collections', 'select', $$select count(*) from public.bot_collections where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.bot_collections', 'insert', $$insert into public.bot_collections (bot_id, collection_id, org_id) values ('{bot_a}', '{collection_a}', '{org_a}')$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'denied', 'denied', 'denied', 'denied'),
  ('public.bot_collections', 'update', $$update public.bot_collections set created_at = now() where bot_id = '{bot_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.bot_collections', 'delete', $$delete from public.bot_collections where bot_id = '{bot_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0'),

  -- conversations and messages: members read; written only by the chat functions (definer code).
  ('public.conversations', 'select', $$select count(*) from public.conversations where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.conversations', 'insert', $$insert into public.conversations (org_id, bot_id, channel) values ('{org_a}', '{bot_a}', 'api')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.conversations', 'update', $$update public.conversations set status = 'closed', closed_at = now() where id = '{conversation_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.conversations', 'delete', $$delete from public.conversations where id = '{conversation_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.messages', 'select', $$select count(*) from public.messages where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.messages', 'insert', $$insert into public.messages (org_id, conversation_id, role, content) values ('{org_a}', '{conversation_a}', 'assistant', 'probe')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.messages', 'update', $$update public.messages set content = 'changed' where conversation_id = '{conversation_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.messages', 'delete', $$delete from public.messages where conversation_id = '{conversation_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- subscriptions: admins read (billing.read); written by the platform only.
  ('public.subscriptions', 'select', $$select count(*) from public.subscriptions where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'none', 'none', 'none', 'all'),
  ('public.subscriptions', 'insert', $$insert into public.subscriptions (org_id, plan_id, status, current_period_start, current_period_end, canceled_at) values ('{org_a}', 'pro', 'canceled', now() - interval '1 month', now(), now())$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.subscriptions', 'update', $$update public.subscriptions set plan_id = 'pro' where id = '{subscription_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.subscriptions', 'delete', $$delete from public.subscriptions where id = '{subscription_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- org_settings: members read (settings.read, not viewers); admins change (settings.manage); one row per org, made with its first member.
  ('public.org_settings', 'select', $$select count(*) from public.org_settings where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.org_settings', 'insert', $$insert into public.org_settings (org_id) values ('{org_a}') on conflict (org_id) do nothing$$,
   'denied', 'rows:0', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.org_settings', 'update', $$update public.org_settings set voice = 'probe' where org_id = '{org_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0'),
  ('public.org_settings', 'delete', $$delete from public.org_settings where org_id = '{org_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- user_settings: each user reads and changes only their own row (made with the user).
  ('public.user_settings', 'select', $$select count(*) from public.user_settings where user_id = '{member}'$$,
   'denied', 'all', 'none', 'none', 'all', 'none', 'none', 'none'),
  ('public.user_settings', 'insert', $$insert into public.user_settings (user_id) values ('{loner}') on conflict (user_id) do nothing$$,
   'denied', 'rows:0', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.user_settings', 'update', $$update public.user_settings set email_notifications = false where user_id = '{member}'$$,
   'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:1', 'rows:0', 'rows:0', 'rows:0'),
  ('public.user_settings', 'delete', $$delete from public.user_settings where user_id = '{member}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- plan_overage_prices: a catalogue read by signed-in users, changed only by migrations.
  ('public.plan_overage_prices', 'select', $$select count(*) from public.plan_overage_prices$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'all', 'all'),
  ('public.plan_overage_prices', 'insert', $$insert into public.plan_overage_prices (plan_id, metric, unit, price_cents_per_unit) values ('free', 'documents', 'document', 1) on conflict do nothing$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.plan_overage_prices', 'update', $$update public.plan_overage_prices set price_cents_per_unit = 0$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.plan_overage_prices', 'delete', $$delete from public.plan_overage_prices where plan_id = 'business'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- invoices and invoice_lines: owners, admins and platform admins read (billing.read); written by private.generate_invoices only.
  ('public.invoices', 'select', $$select count(*) from public.invoices where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'none', 'none', 'none', 'all'),
  ('public.invoices', 'insert', $$insert into public.invoices (org_id, period_start, period_end, plan_id, currency, subtotal_cents, total_cents) values ('{org_a}', '2026-02-01', '2026-03-01', 'free', 'USD', 0, 0)$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.invoices', 'update', $$update public.invoices set status = 'void' where id = '{invoice_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.invoices', 'delete', $$delete from public.invoices where id = '{invoice_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.invoice_lines', 'select', $$select count(*) from public.invoice_lines where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'none', 'none', 'none', 'all'),
  ('public.invoice_lines', 'insert', $$insert into public.invoice_lines (invoice_id, org_id, position, kind, metric, description, quantity, unit, unit_price_cents, amount_cents) values ('{invoice_a}', '{org_a}', 2, 'overage', 'call_minutes', 'probe', 1, 'minute', 1, 1)$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.invoice_lines', 'update', $$update public.invoice_lines set description = 'changed' where invoice_id = '{invoice_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.invoice_lines', 'delete', $$delete from public.invoice_lines where invoice_id = '{invoice_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- data_exports: owners only read (data.export; not platform admins, 20261123006700); written by request_data_export and the export steps only.
  ('public.data_exports', 'select', $$select count(*) from public.data_exports where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'none', 'none', 'none', 'none', 'none'),
  ('public.data_exports', 'insert', $$insert into public.data_exports (id, org_id, status, error, finished_at, tables, storage_prefix) values ('00000000-0000-4000-8000-00000000e001', '{org_a}', 'failed', 'probe', now(), '{}', '{org_a}/exports/00000000-0000-4000-8000-00000000e001/')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.data_exports', 'update', $$update public.data_exports set progress_percent = 5 where id = '{export_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.data_exports', 'delete', $$delete from public.data_exports where id = '{export_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- catalog_categories and products: viewers read; members create, change and delete.
  ('public.catalog_categories', 'select', $$select count(*) from public.catalog_categories where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'none', 'all'),
  ('public.catalog_categories', 'insert', $$insert into public.catalog_categories (org_id, name) values ('{org_a}', 'iso new')$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'denied', 'denied', 'denied'),
  ('public.catalog_categories', 'update', $$update public.catalog_categories set name = 'renamed' where id = '{category_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0'),
  ('public.catalog_categories', 'delete', $$delete from public.catalog_categories where id = '{category_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0'),
  ('public.products', 'select', $$select count(*) from public.products where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'all', 'none', 'all'),
  ('public.products', 'insert', $$insert into public.products (org_id, name, price) values ('{org_a}', 'iso new', 1)$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'denied', 'denied', 'denied'),
  ('public.products', 'update', $$update public.products set price = 2 where id = '{product_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0'),
  ('public.products', 'delete', $$delete from public.products where id = '{product_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0'),

  -- business_hours: members read (bot settings); admins add, change and delete.
  ('public.business_hours', 'select', $$select count(*) from public.business_hours where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.business_hours', 'insert', $$insert into public.business_hours (org_id, weekday, opens, closes) values ('{org_a}', 2, '09:00', '17:00')$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'denied', 'denied', 'denied', 'denied'),
  ('public.business_hours', 'update', $$update public.business_hours set closes = '18:00' where id = '{business_hours_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0'),
  ('public.business_hours', 'delete', $$delete from public.business_hours where id = '{business_hours_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0'),

  -- call_campaigns, calls, call_transcript_segments: members read (calls.read, not viewers); written only by the call functions.
  ('public.call_campaigns', 'select', $$select count(*) from public.call_campaigns where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.call_campaigns', 'insert', $$insert into public.call_campaigns (org_id, name) values ('{org_a}', 'iso new')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.call_campaigns', 'update', $$update public.call_campaigns set name = 'renamed' where id = '{campaign_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.call_campaigns', 'delete', $$delete from public.call_campaigns where id = '{campaign_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.calls', 'select', $$select count(*) from public.calls where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.calls', 'insert', $$insert into public.calls (org_id, direction) values ('{org_a}', 'inbound')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.calls', 'update', $$update public.calls set summary = 'changed' where id = '{call_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.calls', 'delete', $$delete from public.calls where id = '{call_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.call_transcript_segments', 'select', $$select count(*) from public.call_transcript_segments where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.call_transcript_segments', 'insert', $$insert into public.call_transcript_segments (org_id, call_id, seq, speaker, text, start_ms, end_ms) values ('{org_a}', '{call_a}', 5, 'user', 'probe', 0, 1)$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.call_transcript_segments', 'update', $$update public.call_transcript_segments set text = 'changed' where call_id = '{call_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.call_transcript_segments', 'delete', $$delete from public.call_transcript_segments where call_id = '{call_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- call_events: admins read (calls.manage); append-only for everyone, written by private.apply_call_event.
  ('public.call_events', 'select', $$select count(*) from public.call_events where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'none', 'none', 'none', 'all'),
  ('public.call_events', 'insert', $$insert into public.call_events (org_id, provider, event_id, event_type, occurred_at) values ('{org_a}', 'vapi', 'iso-new', 'call.status', now())$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.call_events', 'update', $$update public.call_events set payload = '{"forged": true}' where org_id = '{org_a}'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.call_events', 'delete', $$delete from public.call_events where org_id = '{org_a}'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- call_providers: admins read (calls.manage); written by the secret RPCs (definer code).
  ('public.call_providers', 'select', $$select count(*) from public.call_providers where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'none', 'none', 'none', 'all'),
  ('public.call_providers', 'insert', $$insert into public.call_providers (org_id, provider, secret_created_at) values ('{org_a}', 'generic', now())$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.call_providers', 'update', $$update public.call_providers set previous_secret_valid_until = null where org_id = '{org_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.call_providers', 'delete', $$delete from public.call_providers where org_id = '{org_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- call_feedback: members read the org's (calls.read); members rate (calls.feedback) and change or delete only their own row.
  ('public.call_feedback', 'select', $$select count(*) from public.call_feedback where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.call_feedback', 'insert', $$insert into public.call_feedback (org_id, call_id, rating) values ('{org_a}', '{feedback_call_a}', 5)$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:1', 'denied', 'denied', 'denied'),
  ('public.call_feedback', 'update', $$update public.call_feedback set rating = 1 where id = '{feedback_a}'$$,
   'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:1', 'rows:0', 'rows:0', 'rows:0'),
  ('public.call_feedback', 'delete', $$delete from public.call_feedback where id = '{feedback_a}'$$,
   'denied', 'rows:1', 'rows:0', 'rows:0', 'rows:1', 'rows:0', 'rows:0', 'rows:0'),

  -- calendar_connections, appointments: members read (calendar.read, not viewers); written only by the calendar RPCs.
  ('public.calendar_connections', 'select', $$select count(*) from public.calendar_connections where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.calendar_connections', 'insert', $$insert into public.calendar_connections (org_id, provider, account_email) values ('{org_a}', 'microsoft', 'iso-new@example.com')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.calendar_connections', 'update', $$update public.calendar_connections set status = 'revoked', status_reason = 'probe' where id = '{calendar_connection_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.calendar_connections', 'delete', $$delete from public.calendar_connections where id = '{calendar_connection_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.appointments', 'select', $$select count(*) from public.appointments where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.appointments', 'insert', $$insert into public.appointments (org_id, starts_at, ends_at, attendee_name, attendee_email, source) values ('{org_a}', now() + interval '41 days', now() + interval '41 days 30 minutes', 'Probe', 'probe@example.com', 'staff')$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.appointments', 'update', $$update public.appointments set notes = 'changed' where id = '{appointment_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.appointments', 'delete', $$delete from public.appointments where id = '{appointment_a}'$$,
   'denied', 'rows:1', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),

  -- business_closures: members read (calendar.read); admins add, change and delete (calendar.manage).
  ('public.business_closures', 'select', $$select count(*) from public.business_closures where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'all', 'all', 'none', 'none', 'all'),
  ('public.business_closures', 'insert', $$insert into public.business_closures (org_id, during) values ('{org_a}', tstzrange(now() + interval '50 days', now() + interval '51 days'))$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'denied', 'denied', 'denied', 'denied'),
  ('public.business_closures', 'update', $$update public.business_closures set reason = 'changed' where id = '{closure_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0'),
  ('public.business_closures', 'delete', $$delete from public.business_closures where id = '{closure_a}'$$,
   'denied', 'rows:1', 'rows:1', 'rows:1', 'rows:0', 'rows:0', 'rows:0', 'rows:0'),

  -- audit_log: owners, admins and platform admins read (all but data_exports rows for non-owners, 20261123014800); append-only for everyone, written by triggers.
  ('public.audit_log', 'select', $$select count(*) from public.audit_log where org_id = '{org_a}'$$,
   'denied', 'all', 'all', 'some:31', 'none', 'none', 'none', 'some:31'),
  ('public.audit_log', 'insert', $$insert into public.audit_log (org_id, seq, action, table_name, prev_hash, hash) values ('{org_a}', 0, 'insert', 'forged', '\x', '\x')$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.audit_log', 'update', $$update public.audit_log set table_name = 'forged' where org_id = '{org_a}'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('public.audit_log', 'delete', $$delete from public.audit_log where org_id = '{org_a}'$$,
   'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied');

-- ---------------------------------------------------------------------------
-- The runner: executes one case as one actor inside a subtransaction that is
-- always rolled back (the 'ZZ001' exception carries the outcome out).
-- ---------------------------------------------------------------------------

create function pg_temp.run_case(actor text, action text, statement text)
returns text
language plpgsql
as $$
declare
  f record;
  baseline bigint;
  n bigint;
begin
  for f in select * from fixture loop
    statement := replace(statement, '{' || f.key || '}', f.id::text);
  end loop;
  if action = 'select' then
    execute statement into baseline;
    if baseline = 0 then
      return 'fixture has no rows for: ' || statement;
    end if;
  end if;

  begin
    case actor
      when 'anon' then perform tests.authenticate_as_anon();
      when 'service_role' then perform tests.authenticate_as_service_role();
      else perform tests.authenticate_as((select id from fixture where key = actor));
    end case;
    if action = 'select' then
      execute statement into n;
    else
      execute statement;
      get diagnostics n = row_count;
    end if;
    raise exception using errcode = 'ZZ001', message = case
      when action <> 'select' then 'rows:' || n
      when n = baseline then 'all'
      when n = 0 then 'none'
      else 'some:' || n
    end;
  exception
    when sqlstate 'ZZ001' then return sqlerrm;
    when insufficient_privilege then return 'denied';
    when others then return 'error:' || sqlstate;
  end;
end;
$$;

create temp view cases as
select m.relation, m.action, a.actor, a.expected, m.statement
from matrix m
cross join lateral (values
  ('anon', m.anon), ('service_role', m.service_role), ('owner', m.owner), ('admin', m.admin),
  ('member', m.member), ('viewer', m.viewer), ('other_owner', m.other_owner), ('platform_admin', m.platform_admin)
) a(actor, expected);

select plan((select count(*)::int from cases) + 2);

-- Completeness: every relation in an exposed schema is in the matrix, with
-- all four actions. Exposed schemas are PostgREST's db_schemas (config.toml
-- [api].schemas on the local stack; public and graphql_public on a project).
select set_eq(
  $$select n.nspname || '.' || c.relname
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p', 'v', 'm', 'f')
      and n.nspname = any(string_to_array(replace(coalesce(nullif(current_setting('pgrst.db_schemas', true), ''), 'public,graphql_public'), ' ', ''), ','))$$,
  $$select relation from matrix$$,
  'the matrix covers exactly the tables and views in the exposed schemas'
);
select is_empty(
  $$select relation from matrix group by relation
    having array_agg(action order by action) <> array['delete', 'insert', 'select', 'update']$$,
  'every relation in the matrix has select, insert, update and delete'
);

select is(
  pg_temp.run_case(actor, action, statement),
  expected,
  format('%s %s as %s: %s', relation, action, actor, expected)
)
from (select * from cases order by relation, action, actor) ordered_cases;

select * from finish();
rollback;
