-- Embedding quota before re-ingestion and speech usage (20261123009900_embedding_quota_and_speech_usage.sql).
--
-- retry_document refuses (PT402, require_quota's message) once the org's embedding tokens of the period are
-- used up, for a failed and for a ready document, changing nothing and requesting no ingestion. A call's talk
-- time is metered once (usage_events kind speech, seconds rounded up in tokens_in, the provider as model, its
-- bot) when it is first in a terminal status with a positive duration, whatever writes it again; a call ended
-- without a duration is not metered until one comes. The metering runs after the call's audited change, so
-- the org's head is held before the usage rollup row.
--
-- One transaction, so now() is one instant.
begin;
create extension if not exists pgtap with schema extensions;

select plan(24);

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project-271.example.test', 'project_url');
select vault.create_secret('service-role-271', 'service_role_key');

select tests.remember('owner', tests.create_user('owner@271-embedding-quota.test'));
select tests.remember('member', tests.create_user('member@271-embedding-quota.test'));
select tests.remember('org', tests.create_org('embedding-quota-271', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('member'), 'member');
insert into public.bots (org_id, name, slug) values (tests.fx('org'), 'Voice desk', 'voice-desk-271');
select tests.remember('bot', (select id from public.bots where slug = 'voice-desk-271'));

-- ---------------------------------------------------------------------------
-- retry_document and the embedding quota
-- ---------------------------------------------------------------------------

insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, failure_reason)
select tests.remember(d.name, gen_random_uuid()), tests.fx('org'), d.name || '.txt', 'text/plain', 10,
  tests.fx('org') || '/' || d.name || '.txt', d.status::public.document_status, d.reason
from (values ('under', 'failed', 'Ingestion failed.'), ('over', 'failed', 'Ingestion failed.'),
             ('ready', 'ready', null)) d (name, status, reason);

create temp table marks (label text primary key, n bigint);
grant select on marks to public;
insert into marks select 'queue', coalesce(max(id), 0) from net.http_request_queue;

-- 999,999 of the free plan's 1,000,000 embedding tokens used: one left.
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out)
values (tests.fx('org'), 'embedding', 'text-embedding-3-small', 999999, 0);

select tests.act_as('member');
select lives_ok(
  $$select public.retry_document(tests.fx('under'))$$,
  'retry_document: a member re-queues a failed document while the org has embedding tokens left'
);

select tests.act_as('postgres');
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out)
values (tests.fx('org'), 'embedding', 'text-embedding-3-small', 1, 0);
update marks set n = (select coalesce(max(id), 0) from net.http_request_queue) where label = 'queue';

select tests.act_as('member');
select throws_ok(
  $$select public.retry_document(tests.fx('over'))$$,
  'PT402',
  'quota exceeded: the Free plan includes 1000000 embedding tokens per month and 1000000 are used in this period',
  'retry_document: refused with PT402 once the period''s embedding tokens are used up'
);
select throws_ok(
  $$select public.retry_document(tests.fx('ready'))$$,
  'PT402',
  null,
  'retry_document: a ready document is refused too (re-ingesting it embeds the whole file again)'
);
select tests.act_as('postgres');
select results_eq(
  $$select name, status::text, failure_reason from public.documents
    where id in (tests.fx('over'), tests.fx('ready')) order by name$$,
  $$values ('over.txt', 'failed', 'Ingestion failed.'), ('ready.txt', 'ready', null::text)$$,
  'retry_document: the refused documents stay as they were'
);
select is_empty(
  $$select id from net.http_request_queue where id > (select n from marks where label = 'queue')$$,
  'retry_document: no ingestion is requested for a refused retry'
);

