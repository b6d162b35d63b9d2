-- Retention (20261123012000_retention.sql): terminal webhook deliveries (with their attempts) and events with no
-- delivery left go after 30 days, raw call events after 90 (past their append-only trigger, which no API role
-- passes, flag or not), invitations revoked or expired unaccepted 30 days ago (their audit rows redacted), each
-- statement bounded; the hourly job runs them. Old rows here date from 1998-1999, before anything another file
-- leaves behind, so a bounded purge takes this file's first.
begin;
create extension if not exists pgtap with schema extensions;

select plan(38);

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('retention-295-key', 'service_role_key');

select tests.remember('owner', tests.create_user('owner@retention-295.test'));
select tests.remember('accepter', tests.create_user('accepter@retention-295.test'));
select tests.remember('org', tests.create_org('retention-295', tests.fx('owner')));
insert into public.webhook_endpoints (org_id, url) values (tests.fx('org'), 'https://retention-295.example.com/hook');
select tests.remember('endpoint', (select id from public.webhook_endpoints where url = 'https://retention-295.example.com/hook'));

-- An event at a given time, without the deliveries its fan-out queued.
create function pg_temp.event(label text, at timestamptz)
returns void
language plpgsql
as $$
declare
  ev uuid;
begin
  insert into public.events (org_id, type, payload, created_at)
  values (tests.fx('org'), 'member.joined', jsonb_build_object('user_id', gen_random_uuid(), 'role', 'member'), at)
  returning id into ev;
  delete from public.webhook_deliveries d where d.event_id = ev;
  perform tests.remember(label, ev);
end;
$$;

-- A delivery of an event to this file's endpoint, in a state, with attempts (one per attempt_count).
create function pg_temp.delivery(label text, event text, status text, attempts integer, at timestamptz, replay_of text default null)
returns void
language plpgsql
as $$
declare
  created uuid;
begin
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id, status, attempt_count, next_attempt_at, replay_of, created_at)
  values (tests.fx('org'), tests.fx('endpoint'), tests.fx(event), status, attempts,
          case when status in ('pending', 'sending') then now() + interval '1 hour' end, tests.fx(replay_of), at)
  returning id into created;
  insert into public.webhook_attempts (org_id, delivery_id, endpoint_id, attempt_number, url, started_at, duration_ms, status_code, outcome, response_body)
  select tests.fx('org'), created, tests.fx('endpoint'), n, 'https://retention-295.example.com/hook', at, 10, 500, 'failed', 'a receiver''s answer'
  from generate_series(1, attempts) n;
  perform tests.remember(label, created);
end;
$$;

create function pg_temp.deliveries_left(variadic labels text[])
returns text[]
language sql
as $$
  select coalesce(array_agg(l.label order by l.label), '{}') from unnest(labels) l(label)
  where exists (select 1 from public.webhook_deliveries d where d.id = tests.fx(l.label))
$$;

create function pg_temp.events_left(variadic labels text[])
returns text[]
language sql
as $$
  select coalesce(array_agg(l.label order by l.label), '{}') from unnest(labels) l(label)
  where exists (select 1 from public.events e where e.id = tests.fx(l.label))
$$;

-- Runs a purge until it finds nothing, as the job does over its runs; answers the rows purged.
create function pg_temp.purge_all(purge text)
returns integer
language plpgsql
as $$
declare
  total integer := 0;
  purged integer;
begin
  for i in 1..100 loop
    execute format('select private.%I()', purge) into purged;
    exit when purged = 0;
    total := total + purged;
  end loop;
  return total;
end;
$$;

-- ---------------------------------------------------------------------------
-- Webhook deliveries and their attempts
-- ---------------------------------------------------------------------------

select pg_temp.event('ev_batch_1', '1998-01-01'), pg_temp.event('ev_batch_2', '1998-01-02'), pg_temp.event('ev_batch_3', '1998-01-03');
select pg_temp.delivery('d_batch_1', 'ev_batch_1', 'succeeded', 1, '1998-01-01');
select pg_temp.delivery('d_batch_2', 'ev_batch_2', 'failed', 10, '1998-01-02');
select pg_temp.delivery('d_batch_3', 'ev_batch_3', 'canceled', 0, '1998-01-03');

