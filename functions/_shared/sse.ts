/**
 * Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html)
 * over a ReadableStream, for streaming answers from an edge function.
 */

/**
 * The response headers of an event stream. `no-cache` so no cache holds the
 * answer back, `x-accel-buffering: no` so nginx-style proxies (Supabase's
 * gateway among them) pass each event on at once instead of buffering.
 */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
};

export interface SseFrame {
  /** The `event:` name; none means the default `message` event (what OpenAI's stream uses). */
  event?: string;
  /** Sent as is, one `data:` line per line of it. */
  data: string;
  id?: string;
}

/** One event as text: `event:`, `id:` and `data:` lines, then the blank line that ends it. */
export function formatSseFrame(frame: SseFrame): string {
  let text = '';
  if (frame.event !== undefined) text += `event: ${singleLine(frame.event, 'event')}\n`;
  if (frame.id !== undefined) text += `id: ${singleLine(frame.id, 'id')}\n`;
  for (const line of frame.data.split(/\r\n|\r|\n/u)) text += `data: ${line}\n`;
  return `${text}\n`;
}

/** A comment: clients ignore it, proxies and load balancers see traffic and keep the connection open. */
export function formatSseComment(text = ''): string {
  return `${text.split(/\r\n|\r|\n/u).map((line) => (line === '' ? ':' : `: ${line}`)).join('\n')}\n\n`;
}

function singleLine(value: string, field: string): string {
  if (/[\r\n]/u.test(value)) throw new TypeError(`An SSE ${field} must not contain a line break.`);
  return value;
}

export interface SseWriter {
  /** The body for the Response (see sseResponse). */
  readonly stream: ReadableStream<Uint8Array>;
  /** Aborted when the client goes away (the body is cancelled): pass it on to stop the work that feeds the stream. */
  readonly signal: AbortSignal;
  /** True once closed by us or cancelled by the client. */
  readonly closed: boolean;
  /**
   * Sends an event whose data is `data` as JSON. Resolves once the stream has
   * room for more (so a slow client slows the producer down instead of letting
   * the queue grow), to false when the stream is closed and nothing was sent.
   */
  send(event: string | undefined, data: unknown): Promise<boolean>;
  /** Sends text already framed (formatSseFrame, or OpenAI's `data: [DONE]`), with the same backpressure. */
  write(frame: string): Promise<boolean>;
  comment(text?: string): Promise<boolean>;
  /** Ends the stream after what is queued; later writes are dropped. Safe to call more than once. */
  close(): void;
}

export interface SseWriterOptions {
  /** A comment this often keeps idle connections from being cut by proxies; 0 turns it off. Default 15 s. */
  keepAliveMs?: number;
  /** Bytes queued before writes wait for the client to read. Default 64 KiB. */
  highWaterMark?: number;
}

const encoder = new TextEncoder();

export function createSseWriter(options: SseWriterOptions = {}): SseWriter {
  const abort = new AbortController();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  // Writers waiting for the client to read; woken on the next pull, or on close.
  let waiting: (() => void)[] = [];
  const wake = () => {
    const resume = waiting;
    waiting = [];
    for (const resolve of resume) resolve();
  };

  const stream = new ReadableStream<Uint8Array>(
    {
      start(streamController) {
        controller = streamController;
      },
      pull() {
        wake();
      },
      cancel(reason) {
        finish();
        abort.abort(reason ?? new DOMException('The client closed the event stream.', 'AbortError'));
      },
    },
    { highWaterMark: options.highWaterMark ?? 64 * 1024, size: (chunk) => chunk.byteLength },
  );

  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const keepAlive = keepAliveMs > 0
    ? setInterval(() => void write(formatSseComment('keep-alive')), keepAliveMs)
    : undefined;

  function finish(): void {
    closed = true;
    if (keepAlive !== undefined) clearInterval(keepAlive);
    wake();
  }

  async function write(frame: string): Promise<boolean> {
    if (closed) return false;
    controller.enqueue(encoder.encode(frame));
    if ((controller.desiredSize ?? 0) <= 0) await new Promise<void>((resolve) => waiting.push(resolve));
    // Closed by us while waiting still delivers what is queued; cancelled by the client does not.
    return !abort.signal.aborted;
  }

  return {
    stream,
    signal: abort.signal,
    get closed() {
      return closed;
    },
    send: (event, data) => write(formatSseFrame({ event, data: JSON.stringify(data) })),
    write,
    comment: (text) => write(formatSseComment(text)),
    close() {
      if (closed) return;
      finish();
      controller.close();
    },
  };
}

/** A streaming response for the writer's events, with the SSE headers over `headers` (e.g. CORS, request id). */
export function sseResponse(writer: SseWriter, init: { status?: number; headers?: HeadersInit } = {}): Response {
  const headers = new Headers(init.headers);
  for (const [name, value] of Object.entries(SSE_HEADERS)) headers.set(name, value);
  return new Response(writer.stream, { status: init.status ?? 200, headers });
}
