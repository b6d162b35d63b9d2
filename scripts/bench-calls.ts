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
 * the call, and broadcast on org:<id>:calls, all before the answer: the time
 * from sending to the answer is therefore an upper bound on "received to
 * broadcast row written". 10 senders share the calls, each sending one call's
 * messages in order. Prints the figures and a PASS/FAIL line; exits 0
 * whatever they are (non-zero only if a request fails).
 */
import { randomUUID } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { createSql, withUserScope } from '../functions/_shared/db.ts';
import { createChatOrg } from '../tests/support/chat-fixtures.ts';
import {
  signedVapiRequest,
  vapiCall,
  vapiEndOfCallReport,
  vapiStatusUpdate,
  vapiTranscript,
} from '../tests/support/vapi-stub.ts';
import { percentile } from './bench/chat-load.ts';
import { startStack } from './local/stack.ts';

const SENDERS = 10;
const CALLS = 240;
const WARM_UP_CALLS = 10;
const SEQUENTIAL_CALLS = 30;
const TURNS = 6;
const REPLAY_EVERY = 10;
const TARGET_EVENTS_PER_SECOND = 200;
const TARGET_P95_MS = 50;

interface Sent {
  ms: number;
  duplicate: boolean;
}

/** The messages of one call, in the order Vapi sends them, with every REPLAY_EVERY-th sent twice. */
function callMessages(index: number): unknown[] {
  const call = vapiCall({ id: randomUUID(), customerNumber: `+1415555${String(1000 + index).slice(-4)}` });
  const start = Date.now();
  const turns = Array.from({ length: TURNS }, (_, turn) => ({
    role: turn % 2 === 0 ? 'assistant' as const : 'user' as const,
    text: turn % 2 === 0 ? `Certainly, let me check slot ${turn} for you.` : `Could I come in on day ${turn} instead?`,
  }));
  const messages: unknown[] = [
    vapiStatusUpdate('ringing', { call, timestamp: start }),
    vapiStatusUpdate('in-progress', { call, timestamp: start + 1 }),
    ...turns.map((turn, at) => vapiTranscript(turn.role, turn.text, { call, timestamp: start + 2 + at })),
    vapiEndOfCallReport({
      call,
      timestamp: start + 100,
      startedAt: new Date(start).toISOString(),
      endedAt: new Date(start + 90_000).toISOString(),
      cost: 0.0921,
      costBreakdown: { stt: 0.01, llm: 0.03, tts: 0.02, vapi: 0.0321 },
      recordingUrl: 'https://storage.vapi.ai/bench.wav',
      summary: 'The caller moved an appointment.',
      messages: turns.map((turn, at) => ({
        role: turn.role === 'assistant' ? 'bot' : 'user',
        message: turn.text,
        time: start + at * 1000,
        endTime: start + at * 1000 + 800,
        secondsFromStart: at,
      })),
    }),
  ];
  return messages.flatMap((message, at) => ((index * messages.length + at) % REPLAY_EVERY === 0 ? [message, message] : [message]));
}

async function send(url: string, secret: string, message: unknown): Promise<Sent> {
  const { body, headers } = signedVapiRequest(message, secret);
  const started = performance.now();
  const response = await fetch(url, { method: 'POST', headers, body });
  const answer = await response.json() as { duplicate?: boolean; error?: { message: string } };
  const ms = performance.now() - started;
  if (response.status !== 200) throw new Error(`call-events answered ${response.status}: ${JSON.stringify(answer)}`);
  return { ms, duplicate: answer.duplicate === true };
}

