-- The analytics rollups count per UTC quarter hour instead of per UTC hour.
-- Every zone's offset is a whole number of quarter hours (India +5:30, Nepal
-- +5:45, Chatham +12:45, Lord Howe's half-hour daylight saving), so a local
-- midnight is always a bucket boundary and days are now cut exactly in any
-- zone: before, a zone with a half-hour or 45-minute offset put a whole hour
-- bucket on the day its first minute fell in, moving up to 45 minutes of
-- chat and usage across local midnight. The tables and their `hour` columns
-- keep their names; the column holds the bucket's start.
--
-- Buckets are date_bin('15 minutes', t, '2000-01-01 00:00+00'), written out
-- in each function (a helper would be called once per row by the triggers).
-- Bucket rows exist only where something happened, so at dashboard
-- densities (about one conversation an hour) the row counts barely change; a
-- busy org gets up to four times its hour rows. The summary in the org's own
-- zone reads the day rows, unchanged.
--
-- The raw aggregations (which verify_rollups compares with), the statement
-- triggers and usage_between (whose partial edges are now quarter hours) are
-- redefined with the new bucket, then every rollup is rebuilt from the raw
-- tables: on a large database this migration reads all messages,
-- conversations, usage events and calls once.

create or replace function private.analytics_raw_conversation_hours(org_ids uuid[])
returns setof private.analytics_conversation_hours
language sql
stable
security invoker
set search_path = ''
as $$
  select c.org_id, m.conversation_id, pg_catalog.date_bin('15 minutes', m.created_at, timestamptz '2000-01-01 00:00+00'),
    private.analytics_end_user(c.channel, c.external_user_id, c.user_id, c.id),
    (count(*) filter (where m.role = 'user'))::integer,
    (count(*) filter (where m.role = 'assistant'))::integer,
    (count(*) filter (where m.role = 'system'))::integer,
    coalesce(sum(m.tokens_in), 0)::bigint,
    coalesce(sum(m.tokens_out), 0)::bigint
  from public.messages m
  join public.conversations c on c.id = m.conversation_id
  where m.org_id = any (org_ids)
  group by c.org_id, m.conversation_id, pg_catalog.date_bin('15 minutes', m.created_at, timestamptz '2000-01-01 00:00+00'), c.channel, c.external_user_id, c.user_id, c.id;
$$;

create or replace function private.analytics_raw_conversation_events(org_ids uuid[])
returns setof private.analytics_conversation_events
language sql
stable
security invoker
set search_path = ''
as $$
  select c.org_id, pg_catalog.date_bin('15 minutes', t.at, timestamptz '2000-01-01 00:00+00'), c.bot_id, c.channel,
    sum(t.started)::integer, sum(t.escalated)::integer, sum(t.closed)::integer
  from public.conversations c
  cross join lateral (values (c.created_at, 1, 0, 0), (c.escalated_at, 0, 1, 0), (c.closed_at, 0, 0, 1)) t (at, started, escalated, closed)
  where c.org_id = any (org_ids) and t.at is not null
  group by 1, 2, 3, 4;
$$;

create or replace function private.analytics_raw_usage_hours(org_ids uuid[])
returns setof private.analytics_usage_hours
language sql
stable
security invoker
set search_path = ''
as $$
  select u.org_id, pg_catalog.date_bin('15 minutes', u.created_at, timestamptz '2000-01-01 00:00+00'), u.kind, u.bot_id, u.api_key_id,
    count(*)::integer, sum(u.tokens_in)::bigint, sum(u.tokens_out)::bigint
  from public.usage_events u
  where u.org_id = any (org_ids)
  group by 1, 2, 3, 4, 5;
$$;

create or replace function private.analytics_raw_end_users(org_ids uuid[])
returns setof private.analytics_end_users
language sql
stable
security invoker
set search_path = ''
as $$
  select c.org_id, private.analytics_end_user(c.channel, c.external_user_id, c.user_id, c.id),
    min(pg_catalog.date_bin('15 minutes', m.created_at, timestamptz '2000-01-01 00:00+00'))
  from public.messages m
  join public.conversations c on c.id = m.conversation_id
  where m.org_id = any (org_ids) and m.role = 'user'
  group by 1, 2;
