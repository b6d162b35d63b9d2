/**
 * The client side of `npm run bench:chat`: one chat turn over each entry
 * point, timed from just before the request is sent to the first and last
 * content delta and to the end of the stream, and a runner that plays turns
 * sequentially or from several concurrent clients. Plain fetch and a small
 * SSE reader, so nothing of an SDK's buffering sits between the wire and the
 * timestamps.
 */

/** Milliseconds from sending the request. */
export interface TurnTiming {
  firstToken: number;
  lastToken: number;
  /** The stream's end: the answer stored and metered (chat_finish) and the closing events sent. */
  end: number;
  /** The answer cites a source (offline provider): retrieval found something to answer from. */
  cited: boolean;
}

/** One turn: `index` picks the question and the caller. */
export type Turn = (index: number) => Promise<TurnTiming>;

interface SseFrame {
  event: string;
  data: string;
}

/** The frames of an event stream as they arrive (comments skipped). */
async function* sseFrames(body: ReadableStream<Uint8Array>): AsyncGenerator<SseFrame> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) yield { event, data: data.join('\n') };
    }
  }
}

async function failure(what: string, response: Response): Promise<Error> {
  return new Error(`${what} answered ${response.status}: ${(await response.text()).slice(0, 500)}`);
}

/** Timestamps of the content deltas seen so far; the turn's timing once the stream has ended. */
function deltaClock(started: number) {
  let first: number | null = null;
  let last = 0;
  return {
    delta() {
      const now = performance.now();
      first ??= now;
      last = now;
    },
    timing(what: string, cited: boolean): TurnTiming {
      if (first === null) throw new Error(`${what}: the stream ended without a content delta`);
      return { firstToken: first - started, lastToken: last - started, end: performance.now() - started, cited };
    },
  };
}

/** POST /functions/v1/chat as a signed-in member: the first `event: delta` is the first token. */
export function webChatTurn(options: {
  functionsUrl: string;
  botId: string;
  token: (index: number) => string;
  question: (index: number) => string;
}): Turn {
  return async (index) => {
    const started = performance.now();
    const response = await fetch(`${options.functionsUrl}/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${options.token(index)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ bot_id: options.botId, message: options.question(index) }),
    });
    if (response.status !== 200 || !response.body) throw await failure('POST /chat', response);
    const clock = deltaClock(started);
    let cited = false;
    for await (const frame of sseFrames(response.body)) {
      if (frame.event === 'delta') clock.delta();
      else if (frame.event === 'citations') cited = (JSON.parse(frame.data) as { citations: unknown[] }).citations.length > 0;
      else if (frame.event === 'error') throw new Error(`POST /chat streamed an error: ${frame.data}`);
    }
    return clock.timing('POST /chat', cited);
  };
}

interface CompletionChunk {
  choices?: { delta?: { content?: string | null } }[];
  error?: unknown;
}

/**
 * POST /functions/v1/chat/v1/chat/completions with `stream: true` and a bot
 * API key: the first chunk with non-empty `delta.content` is the first token
 * (the first chunk carries only the role).
 */
export function completionsTurn(options: {
  functionsUrl: string;
  apiKey: string;
  model: string;
  question: (index: number) => string;
}): Turn {
  return async (index) => {
    const started = performance.now();
    const response = await fetch(`${options.functionsUrl}/chat/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${options.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: options.model, stream: true, messages: [{ role: 'user', content: options.question(index) }] }),
    });
    if (response.status !== 200 || !response.body) throw await failure('POST /chat/v1/chat/completions', response);
    const clock = deltaClock(started);
    let content = '';
    for await (const frame of sseFrames(response.body)) {
      if (frame.data === '[DONE]') continue;
      const chunk = JSON.parse(frame.data) as CompletionChunk;
      if (chunk.error) throw new Error(`chat/completions streamed an error: ${frame.data}`);
      const text = chunk.choices?.[0]?.delta?.content ?? '';
      if (text !== '') {
        clock.delta();
        content += text;
      }
    }
    // The offline provider marks what it quotes with [n].
    return clock.timing('POST /chat/v1/chat/completions', /\[\d+\]/.test(content));
  };
}

export interface RunResult {
  timings: TurnTiming[];
  seconds: number;
}

/** `count` turns from `clients` concurrent clients, each starting its next turn when its last one has ended. */
export async function runTurns(turn: Turn, count: number, clients: number, firstIndex = 0): Promise<RunResult> {
  let next = 0;
  const timings: TurnTiming[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < count) {
        const index = next++;
        timings.push(await turn(firstIndex + index));
      }
    }),
  );
  return { timings, seconds: (performance.now() - started) / 1000 };
}

/** Nearest-rank percentile. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