/** SENDERS workers take calls from a shared queue; each sends its call's messages one after another. */
async function run(url: string, secret: string, calls: unknown[][], senders: number): Promise<{ sent: Sent[]; seconds: number }> {
  const sent: Sent[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: senders }, async () => {
    while (next < calls.length) {
      for (const message of calls[next++]) sent.push(await send(url, secret, message));
    }
  }));
  return { sent, seconds: (performance.now() - started) / 1000 };
}

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(
    `call events — ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 1024 ** 3).toFixed(0)} GB, ` +
      `Node ${process.version}; Postgres is PGlite (WASM, one session lent to one connection at a time) in this process, ` +
      `behind the wire server; the function runs in Deno behind the local gateway (also this process); the senders too`,
  );
  const stack = await startStack({ dbPort: 0, apiPort: 0, functions: true, scheduler: false, log: () => undefined });
  const sql = createSql(stack.dbUrl, { max: 2 });
  try {
    const org = await createChatOrg(sql, 'bench-calls');
    const secret = await withUserScope(sql, org.claims.admin, async (tx) => {
      const [row] = await tx<{ secret: string }[]>`select public.create_call_provider_secret(${org.id}, 'vapi') as secret`;
      return row.secret;
    });
    const url = `${stack.apiUrl}/functions/v1/call-events/${org.id}/vapi`;
    await run(url, secret, Array.from({ length: WARM_UP_CALLS }, (_, index) => callMessages(index)), SENDERS);
    const one = await run(url, secret, Array.from({ length: SEQUENTIAL_CALLS }, (_, index) => callMessages(1000 + index)), 1);
    const oneTimes = one.sent.map((item) => item.ms);
    console.log(
      `one sender, ${one.sent.length} requests: events/s ${(one.sent.length / one.seconds).toFixed(0)}; latency ms p50 ` +
        `${percentile(oneTimes, 50).toFixed(1)}, p95 ${percentile(oneTimes, 95).toFixed(1)}`,
    );
    const calls = Array.from({ length: CALLS }, (_, index) => callMessages(WARM_UP_CALLS + index));
    const { sent, seconds } = await run(url, secret, calls, SENDERS);

    const times = sent.map((item) => item.ms);
    const duplicates = sent.filter((item) => item.duplicate).length;
    const [stored] = await sql<{ ended: number; events: number; broadcasts: number; segments: number }[]>`
      select (select count(*)::int from public.calls where org_id = ${org.id} and status = 'ended') as ended,
             (select count(*)::int from public.call_events where org_id = ${org.id}) as events,
             (select count(*)::int from realtime.messages where topic = ${`org:${org.id}:calls`}) as broadcasts,
             (select count(*)::int from public.call_transcript_segments where org_id = ${org.id}) as segments`;
    const rate = sent.length / seconds;
    const p95 = percentile(times, 95);
    console.log(
      `${CALLS} calls (+${WARM_UP_CALLS} warm-up) of ${TURNS + 3} messages, every ${REPLAY_EVERY}th sent twice: ` +
        `${sent.length} requests from ${SENDERS} senders in ${seconds.toFixed(2)} s`,
    );
    console.log(
      `events/s ${rate.toFixed(0)}; latency ms p50 ${percentile(times, 50).toFixed(1)}, p95 ${p95.toFixed(1)}, ` +
        `p99 ${percentile(times, 99).toFixed(1)}, max ${Math.max(...times).toFixed(1)}`,
    );
    console.log(
      `answered duplicate: ${duplicates}; stored (with warm-up): ${stored.events} raw events, ${stored.ended} calls ended, ` +
        `${stored.segments} transcript segments, ${stored.broadcasts} broadcasts on org:<id>:calls`,
    );
    const pass = rate >= TARGET_EVENTS_PER_SECOND && p95 < TARGET_P95_MS;
    console.log(
      `${pass ? 'PASS' : 'FAIL'}: at least ${TARGET_EVENTS_PER_SECOND} events/s (${rate.toFixed(0)}) and p95 under ` +
        `${TARGET_P95_MS} ms (${p95.toFixed(1)}) with ${SENDERS} concurrent senders`,
    );
  } finally {
    await sql.end({ timeout: 1 });
    await stack.stop();
  }
}

await main();
