/**
 * `npm run bench:analytics`: the dashboard summary (`analytics_dashboard_summary`)
 * for one org over 90 days, from the rollups, against the same figures
 * computed from the raw tables (`private.dashboard_summary_raw`).
 * Targets: p95 under 50 ms, and at least 20x faster than the raw version.
 *
 * On a throwaway embedded stack (PGlite, WASM, behind the wire server; no
 * functions, no scheduler): 50 orgs holding 1,000,000 messages (200,000
 * conversations of 5), 200,000 usage events, 200,000 calls and 50,000
 * appointments spread over the last 120 days, plus documents, upload batches,
 * members and invitations. The measured org holds its proportional share
 * (a fiftieth). Seeding is set-based (generate_series inserts) in one
 * transaction with triggers off (`session_replication_role = replica`: no
 * per-row counters, audit or events, no rollup triggers), then the rollups are
 * built in one statement each by `private.rebuild_analytics_rollups()`, as a
 * bulk load would do; the seeding and rebuild times are printed.
 *
 * Then 5 warm-up and 100 timed rounds, each calling, in an order that turns
 * from round to round: the summary as a member of the org (through the wire
 * server with postgres.js and withUserScope, as an edge function or PostgREST
 * would run it); the same with today stale (a write just before); the raw
 * version (as the service role: it is not granted to users); and the floor
 * (the same transaction with no work). Both answers are compared once (they
 * must be equal). Prints the figures and a PASS/FAIL line; exits 0 whatever they are
 * (non-zero only when something fails to run).
 */
import { cpus, totalmem } from 'node:os';
import type { JwtClaims } from '../functions/_shared/auth.ts';
import { createSql, withUserScope } from '../functions/_shared/db.ts';
import { startStack } from './local/stack.ts';

const ORGS = 50;
const CONVERSATIONS_PER_ORG = 4_000; // x 5 messages x 50 orgs = 1,000,000 messages
const MESSAGES_PER_CONVERSATION = 5;
const CALLS_PER_ORG = 4_000; // 200,000
const APPOINTMENTS_PER_ORG = 1_000; // 50,000
const DAYS = 120;
const RANGE_DAYS = 90;
const WARM_UP = 5;
const RUNS = 100;
const TARGET_P95_MS = 50;
const TARGET_RATIO = 20;

const org = (n: number): string => `00000000-0000-4000-9170-${String(n).padStart(12, '0')}`;
const MEASURED_ORG = org(1);
const OWNER = '00000000-0000-4000-8170-000000000001';
const MEMBER = '00000000-0000-4000-8170-000000000002';