-- The service role (the documents API's retry, acting for an API key) is held to the same quota.
select tests.act_as('service_role');
select throws_ok(
  $$select public.retry_document(tests.fx('over'))$$,
  'PT402',
  null,
  'retry_document: the service role is refused too'
);

-- ---------------------------------------------------------------------------
-- Speech metered once per call
-- ---------------------------------------------------------------------------
select tests.act_as('postgres');

-- At each speech usage row: whether the call's end was already in the audit log (the head taken before the
-- usage rollup row), and whether the org's stale-day mark was (every call writer marks the day, then meters).
create table pg_temp.speech_at_insert (call_id uuid, audited_end boolean, day_marked boolean);
create function pg_temp.record_speech_at_insert()
returns trigger
language plpgsql
as $$
begin
  if new.kind = 'speech' then
    insert into pg_temp.speech_at_insert (call_id, audited_end, day_marked)
    select c.id, exists (
      select 1 from public.audit_log a
      where a.table_name = 'calls' and a.record_id = c.id::text and a.new_values ->> 'ended_at' is not null
    ), exists (select 1 from private.analytics_stale_days d where d.org_id = new.org_id)
    from public.calls c
    where c.org_id = new.org_id and c.status_rank = 4 and not exists (
      select 1 from pg_temp.speech_at_insert s where s.call_id = c.id)
      and exists (select 1 from private.metered_call_speech m where m.call_id = c.id);
  end if;
  return new;
end;
$$;
create trigger a_speech_at_insert before insert on public.usage_events
  for each row execute function pg_temp.record_speech_at_insert();
grant all on pg_temp.speech_at_insert to public;
grant execute on function pg_temp.record_speech_at_insert() to public;

-- A call answered 90.2 seconds ago, in progress: nothing metered yet.
insert into public.calls (org_id, bot_id, direction, status, started_at, provider, provider_call_id, from_number)
values (tests.fx('org'), tests.fx('bot'), 'inbound', 'in_progress', now() - interval '90.2 seconds', 'vapi',
        'speech-271-a', '+14155550101');
select tests.remember('call_a', (select id from public.calls where provider_call_id = 'speech-271-a'));
select is(
  (select count(*)::integer from public.usage_events where org_id = tests.fx('org') and kind = 'speech'),
  0, 'a call in progress is not metered'
);

update public.calls set status = 'ended' where id = tests.fx('call_a');
select results_eq(
  $$select model, tokens_in, tokens_out, bot_id from public.usage_events
    where org_id = tests.fx('org') and kind = 'speech'$$,
  $$values ('vapi', 91, 0, tests.fx('bot'))$$,
  'the end meters its talk time once: 90.2 s as 91 seconds in tokens_in, the provider as model, the bot'
);
select is(
  (select audited_end from pg_temp.speech_at_insert where call_id = tests.fx('call_a')),
  true,
  'the usage row comes after the call''s audited end (the org''s head is held before the usage rollup row)'
);

-- Written again: the same status, a summary, a corrected duration.
update public.calls set status = 'ended' where id = tests.fx('call_a');
update public.calls set summary = 'Asked about opening hours.' where id = tests.fx('call_a');
update public.calls set duration_seconds = 120 where id = tests.fx('call_a');
select is(
  (select count(*)::integer from public.usage_events where org_id = tests.fx('org') and kind = 'speech'),
  1, 'writing the ended call again (the same status, a summary, a corrected duration) meters nothing more'
);

-- Even a duration cleared and set again (a direct write) is not metered twice.
update public.calls set duration_seconds = null where id = tests.fx('call_a');
update public.calls set duration_seconds = 30 where id = tests.fx('call_a');
select is(
  (select count(*)::integer from public.usage_events where org_id = tests.fx('org') and kind = 'speech'),
  1, 'a duration cleared and set again is not metered twice'
);