select pg_temp.event('ev_old', '1999-01-01');
select pg_temp.delivery('d_old_succeeded', 'ev_old', 'succeeded', 2, '1999-01-01');
select pg_temp.delivery('d_old_failed', 'ev_old', 'failed', 10, '1999-01-01');
select pg_temp.delivery('d_old_canceled', 'ev_old', 'canceled', 0, '1999-01-01');
select pg_temp.event('ev_live', '1999-01-02');
select pg_temp.delivery('d_old_pending', 'ev_live', 'pending', 3, '1999-01-02');
select pg_temp.delivery('d_old_sending', 'ev_live', 'sending', 4, '1999-01-02');
select pg_temp.event('ev_replayed', '1999-01-03');
select pg_temp.delivery('d_original', 'ev_replayed', 'succeeded', 1, '1999-01-03');
select pg_temp.delivery('d_replay', 'ev_replayed', 'succeeded', 1, now() - interval '1 day', 'd_original');
select pg_temp.event('ev_recent', now() - interval '29 days');
select pg_temp.delivery('d_recent', 'ev_recent', 'failed', 10, now() - interval '29 days');
select pg_temp.event('ev_lonely_old', '1999-01-04');
select pg_temp.event('ev_lonely_recent', now() - interval '29 days');

select is(private.purge_webhook_deliveries(2), 2, 'a purge statement deletes at most its bound of deliveries');
select is(
  pg_temp.deliveries_left('d_batch_1', 'd_batch_2', 'd_batch_3', 'd_old_succeeded'),
  array['d_batch_3', 'd_old_succeeded'],
  '... the oldest first'
);
select is(
  (select count(*) from public.webhook_attempts a where a.delivery_id in (tests.fx('d_batch_1'), tests.fx('d_batch_2'))),
  0::bigint,
  '... with their attempts'
);
select is(private.purge_events(1), 1, 'an events purge statement deletes at most its bound');
select is(pg_temp.events_left('ev_batch_1', 'ev_batch_2'), array['ev_batch_2'], '... the oldest event without deliveries first');

select cmp_ok(pg_temp.purge_all('purge_webhook_deliveries'), '>=', 5, 'the purge runs on until no terminal delivery is 30 days old');
select is(
  pg_temp.deliveries_left('d_batch_3', 'd_old_succeeded', 'd_old_failed', 'd_old_canceled', 'd_original',
                          'd_old_pending', 'd_old_sending', 'd_replay', 'd_recent'),
  array['d_old_pending', 'd_old_sending', 'd_recent', 'd_replay'],
  'succeeded, failed and canceled deliveries older than 30 days are gone; pending, sending and newer ones stay'
);
select is(
  (select count(*) from public.webhook_attempts a where a.endpoint_id = tests.fx('endpoint')),
  (1 + 3 + 4 + 10)::bigint,
  'only the kept deliveries'' attempts are left'
);
select is(
  (select replay_of from public.webhook_deliveries where id = tests.fx('d_replay')),
  null::uuid,
  'a replay of a purged delivery stays, no longer pointing at it'
);

select cmp_ok(pg_temp.purge_all('purge_events'), '>=', 3, 'the events purge runs on until none is left to purge');
select is(
  pg_temp.events_left('ev_batch_2', 'ev_batch_3', 'ev_old', 'ev_lonely_old', 'ev_live', 'ev_replayed', 'ev_recent', 'ev_lonely_recent'),
  array['ev_live', 'ev_lonely_recent', 'ev_recent', 'ev_replayed'],
  'events older than 30 days go once no delivery is left; one with live deliveries, one with a recent replay and recent ones stay'
);
select is(
  pg_temp.deliveries_left('d_old_pending', 'd_old_sending', 'd_replay', 'd_recent'),
  array['d_old_pending', 'd_old_sending', 'd_recent', 'd_replay'],
  '... so no kept delivery went with its event'
);
select is(
  (select status from public.webhook_deliveries where id = tests.fx('d_old_pending')),
  'pending',
  '... and a live delivery is still queued'
);

-- ---------------------------------------------------------------------------
-- Raw call events
-- ---------------------------------------------------------------------------

insert into public.call_events (org_id, provider, event_id, event_type, occurred_at, received_at, payload) values
  (tests.fx('org'), 'vapi', 'retention-295-old-1', 'call.transcript', '1999-01-01', '1999-01-01', '{"transcript": "my number is +15550100"}'),
  (tests.fx('org'), 'vapi', 'retention-295-old-2', 'call.status', '1999-01-02', '1999-01-02', '{}'),
  (tests.fx('org'), 'vapi', 'retention-295-old-3', 'call.ended', '1999-01-03', '1999-01-03', '{}'),
  (tests.fx('org'), 'vapi', 'retention-295-stays-old', 'call.status', '1999-01-04', '1999-01-04', '{}'),
  (tests.fx('org'), 'vapi', 'retention-295-recent', 'call.status', now() - interval '89 days', now() - interval '89 days', '{}');

create function pg_temp.call_events_left()
returns text[]
language sql
as $$
  select coalesce(array_agg(e.event_id order by e.event_id), '{}') from public.call_events e
  where e.org_id = tests.fx('org')
