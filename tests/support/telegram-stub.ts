/**
 * A local stand-in for the Telegram Bot API (https://core.telegram.org/bots/api),
 * for tests with no network: POST /bot<token>/sendMessage, /sendChatAction and
 * /setWebhook with a JSON body, answered `{ ok: true, result }` or Telegram's
 * error shape `{ ok: false, error_code, description, parameters? }`: 401 for a
 * wrong token, 400 for what Telegram refuses (no chat, empty or over-long
 * text, a bad secret token), 404 for another method. Failures (429 with
 * `parameters.retry_after`) can be queued. Every call is recorded.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from './read-body.ts';

export interface TelegramStubCall {
  at: number;
  method: string;
  /** The token in the URL. */
  token: string;
  body: Record<string, unknown>;
  /** The error_code it was answered with, or 200. */
  status: number;
}

export interface TelegramStubFailure {
  errorCode: number;
  description?: string;
  retryAfter?: number;
}

export interface TelegramStub {
  /** What to give the client as its base URL (no trailing slash). */
  baseUrl: string;
  token: string;
  calls: TelegramStubCall[];
  /** The last webhook set. */
  webhook: { url: string; secretToken: string | undefined; allowedUpdates: unknown } | null;
  /** Answers the next calls with these failures, in order. */
  failNext(...failures: TelegramStubFailure[]): void;
  /**
   * Holds the next call of `method` unanswered until `release()`; `received`
   * settles once it has arrived (to look at the database meanwhile).
   */
  holdNext(method: string): { received: Promise<void>; release(): void };
  reset(): void;
  close(): Promise<void>;
}

const MESSAGE_LIMIT = 4096;
const SECRET_TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

/**
 * A token in @BotFather's format, different for every stub: the tests share
 * one database, where a Telegram token connects one of our bots at most, so
 * test files running at once must not connect the same one.
 */
export function uniqueBotToken(): string {
  return `${randomInt(10_000_000, 99_999_999)}:AAH${randomBytes(24).toString('base64url')}`;
}

export async function startTelegramStub(options: { token?: string } = {}): Promise<TelegramStub> {
  const token = options.token ?? '123456:TEST-token_abc';
  const calls: TelegramStubCall[] = [];
  let failures: TelegramStubFailure[] = [];
  const holds = new Map<string, { arrived(): void; released: Promise<void> }>();
  let nextMessageId = 1;
  const stub: TelegramStub = {
    baseUrl: '',
    token,
    calls,
    webhook: null,
    failNext(...next) {
      failures.push(...next);
    },
    holdNext(method) {
      let arrived = () => {};
      let release = () => {};
      const received = new Promise<void>((resolve) => (arrived = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      holds.set(method, { arrived, released });
      return { received, release };
    },
    reset() {
      calls.length = 0;
      failures = [];
      holds.clear();
      stub.webhook = null;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) =>
      reply(res, 500, { ok: false, error_code: 500, description: String(error) })
    );
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(req.url?.split('?')[0] ?? '');
    const raw = await readBody(req);
    const body = raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
    const call: TelegramStubCall = {
      at: Date.now(),
      method: match?.[2] ?? '',
      token: match?.[1] ?? '',
      body,
      status: 200,
    };
    calls.push(call);
    const fail = (errorCode: number, description: string, parameters?: Record<string, unknown>) => {
      call.status = errorCode;
      reply(res, errorCode, { ok: false, error_code: errorCode, description, ...(parameters ? { parameters } : {}) });
    };
    const ok = (result: unknown) => reply(res, 200, { ok: true, result });

    if (!match || req.method !== 'POST') return fail(404, 'Not Found');
    const hold = holds.get(call.method);
    if (hold) {
      holds.delete(call.method);
      hold.arrived();
      await hold.released;
    }
    if (call.token !== token) return fail(401, 'Unauthorized');
    const failure = failures.shift();
    if (failure) {
      const description = failure.description ??
        (failure.errorCode === 429 ? `Too Many Requests: retry after ${failure.retryAfter ?? 1}` : 'Stubbed failure');
      return fail(
        failure.errorCode,
        description,
        failure.retryAfter === undefined ? undefined : { retry_after: failure.retryAfter },
      );
    }

    switch (call.method) {
      case 'sendMessage': {
        if (body.chat_id === undefined) return fail(400, 'Bad Request: chat_id is empty');
        const text = typeof body.text === 'string' ? body.text : '';
        if (text.trim() === '') return fail(400, 'Bad Request: message text is empty');
        if (text.length > MESSAGE_LIMIT) return fail(400, 'Bad Request: message is too long');
        const replyTo = body.reply_parameters as { message_id?: number } | undefined;
        return ok({
          message_id: nextMessageId++,
          date: Math.floor(Date.now() / 1000),
          chat: { id: body.chat_id, type: 'private' },
          from: { id: Number(token.split(':')[0]), is_bot: true, first_name: 'Stub bot' },
          text,
          ...(replyTo?.message_id === undefined ? {} : { reply_to_message: { message_id: replyTo.message_id } }),
        });
      }
      case 'sendChatAction':
        if (body.chat_id === undefined) return fail(400, 'Bad Request: chat_id is empty');
        if (body.action !== 'typing') return fail(400, 'Bad Request: wrong parameter action in request');
        return ok(true);
      case 'setWebhook': {
        const secret = body.secret_token as string | undefined;
        if (typeof body.url !== 'string' || body.url === '') {
          return fail(400, 'Bad Request: bad webhook: URL must be provided');
        }
        if (secret !== undefined && !SECRET_TOKEN.test(String(secret))) {
          return fail(400, 'Bad Request: secret token contains unallowed characters');
        }
        stub.webhook = { url: body.url, secretToken: secret, allowedUpdates: body.allowed_updates };
        return ok(true);
      }
      default:
        return fail(404, 'Not Found');
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  stub.baseUrl = `http://127.0.0.1:${port}`;
  return stub;
}

function reply(res: ServerResponse, status: number, payload: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(payload));
}