-- A call that rang and was not answered: no duration, nothing metered.
insert into public.calls (org_id, bot_id, direction, status, provider, provider_call_id, from_number)
values (tests.fx('org'), tests.fx('bot'), 'inbound', 'ringing', 'vapi', 'speech-271-b', '+14155550102');
select tests.remember('call_b', (select id from public.calls where provider_call_id = 'speech-271-b'));
update public.calls set status = 'no_answer' where id = tests.fx('call_b');
select is(
  (select duration_seconds from public.calls where id = tests.fx('call_b')),
  null, 'a call that was never answered ends without a duration'
);
select is(
  (select count(*)::integer from public.usage_events where org_id = tests.fx('org') and kind = 'speech'),
  1, 'a call that ends without a duration is not metered'
);
select is(
  (select count(*)::integer from private.metered_call_speech where call_id = tests.fx('call_b')),
  0, 'and is not marked as metered'
);
-- The provider's report brings a duration after the end: metered then, once. No status changes, so no
-- audited write and no head: the day is marked before the usage rollup row all the same, the order of a
-- call-event batch's status changes (a mark, then the rollup row), so two such batches cannot deadlock.
delete from private.analytics_stale_days where org_id = tests.fx('org');
update public.calls set duration_seconds = 12.001 where id = tests.fx('call_b');
select is(
  (select day_marked from pg_temp.speech_at_insert where call_id = tests.fx('call_b')),
  true,
  'a duration alone marks the org''s day before the usage rollup row'
);
update public.calls set duration_seconds = 14 where id = tests.fx('call_b');
select results_eq(
  $$select tokens_in from public.usage_events where org_id = tests.fx('org') and kind = 'speech' order by id$$,
  $$values (91), (13)$$,
  'a duration that comes after the end is metered when it comes, once (12.001 s as 13)'
);

-- A call whose start and end are one instant: a zero duration, nothing to meter.
insert into public.calls (org_id, direction, status, started_at, ended_at, provider, provider_call_id, from_number)
values (tests.fx('org'), 'web', 'ended', now(), now(), 'vapi', 'speech-271-c', null);
select is(
  (select count(*)::integer from public.usage_events where org_id = tests.fx('org') and kind = 'speech'),
  2, 'a call of zero seconds is not metered'
);

-- Through the provider's events: an end-of-call report for a call we never heard of creates it ended, with
-- its duration; delivered again, and followed by another report, it is still metered once.
create function pg_temp.report(event_id text, duration numeric)
returns jsonb
language sql
stable
as $$
  select jsonb_build_array(jsonb_build_object('org_id', tests.fx('org'), 'payload', jsonb_build_object('raw', event_id),
    'event', jsonb_build_object('event_id', event_id, 'provider', 'vapi', 'type', 'call.ended',
      'provider_call_id', 'speech-271-d', 'occurred_at', '2026-11-23T10:05:00Z',
      'started_at', '2026-11-23T10:00:00Z', 'ended_at', '2026-11-23T10:05:00Z', 'duration_seconds', duration,
      'metadata', jsonb_build_object('bot_id', tests.fx('bot')))));
$$;
select lives_ok($$select private.apply_call_events(pg_temp.report('speech-271-d-1', 299.5))$$,
  'an end-of-call report creates the call, ended');
select lives_ok($$select private.apply_call_events(pg_temp.report('speech-271-d-1', 299.5))$$,
  'the same report delivered again');
select lives_ok($$select private.apply_call_events(pg_temp.report('speech-271-d-2', 301))$$,
  'another report of the same call with another duration');
select results_eq(
  $$select u.model, u.tokens_in, u.bot_id from public.usage_events u
    where u.org_id = tests.fx('org') and u.kind = 'speech' and u.tokens_in > 100 and u.tokens_in <> 91$$,
  $$values ('vapi', 300, tests.fx('bot'))$$,
  'the reported call is metered once, at its first duration (299.5 s as 300), with its bot'
);
select is(
  (select count(*)::integer from private.metered_call_speech m
   join public.calls c on c.id = m.call_id where c.org_id = tests.fx('org')),
  3, 'three calls of the org are marked metered, each once'
);
select is(
  (select bool_and(audited_end) from pg_temp.speech_at_insert),
  true,
  'every speech usage row came after its call''s audited end'
);

-- The figures users read.
select tests.act_as('owner');
select results_eq(
  $$select tokens_in_24h, tokens_out_24h from public.usage_totals(tests.fx('org')) where kind = 'speech'$$,
  $$values (404::bigint, 0::bigint)$$,
  'usage_totals reports the speech seconds (91 + 13 + 300)'
);

select * from finish();
rollback;
