-- Scheduled jobs that one bad row could stop for everyone.
--
-- 1. Stale calls. A call whose start is far before its end (a provider sending started_at 1970-01-01) got a
--    duration that does not fit numeric(10,3) (at most 9999999.999 s, about 115 days); the every-minute
--    close_stale_calls raised 22003 on it and, closing all calls in one statement loop, aborted every minute
--    from then on: no org's stale call was closed again. Now calls_before_write leaves such a duration null
--    (unknown: the start is not believable) instead of raising, and close_stale_calls closes each call in
--    its own subtransaction: a call that still cannot be closed raises a warning naming it and its error
--    and the others are closed. The call-events function also drops a stated started_at or ended_at more
--    than a day before the event's occurred_at or more than 5 minutes after its arrival
--    (functions/call-events/event-row.ts), so such a date never reaches the call.
-- 2. Stuck exports. A step that fails the same way every time (a 503 retried when its lease runs out) kept
--    its export running for ever, blocking the org's next export, and 20 of them filled resume_exports'
--    oldest-first window for every org. data_exports.attempts_at_cursor counts the claims made since the
--    cursor last moved (reset when it moves); the claim after 5 without progress fails the export with its
--    reason (finish_export's failure path: status failed, error, the exports broadcast) instead of taking a
--    step. resume_exports wakes the least recently touched exports first (updated_at: every claim touches
--    it), so stuck ones go to the back.
-- 3. cron.job_run_details grows by a row per job run (about 32,000 a day here); the daily
--    purge-cron-history job deletes runs that ended more than 7 days ago, as Supabase recommends.
-- 4. Invoices. The daily invoice job drew every org's invoice in one transaction: each org's audited invoice
--    rows held its audit chain head until the whole run committed, and one org's error rolled back all.
--    The job (cron job generate-invoices) is now a DO block that commits after each org (pg_cron runs it at
--    the top level, as does the local scheduler), and both it and generate_invoices draw each org in a
--    subtransaction (private.invoice_org_for_month): one org's failure raises a warning naming it and the
--    others are drawn. Hosted Supabase cancels a statement of the postgres role after 2 minutes
--    (statement_timeout), and that covers the whole DO block across its commits: the block stops itself
--    after 100 s, and the job runs every 10 minutes from 02:00 to 06:50 UTC (`*/10 2-6 * * *`), each run
--    going on with the orgs not invoiced yet; a run with nothing left draws nothing. The failed org is
--    drawn again by the next run (the job makes up a missed month's invoices).

-- ---------------------------------------------------------------------------
-- 1. Stale calls
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123001200_calls.sql; only the duration is new: null when it does not fit.
create or replace function private.calls_before_write()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  terminal boolean := new.status in ('ended', 'failed', 'canceled', 'no_answer', 'busy');
  elapsed numeric;
begin
  if tg_op = 'UPDATE' then
    if new.org_id <> old.org_id or new.id <> old.id then
      raise exception 'a call keeps its id and organization' using errcode = 'invalid_parameter_value';
    end if;
    if new.status <> old.status then
      if not private.call_status_transition_allowed(old.status, new.status) then
        raise exception 'a call cannot go from % to %', old.status, new.status
          using errcode = 'check_violation',
                hint = 'queued -> any later status; ringing -> in_progress or a terminal status; in_progress -> ended or failed; terminal statuses are final.';
      end if;
      if new.status_occurred_at is not distinct from old.status_occurred_at then
        new.status_occurred_at := pg_catalog.now();
      end if;
      new.last_event_at := greatest(coalesce(new.last_event_at, pg_catalog.now()), pg_catalog.now());
    end if;
  else
    new.last_event_at := coalesce(new.last_event_at, pg_catalog.now());
  end if;

  if new.status <> 'queued' then
    new.next_dial_at := null;
    new.dial_lease_until := null;
  end if;
  if terminal then
    new.ended_at := coalesce(new.ended_at, pg_catalog.now());
    if new.duration_seconds is null and new.started_at is not null then
      elapsed := extract(epoch from new.ended_at - new.started_at);
      -- Beyond what numeric(10,3) holds (about 115 days) the start is not a call's: unknown, not an error
      -- that would stop whatever ends the call (the stale-call job included).
      if elapsed <= 9999999 then
        new.duration_seconds := round(greatest(elapsed, 0), 3);
      end if;
    end if;
  end if;

  if new.started_event_id is null and new.ended_event_id is null
    and (new.status = 'in_progress' or (terminal and new.started_at is not null)) then
    new.started_event_id := private.emit_event(new.org_id, 'call.started', pg_catalog.jsonb_build_object(
      'call_id', new.id, 'direction', new.direction, 'bot_id', new.bot_id,
      'from', new.from_number, 'to', new.to_number,
      'started_at', private.rfc3339(coalesce(new.started_at, new.status_occurred_at))));
  end if;
  if terminal and new.ended_event_id is null then
    new.ended_event_id := private.emit_event(new.org_id, 'call.ended', pg_catalog.jsonb_build_object(
      'call_id', new.id, 'status', new.status, 'ended_reason', new.ended_reason,
      'duration_seconds', new.duration_seconds, 'ended_at', private.rfc3339(new.ended_at)));
  end if;
  return new;
end;
$$;

-- Latest definition: 20261123001200_calls.sql; each call is now closed in its own subtransaction.
create or replace function private.close_stale_calls(silence interval default interval '15 minutes')
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  cutoff timestamptz;
  stale record;
  closed integer := 0;
begin
  if silence is null or silence < interval '1 minute' then
    raise exception 'the silence before closing a call is at least 1 minute' using errcode = 'invalid_parameter_value';
  end if;
  cutoff := pg_catalog.now() - silence;
  -- Skip locked: a call an event is updating right now is not silent; it is
  -- looked at again next minute. At most 500 per run keeps a run short, the
  -- longest silent first. They are closed in org order, so the orgs' audit
  -- chain heads are taken in org order, as call-event batches take them
  -- (closed in silence order, two orgs' heads could be taken in the opposite
  -- order to a batch's: 40P01).
  for stale in
    select s.* from (
      select c.id, c.org_id, c.status, coalesce(c.last_event_at, c.started_at, c.created_at) as heard_at, c.started_at
      from public.calls c
      where c.status in ('ringing', 'in_progress')
        and (c.last_event_at < cutoff or (c.last_event_at is null and coalesce(c.started_at, c.created_at) < cutoff))
      order by c.last_event_at
      limit 500
      for update skip locked
    ) s
    order by s.org_id, s.id
  loop
    -- One call that cannot be closed must not keep every other org's calls open: its write is undone, the
    -- warning goes to the database log, and it is tried again next minute.
    begin
      update public.calls c
      set status = case when stale.status = 'in_progress' then 'ended' else 'no_answer' end::public.call_status,
          ended_reason = 'no-final-event-timeout',
          ended_at = greatest(stale.heard_at, coalesce(stale.started_at, stale.heard_at))
      where c.id = stale.id;
      closed := closed + 1;
    exception when others then
      raise warning 'close_stale_calls: call % of org % was not closed: % (SQLSTATE %)',
        stale.id, stale.org_id, sqlerrm, sqlstate;
    end;
  end loop;
  return closed;
end;
$$;
comment on function private.close_stale_calls(interval) is 'Closes ringing (as no_answer) and in_progress (as ended) calls silent for longer than silence (default 15 minutes, at least 1), reason no-final-event-timeout, at most 500 per run (the longest silent), closed in org order (audit chain heads in org order), each on its own (one that fails raises a warning and the others are closed); returns how many. pg_cron every minute; service role.';

-- ---------------------------------------------------------------------------
-- 2. Stuck exports
-- ---------------------------------------------------------------------------

alter table public.data_exports
  add column attempts_at_cursor smallint not null default 0
    constraint data_exports_attempts_at_cursor check (attempts_at_cursor >= 0);
comment on column public.data_exports.attempts_at_cursor is 'Steps claimed since the cursor last moved; the claim after 5 fails the export (private.claim_export_step).';
-- The export function's bookkeeping, like the cursor: not part of an export.
update private.export_tables set omit_columns = omit_columns || '{attempts_at_cursor}' where table_name = 'data_exports';

-- Progress, whoever records it, gives the export its attempts back.
create function private.data_exports_reset_attempts()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if new.cursor is distinct from old.cursor then
    new.attempts_at_cursor := 0;
  end if;
  return new;
end;
$$;
comment on function private.data_exports_reset_attempts() is 'Before an update of data_exports.cursor: a moved cursor resets attempts_at_cursor.';

create trigger data_exports_reset_attempts before update of cursor on public.data_exports
  for each row execute function private.data_exports_reset_attempts();

-- Latest definition: 20261123001600_settings_billing_deletion.sql; the attempt count and the failure after 5
-- claims without progress are new.
create or replace function private.claim_export_step(export_id uuid)
returns public.data_exports
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.data_exports;
begin
  if not exists (select 1 from public.data_exports e where e.id = claim_export_step.export_id) then
    raise exception 'export not found' using errcode = 'no_data_found';
  end if;
  select * into target from public.data_exports e
  where e.id = claim_export_step.export_id
    and e.status in ('queued', 'running')
    and (e.lease_until is null or e.lease_until < pg_catalog.now())
  for update skip locked;
  if not found then
    return null;
  end if;
  -- Five steps in a row ended without moving the cursor (each failed, or its lease ran out): the next would
  -- fail the same way, and the export would hold the org's one export slot for ever.
  if target.attempts_at_cursor >= 5 then
    perform private.finish_export(target.id, false, pg_catalog.format(
      'the export made no progress in %s steps in a row (at %s); request a new export',
      target.attempts_at_cursor,
      coalesce('table ' || (target.cursor ->> 'table'), 'the packaging of its files')));
    return null;
  end if;
  update public.data_exports e
  set status = 'running', lease_until = pg_catalog.now() + interval '2 minutes', steps = e.steps + 1,
      attempts_at_cursor = e.attempts_at_cursor + 1
  where e.id = target.id
  returning * into target;
  return target;
end;
$$;
comment on function private.claim_export_step(uuid) is 'Takes the next step of an export (status running, a 2-minute lease); null when another worker holds it or it is over. After 5 claims without the cursor moving, fails the export instead (null). P0002 for an unknown export. Service role.';

-- Latest definition: 20261123001600_settings_billing_deletion.sql; least recently touched first (was: oldest
-- created first), so exports whose steps keep failing do not hold the window.
create or replace function private.resume_exports()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  waiting record;
  woken integer := 0;
begin
  for waiting in
    select e.id from public.data_exports e
    where e.status in ('queued', 'running') and (e.lease_until is null or e.lease_until < pg_catalog.now())
      and e.updated_at < pg_catalog.now() - interval '30 seconds'
    order by e.updated_at limit 20
  loop
    perform private.request_export_step(waiting.id);
    woken := woken + 1;
  end loop;
  return woken;
end;
$$;

-- ---------------------------------------------------------------------------
-- 3. pg_cron's run history
-- ---------------------------------------------------------------------------

select cron.schedule('purge-cron-history', '47 3 * * *',
  $$delete from cron.job_run_details where end_time < now() - interval '7 days'$$);

-- ---------------------------------------------------------------------------
-- 4. Invoices, one org at a time
-- ---------------------------------------------------------------------------

-- The orgs generate_invoices draws for a month; the checks of its argument are the job's too.
create function private.orgs_to_invoice(period_start date)
returns uuid[]
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  from_at timestamptz := orgs_to_invoice.period_start::timestamp at time zone 'UTC';
  to_at timestamptz := (orgs_to_invoice.period_start + interval '1 month')::timestamp at time zone 'UTC';
begin
  if orgs_to_invoice.period_start is null
    or orgs_to_invoice.period_start <> date_trunc('month', orgs_to_invoice.period_start)::date then
    raise exception 'an invoice period starts on the first of a month, not %', coalesce(orgs_to_invoice.period_start::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if to_at > pg_catalog.now() then
    raise exception 'the month of % has not ended yet', orgs_to_invoice.period_start
      using errcode = 'invalid_parameter_value', hint = 'Invoices are made for months that have ended.';
  end if;
  return array(
    select distinct s.org_id
    from public.subscriptions s
    where s.started_at < to_at
      and (s.canceled_at is null or s.canceled_at > from_at)
      and not exists (select 1 from public.invoices i where i.org_id = s.org_id and i.period_start = orgs_to_invoice.period_start)
    order by s.org_id
  );
end;
$$;
comment on function private.orgs_to_invoice(date) is 'The orgs with a subscription in the ended calendar month starting period_start and no invoice of it yet, in id order; 22023 for a date that is not a month''s first day or a month not ended. Internal: generate_invoices and the invoice job.';

-- One org's monthly invoice and its invoice.created, in a subtransaction: an error is a warning and false,
-- so the caller goes on with the other orgs (the next run draws this one again).
create function private.invoice_org_for_month(org_id uuid, period_start date)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  invoice public.invoices;
begin
  invoice := private.draw_invoice(invoice_org_for_month.org_id, invoice_org_for_month.period_start,
    (invoice_org_for_month.period_start + interval '1 month')::timestamp at time zone 'UTC');
  if invoice.id is null then
    return false;
  end if;
  perform private.emit_event(invoice.org_id, 'invoice.created', pg_catalog.jsonb_build_object(
    'invoice_id', invoice.id, 'period_start', invoice.period_start::text, 'period_end', invoice.period_end::text,
    'total_cents', invoice.total_cents, 'currency', invoice.currency));
  return true;
exception when others then
  raise warning 'invoices: the invoice of % for org % was not drawn: % (SQLSTATE %)',
    invoice_org_for_month.period_start, invoice_org_for_month.org_id, sqlerrm, sqlstate;
  return false;
end;
$$;
comment on function private.invoice_org_for_month(uuid, date) is 'Draws one org''s invoice of an ended month and emits invoice.created: true when drawn; false when there was nothing to draw or it failed (a warning names the org and the error; nothing of it stays). Internal.';

-- Latest definition: 20261123008800_final_invoice_on_org_deletion.sql; each org is drawn in a subtransaction
-- (private.invoice_org_for_month), so one org's failure no longer undoes the others'.
create or replace function private.generate_invoices(period_start date)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  billed_org uuid;
  created integer := 0;
begin
  foreach billed_org in array private.orgs_to_invoice(generate_invoices.period_start) loop
    if private.invoice_org_for_month(billed_org, generate_invoices.period_start) then
      created := created + 1;
    end if;
  end loop;
  if created > 0 then
    perform private.invoke_edge_function('billing', '{"action": "render_pdfs"}'::jsonb, 5000);
  end if;
  return created;
end;
$$;
comment on function private.generate_invoices(date) is 'Invoices one ended calendar month (UTC; period_start = its first day) for every org with a subscription in it, in one transaction, each org on its own (one that fails raises a warning and is left for the next run); idempotent (a second run returns 0); emits invoice.created. Service role; the invoice job (cron job generate-invoices) draws each org in its own transaction instead.';

-- The job draws each org in its own transaction: a DO block run at the top level (as pg_cron runs a job,
-- and the local scheduler likewise) may commit as it goes, so no org's audit chain head waits for the whole
-- run. Not a procedure: Postgres allows transaction control neither in a security definer procedure nor in
-- one with a set clause, and an invoker one without `set search_path` is the mutable search path the
-- database advisors refuse. The month is the one before the run's (UTC). The statement timeout (2 minutes
-- on hosted Supabase) runs from the block's start across its commits (statement_timestamp()), so it stops
-- drawing after 100 s and leaves the rest to the next run, 10 minutes later; orgs already invoiced are not
-- drawn again (private.orgs_to_invoice), so five hours of runs finish the month. A run that drew an invoice
-- wakes the billing function at its end, to render the PDFs.
select cron.schedule('generate-invoices', '*/10 2-6 * * *', $job$do $$
declare
  month_start date := (date_trunc('month', now() at time zone 'UTC') - interval '1 month')::date;
  billed_org uuid;
  created integer := 0;
begin
  perform private.roll_subscriptions();
  commit;
  foreach billed_org in array private.orgs_to_invoice(month_start) loop
    exit when pg_catalog.clock_timestamp() - pg_catalog.statement_timestamp() > interval '100 seconds';
    if private.invoice_org_for_month(billed_org, month_start) then
      created := created + 1;
    end if;
    commit;
  end loop;
  if created > 0 then
    perform private.invoke_edge_function('billing', '{"action": "render_pdfs"}'::jsonb, 5000);
  end if;
end
$$$job$);

revoke execute on function
  private.data_exports_reset_attempts(),
  private.orgs_to_invoice(date),
  private.invoice_org_for_month(uuid, date)
from public, anon, authenticated, service_role;