$$;

-- How a statement is refused: SQLSTATE and message, or 'ok'.
create function pg_temp.refusal(statement text)
returns text
language plpgsql
as $$
declare
  state text;
  message text;
begin
  execute statement;
  return 'ok';
exception when others then
  get stacked diagnostics state = returned_sqlstate, message = message_text;
  return state || ': ' || message;
end;
$$;
grant execute on function pg_temp.refusal(text) to public;

-- Users first, with the flag the purge sets, which any session may set.
select tests.act_as('owner');
select set_config('private.call_event_purge', 'on', true);
select matches(
  pg_temp.refusal($$delete from public.call_events where event_id = 'retention-295-stays-old'$$),
  '^42501: ',
  'an owner who sets the purge flag still cannot delete a call event older than 90 days'
);
select matches(
  pg_temp.refusal($$select private.purge_call_events()$$),
  '^42501: ',
  '... nor run the purge'
);
select tests.act_as('postgres');
grant delete on public.call_events to service_role;
select tests.act_as('service_role');
select set_config('private.call_event_purge', 'on', true);
select is(
  pg_temp.refusal($$delete from public.call_events where event_id = 'retention-295-stays-old'$$),
  '42501: call events are append-only: delete is not allowed',
  'the trigger refuses an API role with the flag even were it granted delete'
);
select tests.act_as('postgres');
revoke delete on public.call_events from service_role;
select is(
  pg_temp.refusal($$delete from public.call_events where event_id = 'retention-295-recent'$$),
  '42501: call events are append-only: delete is not allowed',
  '... and the flag never lets through an event within its 90 days'
);
select set_config('private.call_event_purge', '', true);
select is(
  pg_temp.refusal($$delete from public.call_events where event_id = 'retention-295-stays-old'$$),
  '42501: call events are append-only: delete is not allowed',
  'without the flag an old event is not deleted either'
);
select is(
  pg_temp.call_events_left(),
  array['retention-295-old-1', 'retention-295-old-2', 'retention-295-old-3', 'retention-295-recent', 'retention-295-stays-old'],
  '... so none of them went'
);

select is(private.purge_call_events(2), 2, 'a call events purge statement deletes at most its bound');
select is(
  pg_temp.call_events_left(),
  array['retention-295-old-3', 'retention-295-recent', 'retention-295-stays-old'],
  '... the oldest first'
);
select is(current_setting('private.call_event_purge', true), '', '... and leaves the flag off');
select is(
  pg_temp.refusal($$update public.call_events set payload = '{}' where event_id = 'retention-295-old-3'$$),
  '42501: call events are append-only: update is not allowed',
  'call events stay append-only otherwise'
);
select cmp_ok(pg_temp.purge_all('purge_call_events'), '>=', 2, 'the purge runs on until none is older than 90 days');
select is(pg_temp.call_events_left(), array['retention-295-recent'], 'call events older than 90 days are gone; a newer one stays');

-- ---------------------------------------------------------------------------
-- Invitations
-- ---------------------------------------------------------------------------

insert into public.invitations (org_id, email, role, created_at, expires_at, last_sent_at, revoked_at, accepted_at, accepted_by) values
  (tests.fx('org'), 'revoked-old@retention-295.test', 'member', now() - interval '40 days', now() + interval '1 day', now() - interval '40 days', now() - interval '31 days', null, null),
  (tests.fx('org'), 'expired-old@retention-295.test', 'member', now() - interval '40 days', now() - interval '31 days', now() - interval '40 days', null, null, null),
  (tests.fx('org'), 'revoked-recent@retention-295.test', 'member', now() - interval '40 days', now() + interval '1 day', now() - interval '40 days', now() - interval '29 days', null, null),
  (tests.fx('org'), 'expired-recent@retention-295.test', 'member', now() - interval '40 days', now() - interval '29 days', now() - interval '40 days', null, null, null),
  (tests.fx('org'), 'accepted-old@retention-295.test', 'member', now() - interval '400 days', now() - interval '393 days', now() - interval '400 days', null, now() - interval '399 days', tests.fx('accepter')),
  (tests.fx('org'), 'pending@retention-295.test', 'member', now(), now() + interval '7 days', now(), null, null, null);
insert into private.invitation_tokens (invitation_id, token_hash)
select i.id, decode(md5(i.email), 'hex') from public.invitations i where i.org_id = tests.fx('org');
select tests.remember('inv_revoked_old', (select id from public.invitations where email = 'revoked-old@retention-295.test'));
select tests.remember('inv_expired_old', (select id from public.invitations where email = 'expired-old@retention-295.test'));

