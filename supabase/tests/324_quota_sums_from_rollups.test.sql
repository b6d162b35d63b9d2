-- The quota sums read the usage rollup (20261123015100_quota_sums_from_rollups.sql): private.org_usage_tokens
-- adds the quarter-hour rollup's buckets wholly inside a window to the raw events of its partial buckets, and
-- equals the raw sum whatever the window; chat_quota, plan_usage (require_quota) and chat_prepare's
-- embeddings_allowed read it, refuse at the allowance exactly as before, and read a handful of events however
-- many the period holds.
begin;
create extension if not exists pgtap with schema extensions;

select plan(16);

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@324-quota-sums.test'));
select tests.remember('org_e', tests.create_org('quota-sums-324-edges', tests.fx('owner')));
select tests.remember('org_x', tests.create_org('quota-sums-324-other', tests.fx('owner')));
select tests.remember('org_q', tests.create_org('quota-sums-324-quota', tests.fx('owner')));
select tests.remember('org_r', tests.create_org('quota-sums-324-rows', tests.fx('owner')));

create temp table edges (org_id uuid primary key, period_start timestamptz not null, period_end timestamptz not null);
grant all on edges to public;

-- Each org's stored period starts 7.5 minutes into a UTC quarter hour, some days ago.
create function pg_temp.set_period(org uuid, days_ago integer) returns void language sql as $$
  with p as (
    select pg_catalog.date_bin('15 minutes', now() - days_ago * interval '1 day', timestamptz '2000-01-01 00:00+00')
             + interval '7 minutes 30 seconds' as s
  ), u as (
    update public.subscriptions s
    set current_period_start = p.s, current_period_end = private.add_months_utc(p.s, 1)
    from p where s.org_id = org and s.status = 'active'
    returning s.org_id, s.current_period_start, s.current_period_end
  )
  insert into edges select * from u;
$$;
select pg_temp.set_period(tests.fx('org_e'), 10);
select pg_temp.set_period(tests.fx('org_q'), 5);
select pg_temp.set_period(tests.fx('org_r'), 3);

create function pg_temp.raw_tokens(org uuid, kind text, from_at timestamptz, to_at timestamptz) returns bigint language sql stable as $$
  select coalesce(sum(u.tokens_in::bigint + u.tokens_out::bigint), 0)::bigint from public.usage_events u
  where u.org_id = org and u.kind = raw_tokens.kind and u.created_at >= from_at and u.created_at < to_at
$$;

-- ---------------------------------------------------------------------------
-- Events before, at and across both edges of a period starting mid-bucket
-- ---------------------------------------------------------------------------

-- One token figure per place, so any place counted wrongly shows in the total. The period starts 7m30s into a
-- quarter hour, so start - 7m30s opens its bucket, start + 7m30s the first whole one; likewise at the end.
create temp table places (at_offset text primary key, counted boolean not null, tokens integer not null);
insert into places values
  ('start - 1 day', false, 1),
  ('start - 7 minutes 30 seconds', false, 2),
  ('start - 1 second', false, 4),
  ('start', true, 8),
  ('start + 1 second', true, 16),
  ('start + 7 minutes 30 seconds', true, 32),
  ('now - 1 hour', true, 64),
  ('end - 7 minutes 30 seconds 1 microsecond', true, 128),
  ('end - 7 minutes 30 seconds', true, 256),
  ('end - 1 microsecond', true, 512),
  ('end', false, 1024),
  ('end + 1 second', false, 2048),
  ('end + 7 minutes 29 seconds', false, 4096),
  ('end + 1 day', false, 8192);

create function pg_temp.place(org uuid, at_offset text) returns timestamptz language sql stable as $$
  select case split_part(at_offset, ' ', 1)
           when 'start' then e.period_start when 'end' then e.period_end else now() end
         + case when at_offset ~ ' [+-] '
             then (case when at_offset ~ ' - ' then -1 else 1 end) * substring(at_offset from ' [+-] (.*)$')::interval
             else interval '0' end
  from edges e where e.org_id = org
$$;

insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at)
select o.org_id, k.kind, 'm', k.tokens_in_factor * p.tokens, k.tokens_out_factor * p.tokens, pg_temp.place(tests.fx('org_e'), p.at_offset)
from places p
cross join (values (tests.fx('org_e')), (tests.fx('org_x'))) o (org_id)
cross join (values ('chat', 1, 1), ('embedding', 0, 3), ('speech', 100, 0)) k (kind, tokens_in_factor, tokens_out_factor);