$$;

create or replace function private.analytics_messages_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  old_list public.messages[] := '{}';
  new_list public.messages[] := '{}';
  conversation_ids uuid[];
  user_orgs uuid[];
  end_users text[];
  day_orgs uuid[];
  day_ats timestamptz[];
begin
  -- Each event has its own trigger (transition tables allow one event each);
  -- only the tables of this event exist here.
  if tg_op <> 'INSERT' then
    select coalesce(array_agg(o), '{}') into old_list from old_rows o;
  end if;
  if tg_op <> 'DELETE' then
    select coalesce(array_agg(n), '{}') into new_list from new_rows n;
  end if;

  insert into private.analytics_conversation_hours as h
    (org_id, conversation_id, hour, end_user, user_messages, assistant_messages, system_messages, tokens_in, tokens_out)
  select c.org_id, d.conversation_id, d.hour, private.analytics_end_user(c.channel, c.external_user_id, c.user_id, c.id),
    d.user_messages, d.assistant_messages, d.system_messages, d.tokens_in, d.tokens_out
  from (
    select r.conversation_id, pg_catalog.date_bin('15 minutes', r.created_at, timestamptz '2000-01-01 00:00+00') as hour,
      sum(r.sign * (r.role = 'user')::integer)::integer as user_messages,
      sum(r.sign * (r.role = 'assistant')::integer)::integer as assistant_messages,
      sum(r.sign * (r.role = 'system')::integer)::integer as system_messages,
      sum(r.sign * r.tokens_in::bigint)::bigint as tokens_in,
      sum(r.sign * r.tokens_out::bigint)::bigint as tokens_out
    from (
      select o.conversation_id, o.created_at, o.role, o.tokens_in, o.tokens_out, -1 as sign from unnest(old_list) o
      union all
      select n.conversation_id, n.created_at, n.role, n.tokens_in, n.tokens_out, 1 from unnest(new_list) n
    ) r
    group by 1, 2
  ) d
  -- No conversation: this is its cascade, and its rows went with it.
  join public.conversations c on c.id = d.conversation_id
  where d.user_messages <> 0 or d.assistant_messages <> 0 or d.system_messages <> 0
    or d.tokens_in <> 0 or d.tokens_out <> 0
  on conflict (conversation_id, hour) do update
  set user_messages = h.user_messages + excluded.user_messages,
      assistant_messages = h.assistant_messages + excluded.assistant_messages,
      system_messages = h.system_messages + excluded.system_messages,
      tokens_in = h.tokens_in + excluded.tokens_in,
      tokens_out = h.tokens_out + excluded.tokens_out;

  if tg_op <> 'INSERT' then
    delete from private.analytics_conversation_hours h
    where h.conversation_id = any (array(select distinct o.conversation_id from unnest(old_list) o))
      and h.user_messages = 0 and h.assistant_messages = 0 and h.system_messages = 0;
  end if;

  conversation_ids := array(
    select o.conversation_id from unnest(old_list) o
    union
    select n.conversation_id from unnest(new_list) n
  );
  -- The end users who wrote in the conversations touched (none when their
  -- conversation is being deleted: its trigger refreshes them).
  select coalesce(array_agg(k.org_id), '{}'), coalesce(array_agg(k.end_user), '{}') into user_orgs, end_users
  from (
    select distinct c.org_id, private.analytics_end_user(c.channel, c.external_user_id, c.user_id, c.id) as end_user
    from public.conversations c
    where c.id = any (array(
      select o.conversation_id from unnest(old_list) o where o.role = 'user'
      union
      select n.conversation_id from unnest(new_list) n where n.role = 'user'))
  ) k;

  -- The days touched: the messages' own, and those of the first answers and
  -- first-seen hours before and after they are recomputed (a deleted first
  -- answer moves its conversation's to another message, maybe another day).
  select array_agg(x.org_id), array_agg(x.at) into day_orgs, day_ats
  from (
    select o.org_id, o.created_at as at from unnest(old_list) o
    union
    select n.org_id, n.created_at from unnest(new_list) n
    union
    select f.org_id, f.responded_at from private.analytics_first_responses f where f.conversation_id = any (conversation_ids)
    union
    select e.org_id, e.first_hour from private.analytics_end_users e, unnest(user_orgs, end_users) k (org_id, end_user)
    where e.org_id = k.org_id and e.end_user = k.end_user
  ) x;
  perform private.analytics_refresh_first_responses(conversation_ids);
  perform private.analytics_refresh_end_users(user_orgs, end_users);
  select day_orgs || array_agg(x.org_id), day_ats || array_agg(x.at) into day_orgs, day_ats
  from (
    select f.org_id, f.responded_at as at from private.analytics_first_responses f where f.conversation_id = any (conversation_ids)
    union
    select e.org_id, e.first_hour from private.analytics_end_users e, unnest(user_orgs, end_users) k (org_id, end_user)
    where e.org_id = k.org_id and e.end_user = k.end_user
  ) x;
  perform private.analytics_mark_days(day_orgs, day_ats);
  return null;
end;
$$;

create or replace function private.analytics_conversations_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  old_list public.conversations[] := '{}';
  new_list public.conversations[] := '{}';
  conversation_ids uuid[];
  user_orgs uuid[];
  end_users text[];
  day_orgs uuid[];
  day_ats timestamptz[];
begin
  if tg_op = 'UPDATE' then
    -- Most updates are the message counter (one per message): stop at once
    -- when nothing the rollups read has changed.
    if not exists (
      select 1 from old_rows o
      left join new_rows n on n.id = o.id
      where n.id is null
        or (o.org_id, o.bot_id, o.channel, o.created_at, o.escalated_at, o.closed_at, o.external_user_id, o.user_id)
           is distinct from (n.org_id, n.bot_id, n.channel, n.created_at, n.escalated_at, n.closed_at, n.external_user_id, n.user_id)
    ) then
      return null;
    end if;
  end if;
  if tg_op <> 'INSERT' then
    select coalesce(array_agg(o), '{}') into old_list from old_rows o;
  end if;
  if tg_op <> 'DELETE' then
    select coalesce(array_agg(n), '{}') into new_list from new_rows n;
  end if;

  insert into private.analytics_conversation_events as e (org_id, hour, bot_id, channel, started, escalated, closed)
  select d.org_id, d.hour, d.bot_id, d.channel, sum(d.started)::integer, sum(d.escalated)::integer, sum(d.closed)::integer
  from (
    select r.org_id, pg_catalog.date_bin('15 minutes', t.at, timestamptz '2000-01-01 00:00+00') as hour, r.bot_id, r.channel,
      r.sign * t.started as started, r.sign * t.escalated as escalated, r.sign * t.closed as closed
    from (
      select o.org_id, o.bot_id, o.channel, o.created_at, o.escalated_at, o.closed_at, -1 as sign from unnest(old_list) o
      union all
      select n.org_id, n.bot_id, n.channel, n.created_at, n.escalated_at, n.closed_at, 1 from unnest(new_list) n
    ) r
    cross join lateral (values (r.created_at, 1, 0, 0), (r.escalated_at, 0, 1, 0), (r.closed_at, 0, 0, 1)) t (at, started, escalated, closed)
    where t.at is not null
  ) d
  where exists (select 1 from public.organizations o where o.id = d.org_id)
  group by 1, 2, 3, 4
  having sum(d.started) <> 0 or sum(d.escalated) <> 0 or sum(d.closed) <> 0
  on conflict (org_id, hour, bot_id, channel) do update
  set started = e.started + excluded.started,
      escalated = e.escalated + excluded.escalated,
      closed = e.closed + excluded.closed;

  -- The days touched: the events' own and, when conversations go or change
  -- hands, those of their hour rows, first answers and end users' first
  -- hours (before and after).
  conversation_ids := array(select o.id from unnest(old_list) o);
  select coalesce(array_agg(k.org_id), '{}'), coalesce(array_agg(k.end_user), '{}') into user_orgs, end_users
  from (
    select o.org_id, private.analytics_end_user(o.channel, o.external_user_id, o.user_id, o.id) as end_user from unnest(old_list) o
    union
    select n.org_id, private.analytics_end_user(n.channel, n.external_user_id, n.user_id, n.id) from unnest(new_list) n
    where tg_op = 'UPDATE'
  ) k;
  select array_agg(x.org_id), array_agg(x.at) into day_orgs, day_ats
  from (
    select r.org_id, t.at
    from (
      select o.org_id, o.created_at, o.escalated_at, o.closed_at from unnest(old_list) o
      union all
      select n.org_id, n.created_at, n.escalated_at, n.closed_at from unnest(new_list) n
    ) r
    cross join lateral (values (r.created_at), (r.escalated_at), (r.closed_at)) t (at)
    union
    select h.org_id, h.hour from private.analytics_conversation_hours h where h.conversation_id = any (conversation_ids)
    union
    select f.org_id, f.responded_at from private.analytics_first_responses f where f.conversation_id = any (conversation_ids)
    union
    select e.org_id, e.first_hour from private.analytics_end_users e, unnest(user_orgs, end_users) k (org_id, end_user)
    where e.org_id = k.org_id and e.end_user = k.end_user
  ) x;

  if tg_op = 'DELETE' then
    -- Its messages go too (cascade), whichever trigger runs first.
    delete from private.analytics_conversation_hours h where h.conversation_id = any (conversation_ids);
    delete from private.analytics_first_responses f where f.conversation_id = any (conversation_ids);
  elsif tg_op = 'UPDATE' then
    -- The end user changes when the signed-in user is deleted (user_id set
    -- null): a departed user's conversations become end users of their own.
    update private.analytics_conversation_hours h
    set org_id = n.org_id, end_user = private.analytics_end_user(n.channel, n.external_user_id, n.user_id, n.id)
    from unnest(new_list) n
    where h.conversation_id = n.id
      and (h.org_id, h.end_user) is distinct from (n.org_id, private.analytics_end_user(n.channel, n.external_user_id, n.user_id, n.id));
    update private.analytics_first_responses f
    set org_id = n.org_id
    from unnest(new_list) n
    where f.conversation_id = n.id and f.org_id <> n.org_id;
  end if;
  if tg_op <> 'INSERT' then
    perform private.analytics_refresh_end_users(user_orgs, end_users);
    select day_orgs || array_agg(e.org_id), day_ats || array_agg(e.first_hour) into day_orgs, day_ats
    from private.analytics_end_users e, unnest(user_orgs, end_users) k (org_id, end_user)
    where e.org_id = k.org_id and e.end_user = k.end_user;
  end if;
  perform private.analytics_mark_days(day_orgs, day_ats);
  return null;
end;
$$;

create or replace function private.analytics_usage_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  old_list public.usage_events[] := '{}';
  new_list public.usage_events[] := '{}';
begin
  if tg_op <> 'INSERT' then
    select coalesce(array_agg(o), '{}') into old_list from old_rows o;
  end if;
  if tg_op <> 'DELETE' then
    select coalesce(array_agg(n), '{}') into new_list from new_rows n;
  end if;

  insert into private.analytics_usage_hours as h (org_id, hour, kind, bot_id, api_key_id, events, tokens_in, tokens_out)
  select r.org_id, pg_catalog.date_bin('15 minutes', r.created_at, timestamptz '2000-01-01 00:00+00'), r.kind, r.bot_id, r.api_key_id,
    sum(r.sign)::integer, sum(r.sign * r.tokens_in::bigint)::bigint, sum(r.sign * r.tokens_out::bigint)::bigint
  from (
    select o.org_id, o.created_at, o.kind, o.bot_id, o.api_key_id, o.tokens_in, o.tokens_out, -1 as sign from unnest(old_list) o
    union all
    select n.org_id, n.created_at, n.kind, n.bot_id, n.api_key_id, n.tokens_in, n.tokens_out, 1 from unnest(new_list) n
  ) r
  where exists (select 1 from public.organizations o where o.id = r.org_id)
  group by 1, 2, 3, 4, 5
  having sum(r.sign) <> 0 or sum(r.sign * r.tokens_in::bigint) <> 0 or sum(r.sign * r.tokens_out::bigint) <> 0
  on conflict on constraint analytics_usage_hours_key do update
  set events = h.events + excluded.events,
      tokens_in = h.tokens_in + excluded.tokens_in,
      tokens_out = h.tokens_out + excluded.tokens_out;

  perform private.analytics_mark_days(array_agg(x.org_id), array_agg(x.created_at))
  from (
    select o.org_id, o.created_at from unnest(old_list) o
    union
    select n.org_id, n.created_at from unnest(new_list) n
  ) x;
  return null;
end;
$$;

create or replace function private.analytics_usage_between(org uuid, from_at timestamptz, to_at timestamptz, raw boolean)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  full_start timestamptz := case when pg_catalog.date_bin('15 minutes', from_at, timestamptz '2000-01-01 00:00+00') = from_at then from_at
                                 else pg_catalog.date_bin('15 minutes', from_at, timestamptz '2000-01-01 00:00+00') + interval '15 minutes' end;
  full_end timestamptz := pg_catalog.date_bin('15 minutes', to_at, timestamptz '2000-01-01 00:00+00');
  whole_raw boolean := raw or full_start >= full_end;
  result jsonb;
begin
  with
  parts as (
    select h.kind, h.tokens_in, h.tokens_out
    from private.analytics_usage_hours h
    where not whole_raw and h.org_id = org and h.hour >= full_start and h.hour < full_end
    union all
    select u.kind, u.tokens_in::bigint, u.tokens_out::bigint
    from public.usage_events u
    where whole_raw and u.org_id = org and u.created_at >= from_at and u.created_at < to_at
    union all
    select u.kind, u.tokens_in::bigint, u.tokens_out::bigint
    from public.usage_events u
    where not whole_raw and u.org_id = org and u.created_at >= from_at and u.created_at < full_start
    union all
    select u.kind, u.tokens_in::bigint, u.tokens_out::bigint
    from public.usage_events u
    where not whole_raw and u.org_id = org and u.created_at >= full_end and u.created_at < to_at
  ),
  per_kind as materialized (
    select p.kind, sum(p.tokens_in) as tokens_in, sum(p.tokens_out) as tokens_out from parts p group by p.kind
  ),
  k as (
    select kinds.kind, coalesce(p.tokens_in, 0) as tokens_in, coalesce(p.tokens_out, 0) as tokens_out
    from unnest(array['chat', 'embedding', 'speech']) kinds (kind)
    left join per_kind p on p.kind = kinds.kind
  )
  select jsonb_build_object(
    'tokens_in', sum(k.tokens_in), 'tokens_out', sum(k.tokens_out),
    'by_kind', jsonb_object_agg(k.kind, jsonb_build_object('tokens_in', k.tokens_in, 'tokens_out', k.tokens_out)))
  into result
  from k;
  return result;
end;
$$;

comment on table private.analytics_conversation_hours is 'Rollup of public.messages per conversation and UTC quarter hour (the hour column holds the bucket''s start; kept by statement triggers; see private.verify_rollups).';
comment on table private.analytics_conversation_events is 'Rollup of public.conversations: started, escalated, closed per UTC quarter hour (the hour column), bot and channel.';
comment on table private.analytics_usage_hours is 'Rollup of public.usage_events per UTC quarter hour (the hour column), kind, bot and API key.';
comment on table private.analytics_end_users is 'Each end user''s first UTC quarter hour with a user message (first_hour holds the bucket''s start; derived from analytics_conversation_hours; kept by the message and conversation triggers).';

select private.rebuild_analytics_rollups();
