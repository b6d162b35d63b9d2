-- Claimed calls are checked again before they are dialled, when they waited in the pass.
--
-- The dispatcher claims up to 10 calls at once (claim_due_calls, a lease of about a minute) and dials them 5 at a
-- time, each dial allowed 15 s: the last of a batch can wait about 15 s after its claim. Meanwhile
-- cancel_call_campaign leaves leased calls to the dispatcher and cancel_call refuses them (23514 "being dialled
-- right now"), and an org or bot can be deleted; the waiting calls were then dialled anyway, and
-- record_dial_result made them `ringing`: people were called after their campaign was canceled, or for a bot or
-- org that no longer existed. The webhook dispatcher already checks a delivery that waited at hand over a second
-- before sending it (stillCurrent in functions/webhook-dispatcher/dispatch.ts); the call dispatcher now asks
-- private.dial_claim_verdict of a claim that waited over a second and dials only a `dial`. A claim to give back
-- goes to private.give_back_dial_claim (below): a canceled campaign's call ends canceled (canceled-by-user),
-- any other is given back without an attempt, and the next claim fails it with the reason when it still cannot be
-- dialled (the bot deleted, disabled, without a voice assistant or off the voice channel).
-- Reads only, no lock: a change committed after the check and before the POST (milliseconds) is not seen, as
-- for webhooks; the claim's row lock would hold cancel_call_campaign and bot deletion for the whole dial.

create function private.dial_claim_verdict(call_id uuid, attempt integer)
returns table (verdict text, reason text)
language sql
stable
security definer
set search_path = ''
as $$
  select
    case
      -- The org's deletion deletes its calls: a call still here has its org.
      when c.id is null then 'gone'
      when m.moved_on then 'stale'
      when p.problem is not null then 'give_back'
      else 'dial'
    end,
    case when c.id is not null and not m.moved_on then p.problem end
  from (select dial_claim_verdict.call_id as id, dial_claim_verdict.attempt as attempt) g
  left join public.calls c on c.id = g.id
  left join public.call_campaigns k on k.id = c.campaign_id and k.org_id = c.org_id
  left join public.bots b on b.id = c.bot_id and b.org_id = c.org_id
  -- The claim moved on (an event, another attempt or a lookup): not this pass's to dial or give back.
  cross join lateral (
    select c.status <> 'queued' or c.dial_attempts is distinct from g.attempt or c.dial_started_at is null
      or c.dial_lookups <> 0 as moved_on
  ) m
  cross join lateral (
    select case
      -- A lookup may take the call over once the lease ran out: dialled now, it could be placed twice.
      when c.dial_lease_until is null or c.dial_lease_until <= pg_catalog.now() then 'the dial claim''s lease ran out before it was dialled'
      when k.status = 'canceled' then 'the campaign was canceled'
      when b.id is null then 'the bot was deleted'
      when not b.enabled then 'the bot is disabled'
      when b.voice_assistant_id is null then 'the bot has no voice assistant'
      when not ('voice' = any (b.channels)) then 'the bot does not answer on the voice channel'
    end as problem
  ) p;
$$;
comment on function private.dial_claim_verdict(uuid, integer) is 'Whether a dial claim (call, attempt) may still be dialled, asked before a claim that waited in the dispatcher''s pass is dialled: one row (verdict, reason), verdict dial, give_back (reason: the lease ran out, the campaign was canceled, the bot deleted, disabled, without a voice assistant or off the voice channel; give it back with give_back_dial_claim), stale (the claim moved on) or gone (the call, or its org, was deleted). Reads only. Service role.';

revoke execute on function private.dial_claim_verdict(uuid, integer) from public, anon, authenticated;
grant execute on function private.dial_claim_verdict(uuid, integer) to service_role;

-- A claim that waited and may no longer be dialled goes back as release_dial_claims gives back a throttled one, but
-- without its throttle bookkeeping: the provider did not hold it back, so `dial_throttled_since` (the start of the
-- call's throttled run, from which 24 hours fail it) is left as it was, and no throttled run fails it here.
create function private.give_back_dial_claim(call_id uuid, attempt integer, reason text)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  verdict text;
begin
  -- Record_dial_result's lock on the call.
  perform 1 from public.calls c where c.id = give_back_dial_claim.call_id for update;
  if not found then
    return 'gone';
  end if;
  update public.calls c set
    status = case when coalesce(k.status = 'canceled', false) then 'canceled' else 'queued' end::public.call_status,
    ended_reason = case when coalesce(k.status = 'canceled', false) then 'canceled-by-user' else c.ended_reason end,
    last_dial_error = pg_catalog.left(coalesce(nullif(pg_catalog.btrim(give_back_dial_claim.reason), ''), 'not dialled'), 1000),
    next_dial_at = case when coalesce(k.status = 'canceled', false) then null else pg_catalog.now() + interval '1 second' end,
    dial_lease_until = null,
    dial_attempts = c.dial_attempts - 1,
    dial_started_at = null,
    dial_target = null
  from public.calls s
  left join public.call_campaigns k on k.id = s.campaign_id and k.org_id = s.org_id
  where c.id = give_back_dial_claim.call_id and s.id = c.id
    -- Still this pass's claim: the same attempt, stamped, no lookup begun, not yet answered.
    and c.status = 'queued' and c.dial_started_at is not null and c.dial_lookups = 0
    and c.dial_attempts = give_back_dial_claim.attempt and give_back_dial_claim.attempt > 0
  returning case when c.status = 'canceled' then 'canceled' else 'released' end into verdict;
  return coalesce(verdict, 'stale');
end;
$$;
comment on function private.give_back_dial_claim(uuid, integer, text) is 'Gives back a dial claim (call, attempt) that waited in the dispatcher''s pass and may no longer be dialled (dial_claim_verdict said give_back): the attempt is undone and the call due again a second later with last_dial_error = reason, or canceled (canceled-by-user) when its campaign was canceled; dial_throttled_since is left as it was. Returns released, canceled, stale (the claim moved on) or gone. Service role.';

revoke execute on function private.give_back_dial_claim(uuid, integer, text) from public, anon, authenticated;
grant execute on function private.give_back_dial_claim(uuid, integer, text) to service_role;