select is(
  (select used_chat_tokens from private.chat_quota(tests.fx('org_e'))),
  (select 2 * sum(p.tokens) from places p where p.counted)::bigint,
  'chat_quota: the period''s chat tokens, with the edges'' partial buckets counted from the events (not the bucket before the start, nor after the end)'
);
select is(
  (select used_chat_tokens from private.chat_quota(tests.fx('org_e'))),
  (select pg_temp.raw_tokens(tests.fx('org_e'), 'chat', e.period_start, e.period_end) from edges e where e.org_id = tests.fx('org_e')),
  'chat_quota equals the raw sum of the period''s chat events'
);
select is(
  (select private.org_usage_tokens(tests.fx('org_e'), 'embedding', e.period_start, e.period_end) from edges e where e.org_id = tests.fx('org_e')),
  (select 3 * sum(p.tokens) from places p where p.counted)::bigint,
  'org_usage_tokens: embedding tokens of the period, the other kinds and the other org apart'
);

-- Every window between two of these instants: each place, a microsecond after it, and its bucket's bounds.
create temp table instants as
select distinct t
from places p, lateral (select pg_temp.place(tests.fx('org_e'), p.at_offset) as at) a,
  lateral (values (a.at), (a.at + interval '1 microsecond'),
                  (pg_catalog.date_bin('15 minutes', a.at, timestamptz '2000-01-01 00:00+00')),
                  (pg_catalog.date_bin('15 minutes', a.at, timestamptz '2000-01-01 00:00+00') + interval '15 minutes')) v (t);
create temp table windows as
select f.t as from_at, t.t as to_at, k.kind
from instants f join instants t on t.t > f.t
cross join (values ('chat'), ('embedding'), ('speech')) k (kind);

select is(
  (select count(*) from windows w
   where private.org_usage_tokens(tests.fx('org_e'), w.kind, w.from_at, w.to_at)
         <> pg_temp.raw_tokens(tests.fx('org_e'), w.kind, w.from_at, w.to_at)),
  0::bigint,
  'org_usage_tokens equals the raw sum for every window between the places, their next microsecond and their bucket bounds (edges on and off bucket bounds, windows inside one bucket)'
);
select cmp_ok((select count(*) from windows), '>', 1500::bigint, 'that is over 1,500 windows');

-- The rollup follows updates and deletes of events in the same statement.
update public.usage_events set created_at = created_at - interval '2 seconds'
where org_id = tests.fx('org_e') and kind = 'chat' and tokens_in = 8;
delete from public.usage_events where org_id = tests.fx('org_e') and kind = 'chat' and tokens_in = 512;
select results_eq(
  $$select q.used_chat_tokens, pg_temp.raw_tokens(tests.fx('org_e'), 'chat', q.period_start, q.period_end)
    from private.chat_quota(tests.fx('org_e')) q$$,
  $$select (select 2 * sum(p.tokens) from places p where p.counted)::bigint - 2 * (8 + 512),
           (select 2 * sum(p.tokens) from places p where p.counted)::bigint - 2 * (8 + 512)$$,
  'after an event moved out of the period and one deleted, chat_quota still equals the raw sum'
);

-- ---------------------------------------------------------------------------
-- The quota refuses exactly where it did
-- ---------------------------------------------------------------------------

insert into public.api_keys (org_id, name, prefix, scopes) values
  (tests.fx('org_q'), 'key', 'ak_0000e324', array['chat.write']),
  (tests.fx('org_r'), 'key', 'ak_0001e324', array['chat.write']);
select tests.remember('key_q', id) from public.api_keys where prefix = 'ak_0000e324';
select tests.remember('key_r', id) from public.api_keys where prefix = 'ak_0001e324';
insert into public.bots (org_id, name, slug, channels) values
  (tests.fx('org_q'), 'Bot', 'bot-324', array['api']),
  (tests.fx('org_r'), 'Bot', 'bot-324', array['api']);
select tests.remember('bot_q', id) from public.bots where slug = 'bot-324' and org_id = tests.fx('org_q');
select tests.remember('bot_r', id) from public.bots where slug = 'bot-324' and org_id = tests.fx('org_r');

-- An API key's turn without an end user; its reservation is given back at once, so only usage counts.
create function pg_temp.turn(org text) returns jsonb language plpgsql as $$
declare
  body jsonb;
begin
  perform tests.act_as('service_role');
  body := private.chat_prepare(tests.fx('bot_' || org), null, 'api', null, tests.fx('key_' || org), 'When are you open?');
  perform tests.act_as('postgres');
  delete from private.chat_quota_reservations r where r.org_id = tests.fx('org_' || org);
  return body;
end;
$$;

-- Free plan: 200,000 chat and 1,000,000 embedding tokens. 199,999 and 999,999 used, part of it in the
-- partial bucket the period starts in, whose events before the start would put the org over.
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at)
select tests.fx('org_q'), v.kind, 'm', v.tokens, 0, e.period_start + v.at_offset
from edges e, lateral (values
  ('chat', 50000, interval '-1 second'), ('chat', 100000, interval '1 second'), ('chat', 99999, now() - e.period_start - interval '1 day'),
  ('embedding', 300000, interval '-1 second'), ('embedding', 500000, interval '1 second'), ('embedding', 499999, now() - e.period_start - interval '1 day')
) v (kind, tokens, at_offset)
where e.org_id = tests.fx('org_q');

