/**
 * The senders of `npm run bench:calls`, in a process of their own (as a
 * provider's servers would be), so signing and sending do not take CPU from
 * the database and the gateway, which share the benchmark's main process.
 * Usage: tsx scripts/bench/calls-senders.ts <url> <secret> <calls> <senders> <first index>;
 * prints the requests' times as JSON.
 */
import { randomUUID } from 'node:crypto';
import {
  signedVapiRequest,
  vapiCall,
  vapiEndOfCallReport,
  vapiStatusUpdate,
  vapiTranscript,
} from '../../tests/support/vapi-stub.ts';

export const TURNS = 6;
export const REPLAY_EVERY = 10;

export interface Sent {
  /** Sending to the answer, as the sender sees it. */
  ms: number;
  /** The function's Server-Timing: the request's arrival to the commit that stored and broadcast the event. */
  appliedMs: number;
  duplicate: boolean;
}

/** The messages of one call, in the order Vapi sends them, with every REPLAY_EVERY-th sent twice. */
export function callMessages(index: number): unknown[] {
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
  const applied = /applied;dur=([0-9.]+)/u.exec(response.headers.get('server-timing') ?? '');
  if (!applied) throw new Error('call-events answered without its Server-Timing');
  return { ms, appliedMs: Number(applied[1]), duplicate: answer.duplicate === true };
}

/** SENDERS workers take calls from a shared queue; each sends its call's messages one after another. */
export async function run(url: string, secret: string, calls: unknown[][], senders: number): Promise<{ sent: Sent[]; seconds: number }> {
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


if (process.argv[1]?.endsWith('calls-senders.ts')) {
  const [url, secret, calls, senders, first] = process.argv.slice(2);
  const messages = Array.from({ length: Number(calls) }, (_, index) => callMessages(Number(first) + index));
  const result = await run(url, secret, messages, Number(senders));
  process.stdout.write(JSON.stringify(result));
}