const SEED_SQL = `
begin;
set local session_replication_role = replica;

insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values ('${OWNER}', '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated', 'owner@bench-analytics.test', '{}', '{}', now(), now()),
       ('${MEMBER}', '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated', 'member@bench-analytics.test', '{}', '{}', now(), now());

insert into public.organizations (id, name, slug, time_zone)
select ('00000000-0000-4000-9170-' || lpad(o::text, 12, '0'))::uuid, 'Bench ' || o, 'bench-analytics-' || o, 'Europe/Berlin'
from generate_series(1, ${ORGS}) o;
insert into public.subscriptions (org_id, plan_id, status, current_period_start, current_period_end)
select o.id, 'pro', 'active', now() - interval '12 days', now() + interval '18 days' from public.organizations o where o.slug like 'bench-analytics-%';
insert into public.memberships (org_id, user_id, role, created_at) values
  ('${MEASURED_ORG}', '${OWNER}', 'owner', now() - interval '100 days'),
  ('${MEASURED_ORG}', '${MEMBER}', 'member', now() - interval '10 days');
insert into public.invitations (org_id, email, role, expires_at)
select '${MEASURED_ORG}', 'invitee' || n || '@bench-analytics.test', 'member', now() + interval '5 days' from generate_series(1, 5) n;

insert into public.bots (org_id, name, slug, model, temperature, max_tokens)
select o.id, 'Bot ' || b, 'bot-' || b, 'gpt-4o-mini', 0.3, 512 from public.organizations o cross join generate_series(1, 3) b where o.slug like 'bench-analytics-%';
insert into public.business_hours (org_id, weekday, opens, closes)
select o.id, d, '09:00', '17:00' from public.organizations o cross join generate_series(1, 5) d where o.slug like 'bench-analytics-%';

create temp table bench_bots on commit drop as
select b.org_id, array_agg(b.id order by b.slug) as ids from public.bots b join public.organizations o on o.id = b.org_id
where o.slug like 'bench-analytics-%' group by b.org_id;

-- Conversations: 1,500 end users per org, so people come back.
insert into public.conversations (org_id, bot_id, channel, external_user_id, status, escalated_at, escalation_reason, closed_at, created_at)
select b.org_id, b.ids[1 + (n % 3)], (array['web', 'telegram', 'api', 'voice']::public.chat_channel[])[1 + (n % 4)],
  -- One live conversation per bot, channel and end user: only the last 100 are open (with their own users).
  case when n > ${CONVERSATIONS_PER_ORG - 100} then 'live-' || n else 'u' || (hashint4(n) % 1500 + 1500) % 1500 end,
  case when n > ${CONVERSATIONS_PER_ORG - 100} then 'open' else 'closed' end::public.conversation_status,
  case when n % 10 = 0 then t + interval '3 minutes' end, case when n % 10 = 0 then 'asked for a human' end,
  case when n <= ${CONVERSATIONS_PER_ORG - 100} then t + interval '20 minutes' end,
  t
from bench_bots b
cross join generate_series(1, ${CONVERSATIONS_PER_ORG}) n
cross join lateral (select now() - interval '${DAYS} days' + (n::float8 / ${CONVERSATIONS_PER_ORG}) * interval '${DAYS} days' as t) ts;

insert into public.messages (org_id, conversation_id, role, content, tokens_in, tokens_out, latency_ms, created_at)
select c.org_id, c.id, case when k % 2 = 1 then 'user' else 'assistant' end::public.message_role, 'message ' || k,
  case when k % 2 = 0 then 400 + k * 10 else 0 end, case when k % 2 = 0 then 80 + k else 0 end,
  case when k % 2 = 0 then 500 + (hashint4(k) & 1023) end,
  c.created_at + k * interval '30 seconds'
from public.conversations c
cross join generate_series(1, ${MESSAGES_PER_CONVERSATION}) k
where c.org_id in (select org_id from bench_bots);

insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, bot_id, conversation_id, created_at)
select c.org_id, 'chat', 'gpt-4o-mini', 820, 166, c.bot_id, c.id, c.created_at + interval '2 minutes'
from public.conversations c where c.org_id in (select org_id from bench_bots);

insert into public.calls (org_id, bot_id, direction, status, created_at, started_at, ended_at, duration_seconds, sentiment, to_number,
                          stt_latency_ms, llm_latency_ms, tts_latency_ms)
select b.org_id, b.ids[1 + (n % 3)], (array['inbound', 'outbound']::public.call_direction[])[1 + (n % 2)],
  s.status, t, case when s.status = 'ended' then t end, t + interval '3 minutes',
  case when s.status = 'ended' then 30 + n % 300 end,
  (array['positive', 'neutral', 'negative', 'unknown']::public.call_sentiment[])[1 + (n % 4)],
  '+1415555' || lpad((n % 10000)::text, 4, '0'), 100 + n % 50, 400 + n % 200, 150 + n % 80
from bench_bots b
cross join generate_series(1, ${CALLS_PER_ORG}) n
cross join lateral (select now() - interval '${DAYS} days' + (n::float8 / ${CALLS_PER_ORG}) * interval '${DAYS} days' as t) ts
cross join lateral (select (case when n % 7 = 0 then 'no_answer' when n % 11 = 0 then 'failed' else 'ended' end)::public.call_status as status) s;

insert into public.appointments (org_id, bot_id, starts_at, ends_at, status, attendee_name, attendee_email, source, reschedule_count, canceled_at)
select b.org_id, case when n % 4 = 0 then null else b.ids[1 + (n % 3)] end, t, t + interval '30 minutes',
  s.status, 'Attendee ' || n, 'a' || n || '@bench-analytics.test', case when n % 4 = 0 then 'staff' else 'bot' end,
  case when n % 9 = 0 then 1 else 0 end, case when s.status = 'canceled' then t - interval '1 day' end
from bench_bots b
cross join generate_series(1, ${APPOINTMENTS_PER_ORG}) n
cross join lateral (select date_trunc('hour', now() - interval '${DAYS} days' + (n::float8 / ${APPOINTMENTS_PER_ORG}) * interval '${DAYS} days') as t) ts
cross join lateral (select case when n % 10 = 0 then 'canceled' when n % 13 = 0 then 'no_show' when n % 3 = 0 then 'completed' else 'booked' end as status) s;

insert into public.upload_batches (org_id, created_at)
select b.org_id, now() - interval '${DAYS} days' + n * interval '6 days' from bench_bots b cross join generate_series(1, 20) n;
insert into public.documents (org_id, batch_id, name, mime_type, size_bytes, storage_path, status, failure_reason, page_count, chunk_count,
                              ingest_attempts, ingested_at, created_at, updated_at)
select ub.org_id, ub.id, 'doc-' || n || '.pdf', 'application/pdf', 10000 + n * 1000, ub.org_id || '/' || ub.id || '/doc-' || n || '.pdf',
  case when n = 4 then 'failed' else 'ready' end::public.document_status, case when n = 4 then 'the PDF is encrypted' end,
  case when n = 4 then null else 3 + n end, case when n = 4 then 0 else 10 + n end, 1 + (n = 4)::integer,
  case when n = 4 then null else ub.created_at + interval '40 seconds' end, ub.created_at, ub.created_at + interval '40 seconds'
from public.upload_batches ub cross join generate_series(1, 4) n
where ub.org_id in (select org_id from bench_bots);
commit;
`;