select is(
  (select t ->> 'ok' || ' ' || (t ->> 'embeddings_allowed') from pg_temp.turn('q') t),
  'true true',
  'chat_prepare: 199,999 of 200,000 chat tokens and 999,999 of 1,000,000 embedding tokens used: answers, and may embed'
);
select lives_ok($$select private.require_quota(tests.fx('org_q'), 'embedding_tokens')$$,
  'require_quota: embedding tokens left');
select results_eq(
  $$select metric, used from private.plan_usage(tests.fx('org_q')) where metric in ('chat_tokens', 'embedding_tokens') order by metric$$,
  $$values ('chat_tokens', 199999::bigint), ('embedding_tokens', 999999::bigint)$$,
  'plan_usage: the period''s chat and embedding tokens'
);
select private.record_usage(tests.fx('org_q'), 'embedding', 'm', 1, 0);
select is(
  (select t ->> 'ok' || ' ' || (t ->> 'embeddings_allowed') from pg_temp.turn('q') t),
  'true false',
  'chat_prepare: at 1,000,000 embedding tokens the turn answers without embedding'
);
select throws_ok($$select private.require_quota(tests.fx('org_q'), 'embedding_tokens')$$, 'PT402', null,
  'require_quota: PT402 at 1,000,000 embedding tokens (the knowledge search''s and ingestion''s check)');
select private.record_usage(tests.fx('org_q'), 'chat', 'm', 1, 0);
select results_eq(
  $$select t ->> 'ok', t ->> 'code', (t ->> 'resets_at')::timestamptz from pg_temp.turn('q') t$$,
  $$select 'false', 'quota_exceeded', e.period_end from edges e where e.org_id = tests.fx('org_q')$$,
  'chat_prepare: at 200,000 chat tokens the org is refused with quota_exceeded and when the period ends'
);

-- ---------------------------------------------------------------------------
-- A few events read, however many the period holds
-- ---------------------------------------------------------------------------

-- Rows of usage_events this transaction has read so far: by sequential scans, and from its indexes (index,
-- index-only and bitmap scans).
create function pg_temp.usage_reads() returns bigint language sql volatile as $$
  select sum(pg_catalog.pg_stat_get_xact_tuples_returned(c.oid))::bigint
  from pg_catalog.pg_class c
  where c.oid = 'public.usage_events'::regclass
     or c.oid in (select i.indexrelid from pg_catalog.pg_index i where i.indrelid = 'public.usage_events'::regclass)
$$;
create temp table reads (label text primary key, rows_read bigint);
create function pg_temp.reads_of(label text, query text) returns bigint language plpgsql as $$
declare
  before bigint := pg_temp.usage_reads();
begin
  execute query;
  insert into reads values (label, pg_temp.usage_reads() - before);
  return pg_temp.usage_reads() - before;
end;
$$;

-- 5,000 chat and 5,000 embedding events of a token each in whole quarter hours of the period, one in each
-- edge's partial bucket.
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at)
select tests.fx('org_r'), k.kind, 'm', 1, 0, now() - interval '2 days' + g * interval '10 seconds'
from generate_series(1, 5000) g cross join (values ('chat'), ('embedding')) k (kind);
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at)
select tests.fx('org_r'), k.kind, 'm', 1, 0, v.at
from edges e, lateral (values (e.period_start + interval '1 second'), (e.period_end - interval '1 second')) v (at),
  (values ('chat'), ('embedding')) k (kind)
where e.org_id = tests.fx('org_r');

select is((select used_chat_tokens from private.chat_quota(tests.fx('org_r'))), 5002::bigint,
  'chat_quota: 5,002 chat tokens in the busy org''s period');
select cmp_ok(pg_temp.reads_of('chat_quota', $$select * from private.chat_quota(tests.fx('org_r'))$$), '<', 20::bigint,
  'chat_quota reads the rollup and the edges'' few events, not the period''s 5,000');
select cmp_ok(pg_temp.reads_of('chat_prepare', $$select pg_temp.turn('r')$$), '<', 40::bigint,
  'chat_prepare (quota and embeddings_allowed) reads a few events, not the period''s 10,000');
select cmp_ok(pg_temp.reads_of('require_quota', $$select private.require_quota(tests.fx('org_r'), 'embedding_tokens')$$), '<', 40::bigint,
  'require_quota (the knowledge search''s and ingestion''s check) reads a few events, not the period''s 10,000');

select diag('usage_events rows read: ' || string_agg(label || ' ' || rows_read, ', ' order by label)) from reads;

select * from finish();
rollback;
