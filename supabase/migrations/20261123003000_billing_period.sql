-- The dashboard summary's usage windows no longer sum an org's raw usage
-- events over its billing period for nothing: analytics_usage_windows took
-- the period from private.chat_quota, which also sums the period's chat
-- tokens from usage_events (the chat function's quota check needs that sum;
-- the summary computes its own from the rollups). The period rule moves to
-- private.billing_period, which both use; chat_quota's answers are unchanged.
-- About 0.25 ms of the summary's 7 in process (npm run bench:analytics).

-- The org's plan and current billing period: the active subscription's,
-- rolled forward month by month while it is past its end (roll_subscriptions
-- moves the stored one), else the free plan's calendar month in UTC.
create function private.billing_period(org_id uuid)
returns table (plan_id text, period_start timestamptz, period_end timestamptz)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  active public.subscriptions;
  months_elapsed integer;
  span interval;
begin
  select * into active from public.subscriptions s
  where s.org_id = billing_period.org_id and s.status = 'active';
  if not found then
    plan_id := 'free';
    period_start := pg_catalog.date_trunc('month', pg_catalog.now() at time zone 'UTC') at time zone 'UTC';
    period_end := private.add_months_utc(period_start, 1);
  else
    plan_id := active.plan_id;
    period_start := active.current_period_start;
    period_end := active.current_period_end;
    if pg_catalog.now() >= period_end then
      span := pg_catalog.age(pg_catalog.now() at time zone 'UTC', active.current_period_start at time zone 'UTC');
      months_elapsed := (extract(year from span) * 12 + extract(month from span))::integer;
      -- Month ends clamp (Jan 31 + 1 month = Feb 28): step until the period holds now.
      while private.add_months_utc(active.current_period_start, months_elapsed + 1) <= pg_catalog.now() loop
        months_elapsed := months_elapsed + 1;
      end loop;
      period_start := private.add_months_utc(active.current_period_start, months_elapsed);
      period_end := private.add_months_utc(active.current_period_start, months_elapsed + 1);
    end if;
  end if;
  return next;
end;
$$;

revoke execute on function private.billing_period(uuid) from public;

create or replace function private.chat_quota(org_id uuid)
returns table (plan_id text, monthly_chat_tokens bigint, period_start timestamptz, period_end timestamptz, used_chat_tokens bigint)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  select b.plan_id, b.period_start, b.period_end into chat_quota.plan_id, chat_quota.period_start, chat_quota.period_end
  from private.billing_period(chat_quota.org_id) b;
  select p.monthly_chat_tokens into chat_quota.monthly_chat_tokens from public.plans p where p.id = chat_quota.plan_id;
  select coalesce(sum(u.tokens_in::bigint + u.tokens_out::bigint), 0) into chat_quota.used_chat_tokens
  from public.usage_events u
  where u.org_id = chat_quota.org_id and u.kind = 'chat'
    and u.created_at >= chat_quota.period_start and u.created_at < chat_quota.period_end;
  return next;
end;
$$;

create or replace function private.analytics_usage_windows(org uuid, raw boolean)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  q as materialized (
    select b.plan_id, b.period_start, b.period_end, p.monthly_chat_tokens, p.monthly_embedding_tokens,
      private.analytics_usage_between(org, b.period_start, b.period_end, raw) as used
    from private.billing_period(org) b
    join public.plans p on p.id = b.plan_id
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