select cmp_ok(pg_temp.purge_all('purge_invitations'), '>=', 2, 'the invitations purge runs');
select is(
  (select array_agg(i.email order by i.email) from public.invitations i where i.org_id = tests.fx('org')),
  array['accepted-old@retention-295.test', 'expired-recent@retention-295.test', 'pending@retention-295.test',
        'revoked-recent@retention-295.test'],
  'invitations revoked or expired more than 30 days ago are gone; newer, pending and accepted ones stay'
);
select is(
  (select count(*) from private.invitation_tokens t where t.invitation_id in (tests.fx('inv_revoked_old'), tests.fx('inv_expired_old'))),
  0::bigint,
  '... with their token hashes'
);
select is(
  (select count(*) from private.invitation_tokens t join public.invitations i on i.id = t.invitation_id where i.org_id = tests.fx('org')),
  4::bigint,
  '... and the kept ones keep theirs'
);

-- The redaction runs at the commit.
select is(
  (select count(*) from public.audit_log a
   where a.table_name = 'invitations' and a.record_id in (tests.fx('inv_revoked_old')::text, tests.fx('inv_expired_old')::text)
     and a.action = 'delete'),
  2::bigint,
  'each purged invitation''s delete is audited'
);
set constraints private.audit_redaction_requests_redact immediate;
select is(
  (select count(*) from public.audit_log a
   where a.table_name = 'invitations' and a.record_id in (tests.fx('inv_revoked_old')::text, tests.fx('inv_expired_old')::text)
     and (a.redacted_at is null or a.old_values is not null or a.new_values is not null)),
  0::bigint,
  '... and at the commit every audit row of a purged invitation (its insert and its delete) is redacted'
);
select is(
  (select count(*) from public.audit_log a where a.org_id = tests.fx('org') and a.table_name = 'invitations'
     and (a.old_values::text like '%-old@retention-295.test%' or a.new_values::text like '%-old@retention-295.test%')),
  1::bigint,
  '... so the audit log keeps no purged invitee''s e-mail (only the accepted one''s)'
);
select ok(
  (select c.valid from private.check_audit_chain(tests.fx('org')) c),
  '... and the org''s audit chain still verifies'
);
select is(
  (select count(*) from public.audit_log a where a.org_id = tests.fx('org') and a.table_name = 'invitations' and a.redacted_at is null
     and a.record_id not in (tests.fx('inv_revoked_old')::text, tests.fx('inv_expired_old')::text)),
  4::bigint,
  '... while the kept invitations'' audit rows keep their values'
);

-- ---------------------------------------------------------------------------
-- The job and its indexes
-- ---------------------------------------------------------------------------

select is(
  (select schedule from cron.job where jobname = 'purge-expired-history'),
  '53 * * * *',
  'the purge job runs hourly'
);
select ok(
  (select command ~ 'private\.purge_webhook_deliveries\(bound\).*private\.purge_events\(bound\).*private\.purge_call_events\(bound\).*private\.purge_invitations\(bound\)'
      and command ~ 'when ''webhook_deliveries'' then 1000 when ''invitations'' then 200 else 5000'
      and command ~ 'exit when \(statements = 20 and step <> ''invitations''\)\s+or pg_catalog\.clock_timestamp\(\) - pg_catalog\.statement_timestamp\(\) > interval ''100 seconds'''
      and command ~ 'commit;'
   from cron.job where jobname = 'purge-expired-history'),
  '... deliveries before events, 1,000 deliveries, 200 invitations or 5,000 rows a statement, committed each, at most 20 a table (invitations: as many as fit) and 100 s a run'
);
select is(
  (select array_agg(c.relname::text order by c.relname) from pg_catalog.pg_index i join pg_catalog.pg_class c on c.oid = i.indexrelid
   where c.relname in ('webhook_deliveries_finished_created_idx', 'events_created_at_idx', 'call_events_received_at_idx') and i.indisvalid),
  array['call_events_received_at_idx', 'events_created_at_idx', 'webhook_deliveries_finished_created_idx'],
  'each purge reads its own valid index'
);
select is(
  (select array_agg(p.proname::text order by p.proname) from pg_catalog.pg_proc p
   where p.pronamespace = 'private'::regnamespace
     and p.proname in ('purge_webhook_deliveries', 'purge_events', 'purge_call_events', 'purge_invitations', 'history_retention')
     and (has_function_privilege('authenticated', p.oid, 'execute') or has_function_privilege('service_role', p.oid, 'execute')
          or has_function_privilege('anon', p.oid, 'execute'))),
  null::text[],
  'no API role may run a purge'
);

select * from finish();
rollback;
