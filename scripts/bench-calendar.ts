/**
 * `npm run bench:calendar`: how long availability takes for a 14-day range
 * with 3 connected calendars and 200 existing appointments. Target: p95
 * under 150 ms on this machine, with the provider calls made concurrently
 * and cached within a request.
 *
 * On a throwaway embedded stack (PGlite, WASM, behind the wire server), with
 * the gateway and the functions (Deno) in a process of their own as on
 * Supabase, one org in Europe/Berlin, open Monday to Friday 09:00–17:00,
 * connects two Google calendars and one Outlook calendar through the real
 * OAuth flow against tests/support/calendar-stub.ts (a local server speaking
 * Google's and Microsoft's wire formats, answering at once; it runs in this
 * process), each holding 30 busy entries in the range (Outlook's paged 10 to
 * a page, as Graph does), and holds 200 booked 15-minute appointments. A
 * member asks for 30-minute slots over the next 14 days: business hours
 * minus three providers' busy times (fetched concurrently) minus the
 * appointments. 10 warm-up requests, then 100 one at a time. Prints the
 * figures and a PASS/FAIL line; exits 0 whatever they are (non-zero only if a
 * request fails).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createSql } from '../functions/_shared/db.ts';
import { createChatOrg } from '../tests/support/chat-fixtures.ts';
import { providerEnv, startCalendarStub } from '../tests/support/calendar-stub.ts';
import { percentile } from './bench/chat-load.ts';
import { LOCAL_CALENDAR_TOKEN_KEY } from './local/keys.ts';
import { ROOT_DIR, startStack } from './local/stack.ts';

const DAYS = 14;
const APPOINTMENTS = 200;
const BUSY_PER_CALENDAR = 30;
const WARM_UP = 10;
const REQUESTS = 100;
const TARGET_P95_MS = 150;
const DAY_MS = 86_400_000;

async function startFunctionsProcess(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT_DIR, 'scripts/bench/functions-process.ts'), JSON.stringify(env)], {
    cwd: ROOT_DIR,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  for await (const line of createInterface({ input: child.stdout! })) {
    if (line.startsWith('READY ')) return { child, url: line.slice(6) };
  }
  throw new Error('the functions process ended before serving');
}

/** The next Monday, 00:00 UTC, at least a day away (availability never offers past slots). */
function nextMonday(): number {
  const today = Date.parse(`${new Date().toISOString().slice(0, 10)}T00:00:00Z`);
  for (let day = 1; day <= 8; day += 1) {
    if (new Date(today + day * DAY_MS).getUTCDay() === 1) return today + day * DAY_MS;
  }
  throw new Error('unreachable');
}

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(
    `calendar availability — ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GB, ` +
      `Node ${process.version}; Postgres is PGlite (WASM) in this process behind the wire server, with the provider ` +
      `stand-in; the gateway and the functions (Deno) in another process`,
  );
  const stub = await startCalendarStub();
  const stack = await startStack({ dbPort: 0, functions: false, scheduler: false, log: () => undefined });
  const sql = createSql(stack.dbUrl, { max: 2 });
  const functions = await startFunctionsProcess({
    SUPABASE_URL: 'http://127.0.0.1:54321',
    SUPABASE_DB_URL: stack.dbUrl,
    SUPABASE_ANON_KEY: stack.keys.anonKey,
    SUPABASE_SERVICE_ROLE_KEY: stack.keys.serviceRoleKey,
    SUPABASE_JWT_SECRET: stack.keys.jwtSecret,
    CALENDAR_TOKEN_KEY: LOCAL_CALENDAR_TOKEN_KEY,
    ...providerEnv(stub),
  });
  const calendarUrl = `${functions.url}/functions/v1/calendar`;
  try {
    const org = await createChatOrg(sql, 'bench-calendar');
    await sql`update public.organizations set time_zone = 'Europe/Berlin' where id = ${org.id}`;
    for (let weekday = 1; weekday <= 5; weekday += 1) {
      await sql`insert into public.business_hours (org_id, weekday, opens, closes) values (${org.id}, ${weekday}, '09:00', '17:00')`;
    }

    const accounts = [['google', 'front-desk@bench.test'], ['google', 'dentist@bench.test'], ['microsoft', 'hygienist@bench.test']] as const;
    for (const [provider, email] of accounts) {
      const started = await fetch(`${calendarUrl}/oauth/start`, {
        method: 'POST',
        headers: { authorization: `Bearer ${org.tokens.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ org_id: org.id, provider }),
      });
      const { authorization_url: url } = await started.json() as { authorization_url: string };
      const consent = await stub.authorize(url, { email });
      const done = await fetch(`${calendarUrl}/oauth/callback${new URL(consent.location).search}`, { redirect: 'manual' });
      if (done.status !== 200) throw new Error(`connecting ${email} answered ${done.status}: ${await done.text()}`);
      // The callback parks the tokens; the admin who started completes the connection (20261123007400).
      const { connection_request: request } = await done.json() as { connection_request: string };
      const completed = await fetch(`${calendarUrl}/oauth/complete`, {
        method: 'POST',
        headers: { authorization: `Bearer ${org.tokens.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ connection_request: request }),
      });
      if (completed.status !== 200) throw new Error(`completing ${email} answered ${completed.status}: ${await completed.text()}`);
    }

    const from = nextMonday();
    const to = from + DAYS * DAY_MS;
    for (const [index, [provider, email]] of accounts.entries()) {
      stub.seedBusy(provider, email, Array.from({ length: BUSY_PER_CALENDAR }, (_, i) => {
        const start = from + Math.floor(i / 3) * DAY_MS + (7 + (i % 3) * 3 + index) * 3_600_000;
        return { start: new Date(start), end: new Date(start + 45 * 60_000) };
      }));
    }
    // 20 booked quarter hours a weekday from 09:00 Berlin, over the first ten weekdays of the range.
    await sql`
      insert into public.appointments (org_id, starts_at, ends_at, attendee_name, attendee_email, source, sync_status)
      select ${org.id}::uuid, s, s + interval '15 minutes', 'Patient ' || n, 'patient' || n || '@bench.test', 'staff', 'not_mirrored'
      from (
        select n, ((d::date + time '09:00') at time zone 'Europe/Berlin') + (q * interval '15 minutes') as s
        from generate_series(${new Date(from).toISOString()}::timestamptz, ${new Date(to).toISOString()}::timestamptz, interval '1 day') with ordinality g(d, day_index)
        cross join generate_series(0, 19) q
        cross join lateral (select (day_index - 1) * 20 + q + 1 as n) numbered
        where extract(isodow from d) between 1 and 5
      ) slots
      order by s
      limit ${APPOINTMENTS}`;
    const [{ appointments }] = await sql<{ appointments: number }[]>`
      select count(*)::int as appointments from public.appointments where org_id = ${org.id} and status = 'booked'`;

    const query = new URLSearchParams({
      org_id: org.id,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      duration_minutes: '30',
    });
    const ask = async () => {
      const started = performance.now();
      const response = await fetch(`${calendarUrl}/availability?${query}`, { headers: { authorization: `Bearer ${org.tokens.member}` } });
      const body = await response.json() as { slots?: unknown[]; missing_calendars?: unknown[] };
      const ms = performance.now() - started;
      if (response.status !== 200) throw new Error(`availability answered ${response.status}: ${JSON.stringify(body)}`);
      return { ms, slots: body.slots?.length ?? 0, missing: body.missing_calendars?.length ?? 0 };
    };
    for (let i = 0; i < WARM_UP; i += 1) await ask();
    const before = stub.requests.length;
    const runs = [];
    for (let i = 0; i < REQUESTS; i += 1) runs.push(await ask());
    const providerRequests = (stub.requests.length - before) / REQUESTS;
    const times = runs.map((run) => run.ms);
    const p95 = percentile(times, 95);
    console.log(
      `${accounts.length} calendars (2 Google, 1 Outlook, ${BUSY_PER_CALENDAR} busy entries each), ${appointments} booked ` +
        `appointments, ${DAYS}-day range, 30-minute slots: ${runs[0].slots} slots, ${runs[0].missing} calendars missing; ` +
        `${providerRequests.toFixed(1)} provider requests per availability request`,
    );
    console.log(
      `${REQUESTS} requests one at a time: p50 ${percentile(times, 50).toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, ` +
        `max ${Math.max(...times).toFixed(1)} ms`,
    );
    console.log(`${p95 < TARGET_P95_MS ? 'PASS' : 'FAIL'}: availability p95 under ${TARGET_P95_MS} ms (${p95.toFixed(1)})`);
  } finally {
    functions.child.kill('SIGTERM');
    await sql.end({ timeout: 1 });
    await stack.stop();
    await stub.close();
  }
}

await main();
