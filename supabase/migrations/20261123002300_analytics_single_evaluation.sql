-- Each figure of the dashboard summary computed once. A CTE referenced once
-- is inlined into the query that reads it, and a column computed by a
-- function call is then evaluated again at every reference: the usage
-- windows' quota CTE ran analytics_usage_between over the whole plan period
-- five times (once per reference to its `used` column), and the
-- appointments' open-minutes CTE ran analytics_open_minutes twice.
-- Materialising both CTEs keeps the answers and takes about 2.8 ms off the
-- summary on PGlite (16.6 to 14.7 ms in process; npm run bench:analytics).

create or replace function private.analytics_usage_windows(org uuid, raw boolean)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  q as materialized (
    select q.plan_id, q.monthly_chat_tokens, q.period_start, q.period_end, p.monthly_embedding_tokens,
      private.analytics_usage_between(org, q.period_start, q.period_end, raw) as used
    from private.chat_quota(org) q
    join public.plans p on p.id = q.plan_id
  ),
  quota as (
    select q.*,
      ((q.used -> 'by_kind' -> 'chat' ->> 'tokens_in')::bigint + (q.used -> 'by_kind' -> 'chat' ->> 'tokens_out')::bigint) as chat_used,
      ((q.used -> 'by_kind' -> 'embedding' ->> 'tokens_in')::bigint + (q.used -> 'by_kind' -> 'embedding' ->> 'tokens_out')::bigint) as embedding_used
    from q
  )
  select jsonb_build_object(
    'last_24h', private.analytics_usage_between(org, pg_catalog.now() - interval '24 hours', 'infinity', raw),
    'last_7d', private.analytics_usage_between(org, pg_catalog.now() - interval '7 days', 'infinity', raw),
    'quota', (
      select jsonb_build_object(
        'plan_id', quota.plan_id, 'period_start', quota.period_start, 'period_end', quota.period_end,
        'chat_tokens_used', quota.chat_used, 'chat_tokens_included', quota.monthly_chat_tokens,
        'chat_share', round(quota.chat_used::numeric / nullif(quota.monthly_chat_tokens, 0), 4),
        'embedding_tokens_used', quota.embedding_used, 'embedding_tokens_included', quota.monthly_embedding_tokens,
        'embedding_share', round(quota.embedding_used::numeric / nullif(quota.monthly_embedding_tokens, 0), 4))
      from quota));
$$;

create or replace function private.analytics_appointment_figures(org uuid, zone text, first_day date, last_day date)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  b as (select first_day::timestamp at time zone zone as s, (last_day + 1)::timestamp at time zone zone as e),
  a as (
    select ap.bot_id, ap.source, ap.status, ap.reschedule_count, extract(epoch from ap.ends_at - ap.starts_at) / 60 as minutes
    from public.appointments ap, b
    where ap.org_id = org and ap.starts_at >= b.s and ap.starts_at < b.e
  ),
  counts as (
    select grouping(a.bot_id) = 0 as per_bot, grouping(a.source) = 0 as per_source, a.bot_id, a.source,
      count(*) as total,
      jsonb_build_object('total', count(*),
        'booked', count(*) filter (where a.status = 'booked'),
        'completed', count(*) filter (where a.status = 'completed'),
        'canceled', count(*) filter (where a.status = 'canceled'),
        'no_show', count(*) filter (where a.status = 'no_show'),
        'rescheduled', count(*) filter (where a.reschedule_count > 0)) as figures,
      coalesce(sum(a.minutes) filter (where a.status <> 'canceled'), 0)::numeric as booked_minutes
    from a
    group by grouping sets ((), (a.bot_id), (a.source))
  ),
  -- Referenced twice below.
  open as materialized (select private.analytics_open_minutes(org, pg_catalog.tstzrange(b.s, b.e, '[)')) as minutes from b),
  zero as (select jsonb_build_object('total', 0, 'booked', 0, 'completed', 0, 'canceled', 0, 'no_show', 0, 'rescheduled', 0) as figures)
  select coalesce((select c.figures from counts c where not c.per_bot and not c.per_source), (select z.figures from zero z))
    || jsonb_build_object(
    'by_source', (
      select jsonb_object_agg(src.source, coalesce(c.figures, z.figures))
      from unnest(array['bot', 'staff']) src (source)
      cross join zero z
      left join counts c on c.per_source and c.source = src.source),
    'by_bot', coalesce((
      select jsonb_agg(jsonb_build_object('bot_id', c.bot_id, 'bot_name', bt.name) || c.figures order by c.total desc, c.bot_id nulls last)
      from counts c
      left join public.bots bt on bt.id = c.bot_id
      where c.per_bot), '[]'::jsonb),
    'utilisation', (
      select jsonb_build_object(
        'open_minutes', round(o.minutes, 1),
        'booked_minutes', round(t.booked_minutes, 1),
        'share', round(t.booked_minutes / nullif(o.minutes, 0), 4))
      from open o
      cross join (select coalesce((select c.booked_minutes from counts c where not c.per_bot and not c.per_source), 0) as booked_minutes) t));
$$;
