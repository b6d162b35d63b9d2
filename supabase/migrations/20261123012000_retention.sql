-- Retention of webhook history, raw call events and old invitations.
--
-- None of the 21 scheduled jobs deleted these, so they grew for ever and kept personal data for ever: a busy
-- org emits ~4,000 events a day, 12,000 deliveries with 3 endpoints, each with up to 10 attempts of up to 4 KB
-- of response; call.started payloads and raw provider events hold phone numbers and whole transcripts; an
-- invitation never accepted keeps the invitee's e-mail. Now (private.history_retention):
--
--   * webhook_deliveries in a terminal status (succeeded, failed, canceled) created more than 30 days ago go,
--     with their attempts (the foreign key cascades). A delivery ends within ~3 days (the retry schedule), so
--     30 days leaves a month to inspect and replay it; Svix keeps 90. A replay of a purged delivery stays, its
--     replay_of set null (the foreign key).
--   * events created more than 30 days ago go once no delivery references them: a delivery's event_id
--     cascades, so an event never takes a delivery with it (a recent replay of an old event keeps the event).
--   * call_events received more than 90 days ago go. The call keeps what the product shows (status, times,
--     numbers, the transcript's segments, summary, sentiment, cost, recording); a provider re-sending an event
--     id after 90 days would no longer be recognised as a repeat, and providers retry for hours, not months.
--   * invitations revoked, or expired unaccepted, more than 30 days ago go, with their token hashes (the
--     foreign key), and their audit rows (which hold the e-mail, the delete's row too) are redacted at the
--     commit, as a deleted user's accepted invitations are (20261123009400). Accepted invitations stay (they go
--     with the user who accepted them, 20261123008200).
--
-- The job (cron job purge-expired-history, hourly) commits after each bounded statement, so no statement
-- holds many rows' locks or a long transaction, and stops after 100 s (hosted Supabase's 2-minute
-- statement_timeout covers the whole block across its commits, as for generate-invoices): at most 20
-- statements per table a run, of 1,000 deliveries (up to 10,000 attempts), 5,000 events or 5,000 call events,
-- and as many statements of 200 invitations of one org (each org's audit chain head is taken alone) as fit. Each statement takes its rows
-- with skip locked, so it never waits on a row a dispatcher or a call event is writing. Indexes on the
-- predicates come next, each built concurrently in its own file: 20261123012010 (terminal deliveries),
-- 20261123012020 (events), 20261123012030 (call events). invitations is small and read in full.
--
-- Not changed: delete_webhook_endpoint still deletes an endpoint's whole history in one statement; with the
-- retention that is at most 30 days of it (~120,000 deliveries and their attempts for a busy endpoint).

-- ---------------------------------------------------------------------------
-- Retentions
-- ---------------------------------------------------------------------------

create function private.history_retention(table_name text)
returns interval
language sql
immutable
security invoker
set search_path = ''
as $$
  select case history_retention.table_name
    when 'webhook_deliveries' then interval '30 days'
    when 'events' then interval '30 days'
    when 'call_events' then interval '90 days'
    when 'invitations' then interval '30 days'
  end;
$$;
comment on function private.history_retention(text) is 'How long webhook_deliveries (terminal, with their attempts), events (with no delivery left), call_events and invitations (revoked, or expired unaccepted) are kept; null for any other table.';

-- ---------------------------------------------------------------------------
-- Webhook history
-- ---------------------------------------------------------------------------

create function private.purge_webhook_deliveries(max_rows integer default 1000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  purged integer;
begin
  delete from public.webhook_deliveries d
  where d.id in (
    select t.id from public.webhook_deliveries t
    where t.status in ('succeeded', 'failed', 'canceled')
      and t.created_at < pg_catalog.now() - private.history_retention('webhook_deliveries')
    order by t.created_at
    limit greatest(purge_webhook_deliveries.max_rows, 0)
    for update skip locked
  );
  get diagnostics purged = row_count;
  return purged;
end;
$$;
comment on function private.purge_webhook_deliveries(integer) is 'Deletes up to max_rows webhook deliveries in a terminal status created more than 30 days ago, oldest first, and their attempts; returns how many deliveries.';

create function private.purge_events(max_rows integer default 5000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  purged integer;
begin
  delete from public.events e
  where e.id in (
    select t.id from public.events t
    where t.created_at < pg_catalog.now() - private.history_retention('events')
      and not exists (select 1 from public.webhook_deliveries d where d.event_id = t.id)
    order by t.created_at
    limit greatest(purge_events.max_rows, 0)
    for update skip locked
  );
  get diagnostics purged = row_count;
  return purged;
end;
$$;
comment on function private.purge_events(integer) is 'Deletes up to max_rows events created more than 30 days ago that no webhook delivery references, oldest first; returns how many.';

-- ---------------------------------------------------------------------------
-- Raw call events
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123001200_calls.sql; only the purge's branch is new. Any session may set the flag
-- (set_config is open to every role, through PostgREST too), so it is not enough alone: the delete must run
-- as a role that is none of the API's (a definer function's owner: private.purge_call_events, the only one
-- that sets it) and only of an event past its retention. Invoker, so current_user is the role the delete runs
-- as. The API roles have no delete grant either; this holds should one be granted.
create or replace function private.refuse_call_event_change()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and not exists (select 1 from public.organizations o where o.id = old.org_id) then
    return old;
  end if;
  -- Nested: the API roles may not run history_retention, so it is read only for the others.
  if tg_op = 'DELETE'
    and pg_catalog.current_setting('private.call_event_purge', true) = 'on'
    and current_user::text not in ('anon', 'authenticated', 'service_role')
  then
    if old.received_at < pg_catalog.now() - private.history_retention('call_events') then
      return old;
    end if;
  end if;
  if tg_op = 'UPDATE' and new.call_id is null and old.call_id is not null
    and (to_jsonb(new) - 'call_id') = (to_jsonb(old) - 'call_id')
    and not exists (select 1 from public.calls c where c.id = old.call_id) then
    return new;
  end if;
  raise exception 'call events are append-only: % is not allowed', lower(tg_op)
    using errcode = 'insufficient_privilege';
end;
$$;
comment on function private.refuse_call_event_change() is 'Keeps public.call_events append-only: refuses every update, delete and truncate but the foreign keys'' (an org''s deletion, a deleted call''s call_id nulled) and private.purge_call_events'' delete of events past their 90 days.';

create function private.purge_call_events(max_rows integer default 5000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  purged integer;
begin
  perform pg_catalog.set_config('private.call_event_purge', 'on', true);
  delete from public.call_events e
  where e.id in (
    select t.id from public.call_events t
    where t.received_at < pg_catalog.now() - private.history_retention('call_events')
    order by t.received_at
    limit greatest(purge_call_events.max_rows, 0)
    for update skip locked
  );
  get diagnostics purged = row_count;
  perform pg_catalog.set_config('private.call_event_purge', '', true);
  return purged;
end;
$$;
comment on function private.purge_call_events(integer) is 'Deletes up to max_rows raw call events received more than 90 days ago, oldest first (past the append-only trigger); returns how many.';

-- ---------------------------------------------------------------------------
-- Invitations
-- ---------------------------------------------------------------------------

-- One org a call: the deletes are audited, so each takes the org's chain head, and one transaction holding
-- several heads in no fixed order could deadlock with another. The redaction requests come before the
-- delete, whose audit rows they then cover too.
create function private.purge_invitations(max_rows integer default 5000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  cutoff timestamptz := pg_catalog.now() - private.history_retention('invitations');
  target uuid;
  doomed uuid[];
  purged integer;
begin
  -- An org whose rows are all held right now is passed over, not waited for: the next one is purged.
  select i.org_id into target
  from public.invitations i
  where i.accepted_at is null and (i.revoked_at < cutoff or i.expires_at < cutoff)
  order by i.org_id
  limit 1
  for update of i skip locked;
  if target is null then
    return 0;
  end if;
  select pg_catalog.array_agg(t.id order by t.id) into doomed
  from (
    select i.id from public.invitations i
    where i.org_id = target and i.accepted_at is null and (i.revoked_at < cutoff or i.expires_at < cutoff)
    order by i.id
    limit greatest(purge_invitations.max_rows, 0)
    for update skip locked
  ) t;
  if doomed is null then
    return 0;
  end if;
  insert into private.audit_redaction_requests (org_id, table_name, record_id)
  select target, 'invitations', d.id::text
  from pg_catalog.unnest(doomed) d(id)
  order by d.id
  on conflict on constraint audit_redaction_requests_pkey do nothing;
  delete from public.invitations i where i.id = any (doomed);
  get diagnostics purged = row_count;
  return purged;
end;
$$;
comment on function private.purge_invitations(integer) is 'Deletes up to max_rows invitations of one org (the first by id with any) revoked, or expired unaccepted, more than 30 days ago, with their token hashes, and asks for their audit rows to be redacted at the commit; returns how many.';

revoke execute on function
  private.history_retention(text),
  private.purge_webhook_deliveries(integer),
  private.purge_events(integer),
  private.purge_call_events(integer),
  private.purge_invitations(integer)
from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- The job
-- ---------------------------------------------------------------------------

-- Deliveries before events, which wait for their last delivery to go. A statement that purged less than its
-- bound found nothing more (or only rows locked right then, left for the next run).
select cron.schedule('purge-expired-history', '53 * * * *', $job$do $$
declare
  step text;
  bound integer;
  purged integer;
  statements integer;
begin
  foreach step in array array['webhook_deliveries', 'events', 'call_events', 'invitations'] loop
    -- Invitations go one org a statement, 200 at most: each one's audit redaction runs at the commit and
    -- scans the org's requests (2,000 in one commit took 4.1 s on PGlite, 5,000 took 32.5 s, holding the
    -- org's chain head), so they take many small statements, within the run's time only.
    bound := case step when 'webhook_deliveries' then 1000 when 'invitations' then 200 else 5000 end;
    statements := 0;
    loop
      exit when (statements = 20 and step <> 'invitations')
        or pg_catalog.clock_timestamp() - pg_catalog.statement_timestamp() > interval '100 seconds';
      purged := case step
        when 'webhook_deliveries' then private.purge_webhook_deliveries(bound)
        when 'events' then private.purge_events(bound)
        when 'call_events' then private.purge_call_events(bound)
        else private.purge_invitations(bound)
      end;
      commit;
      statements := statements + 1;
      exit when purged < bound and step <> 'invitations';
      exit when purged = 0;
    end loop;
  end loop;
end
$$$job$);