function claimsFor(role: 'authenticated' | 'service_role', sub?: string): JwtClaims {
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return sub ? { sub, role, aud: 'authenticated', exp } : { role, exp };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

const isoDate = (d: Date): string => d.toISOString().slice(0, 10);

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(
    `analytics — ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GB, Node ${process.version}; ` +
      'Postgres is PGlite (WASM, one session) in this process, behind the wire server',
  );
  const stack = await startStack({ dbPort: 0, functions: false, scheduler: false, log: () => undefined });
  const sql = createSql(stack.dbUrl, { max: 1 });
  try {
    let started = performance.now();
    await sql.unsafe(SEED_SQL);
    const seedSeconds = (performance.now() - started) / 1000;
    started = performance.now();
    await sql.unsafe('select private.rebuild_analytics_rollups()');
    const rebuildSeconds = (performance.now() - started) / 1000;
    await sql.unsafe('analyze');
    const [counts] = await sql.unsafe<Record<string, string>[]>(`
      select (select count(*) from public.messages) as messages, (select count(*) from public.conversations) as conversations,
             (select count(*) from public.calls) as calls, (select count(*) from public.appointments) as appointments,
             (select count(*) from public.usage_events) as usage_events,
             (select count(*) from public.messages where org_id = '${MEASURED_ORG}') as org_messages,
             (select count(*) from private.analytics_conversation_hours where org_id = '${MEASURED_ORG}') as org_hour_rows,
             (select count(*) from private.analytics_days where org_id = '${MEASURED_ORG}') as org_day_rows`);
    console.log(
      `seeded ${Number(counts.messages).toLocaleString('en')} messages (${Number(counts.conversations).toLocaleString('en')} conversations), ` +
        `${Number(counts.usage_events).toLocaleString('en')} usage events, ${Number(counts.calls).toLocaleString('en')} calls, ` +
        `${Number(counts.appointments).toLocaleString('en')} appointments over ${ORGS} orgs and ${DAYS} days in ${seedSeconds.toFixed(1)} s ` +
        `(triggers off); rollups rebuilt in ${rebuildSeconds.toFixed(1)} s`,
    );
    console.log(
      `measured org: ${Number(counts.org_messages).toLocaleString('en')} messages, ${Number(counts.org_hour_rows).toLocaleString('en')} conversation-hour rollup rows, ` +
        `${Number(counts.org_day_rows).toLocaleString('en')} analytics_days rows`,
    );

    const to = new Date();
    const from = new Date(to.getTime() - (RANGE_DAYS - 1) * 86_400_000);
    const args = [MEASURED_ORG, isoDate(from), isoDate(to)];
    const member = claimsFor('authenticated', MEMBER);
    const service = claimsFor('service_role');

    // The two versions must agree, or the ratio compares different work.
    const [same] = await withUserScope(sql, service, (tx) =>
      tx.unsafe<{ equal: boolean }[]>(
        'select public.analytics_dashboard_summary($1, $2, $3) = private.dashboard_summary_raw($1, $2, $3) as equal',
        args,
      )
    );
    const [missing] = await withUserScope(sql, service, (tx) =>
      tx.unsafe<{ n: string }[]>('select count(*) as n from private.verify_rollups($1)', [MEASURED_ORG])
    );
    console.log(`rollup summary equals the raw summary: ${same.equal}; verify_rollups differences: ${missing.n}`);

    // The week rows a summary reads are made by the first summary over them,
    // and again after a write to one of their days: the cost of making all
    // of the range's (12 whole weeks), once.
    await sql.unsafe(`delete from private.analytics_weeks where org_id = '${MEASURED_ORG}'`);
    const fillStarted = performance.now();
    await withUserScope(sql, member, (tx) => tx.unsafe('select public.analytics_dashboard_summary($1, $2, $3)', args));
    console.log(`first summary, making the range's week rows: ${(performance.now() - fillStarted).toFixed(1)} ms`);

    // analytics_days is refreshed lazily (the triggers mark days stale, the
    // first read recomputes them): after the rebuild nothing is stale.
    const [stale] = await sql.unsafe<{ n: string }[]>('select count(*) as n from private.analytics_stale_days');
    console.log(`stale analytics_days before the timed runs: ${stale.n}`);

    // The variants run interleaved, one call of each per round and the first
    // changing from round to round, so a busy spell of the machine (the
    // figures move by half between quiet and loaded minutes here) slows them
    // alike instead of landing on one of them: the ratio compares the same
    // minutes. before: run (untimed) ahead of the call, e.g. a write that
    // leaves today stale.
    const variants: Array<{ claims: JwtClaims; text: string; before?: string }> = [
      { claims: member, text: 'select public.analytics_dashboard_summary($1, $2, $3) as s' },
      {
        // The realistic case: the org is busy, so today is stale at every read.
        claims: member,
        text: 'select public.analytics_dashboard_summary($1, $2, $3) as s',
        before: `insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out) values ('${MEASURED_ORG}', 'chat', 'bench', 10, 10)`,
      },
      { claims: service, text: 'select private.dashboard_summary_raw($1, $2, $3) as s' },
      // The floor: the same transaction and arguments, no work.
      { claims: member, text: 'select $1::uuid, $2::date, $3::date as s' },
    ];
    const times = variants.map(() => [] as number[]);
    const samples: unknown[] = [];
    for (let round = 0; round < WARM_UP + RUNS; round++) {
      for (let step = 0; step < variants.length; step++) {
        const v = (round + step) % variants.length;
        const { claims, text, before } = variants[v];
        if (before) await sql.unsafe(before);
        const t0 = performance.now();
        const rows = await withUserScope(sql, claims, (tx) => tx.unsafe<{ s: unknown }[]>(text, args));
        const elapsed = performance.now() - t0;
        samples[v] = rows[0]?.s;
        if (round >= WARM_UP) times[v].push(elapsed);
      }
    }
    const [rollup, todayStale, raw, floor] = times.map((list) => {
      const sorted = [...list].sort((a, b) => a - b);
      return { p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95) };
    });
    const summary = samples[0] as Record<string, Record<string, unknown>>;
    console.log(
      `summary over ${RANGE_DAYS} days (${args[1]}..${args[2]}, Europe/Berlin): ${JSON.stringify(summary.messages)}; ` +
        `calls total ${String((summary.calls as Record<string, unknown> | null)?.total)}; appointments total ${String(summary.appointments?.total)}`,
    );
    const ratio50 = raw.p50 / rollup.p50;
    const ratio95 = raw.p95 / rollup.p95;
    console.log(`analytics_dashboard_summary as a member (rollups), ${RUNS} calls: p50 ${rollup.p50.toFixed(1)} ms, p95 ${rollup.p95.toFixed(1)} ms`);
    console.log(
      `the same with today stale at every call (one usage event written before each), ${RUNS} calls: p50 ${todayStale.p50.toFixed(1)} ms, p95 ${todayStale.p95.toFixed(1)} ms`,
    );
    console.log(`dashboard_summary_raw (raw tables), ${RUNS} calls: p50 ${raw.p50.toFixed(1)} ms, p95 ${raw.p95.toFixed(1)} ms`);
    console.log(`floor (withUserScope and the arguments, no work), ${RUNS} calls: p50 ${floor.p50.toFixed(1)} ms, p95 ${floor.p95.toFixed(1)} ms`);
    console.log(`ratio raw / rollups: p50 ${ratio50.toFixed(1)}x, p95 ${ratio95.toFixed(1)}x`);

    // Where the time goes inside the summary: Postgres's own per-function
    // timings (track_functions) over 20 summaries in process (no wire), as
    // the service role. After the timed runs: the embedded session is shared.
    await stack.db.exec(`set track_functions = 'all'; select pg_stat_reset();`);
    for (let i = 0; i < 20; i++) {
      await stack.db.transaction(async (tx) => {
        await tx.query(`select set_config('request.jwt.claims', '{"role": "service_role"}', true)`);
        await tx.query('select public.analytics_dashboard_summary($1, $2, $3)', args);
      });
    }
    await stack.db.query('select pg_stat_force_next_flush()');
    const { rows: timings } = await stack.db.query<{ name: string; ms: number }>(`
      select f.funcname as name, (f.total_time / f.calls)::float8 as ms
      from pg_stat_user_functions f
      where f.schemaname = 'private' and f.funcname in ('analytics_summary', 'analytics_day_figures', 'analytics_open_minutes',
        'analytics_usage_windows', 'analytics_knowledge_figures', 'analytics_upload_figures', 'analytics_team_figures', 'analytics_scope',
        'refresh_analytics_days')
      order by f.total_time desc`);
    await stack.db.exec(`reset track_functions`);
    console.log(`inside the summary, per call (in process, track_functions): ${timings.map((t) => `${t.name} ${t.ms.toFixed(2)} ms`).join('; ')}`);

    const fast = rollup.p95 < TARGET_P95_MS;
    const enough = ratio95 >= TARGET_RATIO;
    console.log(
      `${fast && enough ? 'PASS' : 'FAIL'}: summary p95 ${rollup.p95.toFixed(1)} ms (target under ${TARGET_P95_MS} ms: ${fast ? 'met' : 'not met'}), ` +
        `${ratio95.toFixed(1)}x faster than raw aggregation at p95 (target at least ${TARGET_RATIO}x: ${enough ? 'met' : 'not met'})`,
    );
  } finally {
    await sql.end();
    await stack.stop();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
