/**
 * `npm run bench:calls`: how many voice-provider call events the call-events
 * function takes per second, and how long each waits, with 10 senders at
 * once. Target: at least 200 events a second, p95 under 50 ms.
 *
 * On a throwaway embedded stack (PGlite, WASM, behind the wire server; the
 * functions in Deno behind the local gateway; no scheduler), one org with a
 * Vapi secret receives whole calls as Vapi sends them: ringing, in-progress,
 * six final transcript messages, and the end-of-call report with the whole
 * transcript, cost and recording; every tenth message is sent a second time
 * (a provider retry: a duplicate). Each request is signed
 * (HMAC-SHA256 of timestamp.body), verified against the org's secrets read
 * in the same transaction, deduplicated by event id, stored raw, applied to
 * the call, and broadcast on org:<id>:calls, all before the answer. The
 * latency the target speaks of, from the event received to its broadcast row
 * written, is the function's Server-Timing (its arrival in the function to the
 * commit); the time from sending to the answer, which adds the sender's HTTP
 * client, the local gateway and the way back, is printed beside it as an upper
 * bound. 10 senders share the calls, each sending one call's
 * messages in order, from a child process (as a provider's servers are
 * elsewhere: signing and sending take no CPU from the database). Prints the figures and a PASS/FAIL line; exits 0
 * whatever they are (non-zero only if a request fails).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { createSql, withUserScope } from '../functions/_shared/db.ts';
import { createChatOrg } from '../tests/support/chat-fixtures.ts';
import { REPLAY_EVERY, type Sent, TURNS } from './bench/calls-senders.ts';
import { percentile } from './bench/chat-load.ts';
import { ROOT_DIR, startStack } from './local/stack.ts';

const SENDERS = 10;
const CALLS = 240;
const WARM_UP_CALLS = 10;
const SEQUENTIAL_CALLS = 30;
const TARGET_EVENTS_PER_SECOND = 200;
const TARGET_P95_MS = 50;

/** The senders run in a child process, like a provider's servers, so they take no CPU from the database's process. */
function runSenders(url: string, secret: string, calls: number, senders: number, first: number): Promise<{ sent: Sent[]; seconds: number }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(ROOT_DIR, 'scripts/bench/calls-senders.ts'), url, secret, String(calls), String(senders), String(first)],
      { cwd: ROOT_DIR, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout))),
    );
  });
}

/** The gateway and the functions in their own process (see scripts/bench/functions-process.ts); resolves with it and its URL. */
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

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(
    `call events — ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GB, ` +
      `Node ${process.version}; Postgres is PGlite (WASM, one session lent to one connection at a time) in this process, ` +
      `behind the wire server; the function runs in Deno behind the local gateway (also this process); the senders too`,
  );
  const stack = await startStack({ dbPort: 0, functions: false, scheduler: false, log: () => undefined });
  const sql = createSql(stack.dbUrl, { max: 2 });
  const functions = await startFunctionsProcess({
    SUPABASE_DB_URL: stack.dbUrl,
    SUPABASE_ANON_KEY: stack.keys.anonKey,
    SUPABASE_SERVICE_ROLE_KEY: stack.keys.serviceRoleKey,
    SUPABASE_JWT_SECRET: stack.keys.jwtSecret,
  });
  try {
    const org = await createChatOrg(sql, 'bench-calls');
    const secret = await withUserScope(sql, org.claims.admin, async (tx) => {
      const [row] = await tx<{ secret: string }[]>`select public.create_call_provider_secret(${org.id}, 'vapi') as secret`;
      return row.secret;
    });
    const url = `${functions.url}/functions/v1/call-events/${org.id}/vapi`;
    await runSenders(url, secret, WARM_UP_CALLS, SENDERS, 0);
    const one = await runSenders(url, secret, SEQUENTIAL_CALLS, 1, 1000);
    const oneTimes = one.sent.map((item) => item.ms);
    const oneApplied = one.sent.map((item) => item.appliedMs);
    console.log(
      `one sender, ${one.sent.length} requests: events/s ${(one.sent.length / one.seconds).toFixed(0)}; received to broadcast ` +
        `written ms p50 ${percentile(oneApplied, 50).toFixed(1)}, p95 ${percentile(oneApplied, 95).toFixed(1)}; sending to answer ` +
        `p50 ${percentile(oneTimes, 50).toFixed(1)}, p95 ${percentile(oneTimes, 95).toFixed(1)}`,
    );
    const { sent, seconds } = await runSenders(url, secret, CALLS, SENDERS, WARM_UP_CALLS);

    const times = sent.map((item) => item.ms);
    const duplicates = sent.filter((item) => item.duplicate).length;
    const [stored] = await sql<{ ended: number; events: number; broadcasts: number; segments: number }[]>`
      select (select count(*)::int from public.calls where org_id = ${org.id} and status = 'ended') as ended,
             (select count(*)::int from public.call_events where org_id = ${org.id}) as events,
             (select count(*)::int from realtime.messages where topic = ${`org:${org.id}:calls`}) as broadcasts,
             (select count(*)::int from public.call_transcript_segments where org_id = ${org.id}) as segments`;
    const rate = sent.length / seconds;
    const applied = sent.map((item) => item.appliedMs);
    const p95 = percentile(applied, 95);
    console.log(
      `${CALLS} calls (+${WARM_UP_CALLS} warm-up) of ${TURNS + 3} messages, every ${REPLAY_EVERY}th sent twice: ` +
        `${sent.length} requests from ${SENDERS} senders in ${seconds.toFixed(2)} s`,
    );
    console.log(
      `events/s ${rate.toFixed(0)}; received to broadcast written (Server-Timing) ms p50 ${percentile(applied, 50).toFixed(1)}, ` +
        `p95 ${p95.toFixed(1)}, p99 ${percentile(applied, 99).toFixed(1)}, max ${Math.max(...applied).toFixed(1)}; ` +
        `sending to answer (upper bound) p50 ${percentile(times, 50).toFixed(1)}, p95 ${percentile(times, 95).toFixed(1)}, ` +
        `p99 ${percentile(times, 99).toFixed(1)}, max ${Math.max(...times).toFixed(1)}`,
    );
    console.log(
      `answered duplicate: ${duplicates}; stored (with warm-up): ${stored.events} raw events, ${stored.ended} calls ended, ` +
        `${stored.segments} transcript segments, ${stored.broadcasts} broadcasts on org:<id>:calls`,
    );
    const pass = rate >= TARGET_EVENTS_PER_SECOND && p95 < TARGET_P95_MS;
    console.log(
      `${pass ? 'PASS' : 'FAIL'}: at least ${TARGET_EVENTS_PER_SECOND} events/s (${rate.toFixed(0)}) and p95 under ` +
        `${TARGET_P95_MS} ms from received to broadcast written (${p95.toFixed(1)}) with ${SENDERS} concurrent senders`,
    );
  } finally {
    functions.child.kill('SIGTERM');
    await sql.end({ timeout: 1 });
    await stack.stop();
  }
}

await main();
