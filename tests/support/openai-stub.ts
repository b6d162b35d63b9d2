/**
 * A local server that speaks OpenAI's wire format, for tests of the `openai`
 * SDK path with no network.
 *
 * POST /v1/embeddings `{ model, input, dimensions, encoding_format }` →
 * `{ object: 'list', data: [{ object: 'embedding', index, embedding }], model, usage }`,
 * with `embedding` as floats or as base64 of little-endian float32 (what the
 * SDK asks for by default). Vectors are the offline provider's lexical
 * embeddings, so retrieval behaves the same through either path. Failures
 * (429 with Retry-After, 5xx, 401) can be queued for the next requests.
 *
 * POST /v1/chat/completions answers scripted answers (answerChat), else
 * "You asked: <last user message>": streamed as OpenAI streams them (a role
 * chunk, content chunks, a finish chunk, with `stream_options.include_usage`
 * a usage chunk with no choices, then `data: [DONE]`), or as one
 * chat.completion. Failures can be queued before the first byte
 * (failChatNext), and a script can drop the connection after some chunks or
 * fail the stream as OpenAI does when the server fails mid-answer (an error
 * object as a `data:` event, then the end of the response).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { lexicalEmbedding } from '../../functions/_shared/embeddings/offline.ts';
import { countTokens } from '../../functions/_shared/text/tokens.ts';
import { readBody } from './read-body.ts';

export interface StubRequest {
  at: number;
  authorization: string | undefined;
  model: string;
  inputs: string[];
  dimensions: number | undefined;
  encodingFormat: string | undefined;
  /** The status this request was answered with. */
  status: number;
}

export interface StubFailure {
  status: number;
  headers?: Record<string, string>;
  message?: string;
}

export interface ChatStubRequest {
  at: number;
  authorization: string | undefined;
  /** The whole body as sent. */
  body: Record<string, unknown>;
  model: string;
  messages: { role: string; content: unknown }[];
  stream: boolean;
  includeUsage: boolean;
  /** The status this request was answered with. */
  status: number;
}

/** One scripted chat answer. */
export interface ChatScript {
  /** The answer: a string is sent a word per chunk (with its leading space), an array one element per chunk. */
  content: string | string[];
  finishReason?: 'stop' | 'length' | 'content_filter';
  /** The usage reported; null leaves the usage chunk out even when asked for. Default: cl100k counts. */
  usage?: { prompt_tokens: number; completion_tokens: number } | null;
  /** Streamed only: close the connection after this many content chunks (no finish chunk, no [DONE]). */
  dropAfter?: number;
  /**
   * Streamed only: after this many content chunks send OpenAI's mid-stream
   * failure, `data: {"error": {...}}`, and end the response (no finish chunk,
   * no [DONE]).
   */
  errorAfter?: number;
  /** Streamed only: a pause before each content chunk. */
  delayMs?: number;
}

export interface OpenAiStub {
  /** Base URL to give the SDK (ends in /v1). */
  baseURL: string;
  /** Embeddings requests. */
  requests: StubRequest[];
  chatRequests: ChatStubRequest[];
  /** Answers the next embeddings requests with these failures, in order, before answering normally again. */
  failNext(...failures: StubFailure[]): void;
  /** Answers the next chat requests with these failures (before any byte of a stream), in order. */
  failChatNext(...failures: StubFailure[]): void;
  /** Answers the next chat requests that do not fail with these scripts, in order. */
  answerChat(...scripts: ChatScript[]): void;
  reset(): void;
  close(): Promise<void>;
}

const MAX_INPUTS = 2048;
const MAX_TOKENS_PER_REQUEST = 300_000;
const MAX_TOKENS_PER_INPUT = 8192;

export async function startOpenAiStub(options: { apiKey?: string } = {}): Promise<OpenAiStub> {
  const requests: StubRequest[] = [];
  let failures: StubFailure[] = [];
  const chatRequests: ChatStubRequest[] = [];
  let chatFailures: StubFailure[] = [];
  let scripts: ChatScript[] = [];

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      sendJson(res, 500, { error: { message: String(error), type: 'server_error' } });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = req.method === 'POST' ? req.url?.split('?')[0] : undefined;
    if (route === '/v1/embeddings') return handleEmbeddings(req, res);
    if (route === '/v1/chat/completions') return handleChat(req, res);
    sendJson(res, 404, { error: { message: `Unknown route ${req.method} ${req.url}`, type: 'invalid_request_error' } });
  }

  async function handleEmbeddings(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = JSON.parse(await readBody(req)) as {
      model?: string;
      input?: string | string[];
      dimensions?: number;
      encoding_format?: string;
    };
    const inputs = typeof body.input === 'string' ? [body.input] : body.input ?? [];
    const record: StubRequest = {
      at: Date.now(),
      authorization: req.headers.authorization,
      model: body.model ?? '',
      inputs,
      dimensions: body.dimensions,
      encodingFormat: body.encoding_format,
      status: 200,
    };
    requests.push(record);
    const answer = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      sendJson(res, status, payload, headers);
    };

    if (options.apiKey && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      answer(401, { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', code: 'invalid_api_key' } });
      return;
    }
    const failure = failures.shift();
    if (failure) {
      answer(failure.status, { error: { message: failure.message ?? `stubbed ${failure.status}`, type: 'stub' } }, failure.headers);
      return;
    }
    // The real API's limits, so a client that ignores them fails here as it would there.
    const tokens = inputs.map((input) => countTokens(input));
    const total = tokens.reduce((sum, count) => sum + count, 0);
    const problem = inputs.length === 0
      ? 'input must not be empty'
      : inputs.length > MAX_INPUTS
      ? `at most ${MAX_INPUTS} inputs per request`
      : tokens.some((count) => count > MAX_TOKENS_PER_INPUT)
      ? `an input is over ${MAX_TOKENS_PER_INPUT} tokens`
      : total > MAX_TOKENS_PER_REQUEST
      ? `at most ${MAX_TOKENS_PER_REQUEST} tokens per request`
      : inputs.some((input) => input === '')
      ? 'inputs must not be empty strings'
      : null;
    if (problem) {
      answer(400, { error: { message: problem, type: 'invalid_request_error' } });
      return;
    }
    const base64 = body.encoding_format === 'base64';
    answer(200, {
      object: 'list',
      data: inputs.map((input, index) => {
        const vector = lexicalEmbedding(input).slice(0, body.dimensions ?? 1536);
        return { object: 'embedding', index, embedding: base64 ? toBase64(vector) : vector };
      }),
      model: body.model,
      usage: { prompt_tokens: total, total_tokens: total },
    });
  }

  async function handleChat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = JSON.parse(await readBody(req)) as Record<string, unknown>;
    const messages = Array.isArray(body.messages) ? (body.messages as ChatStubRequest['messages']) : [];
    const streamOptions = body.stream_options as { include_usage?: boolean } | null | undefined;
    const record: ChatStubRequest = {
      at: Date.now(),
      authorization: req.headers.authorization,
      body,
      model: typeof body.model === 'string' ? body.model : '',
      messages,
      stream: body.stream === true,
      includeUsage: body.stream === true && streamOptions?.include_usage === true,
      status: 200,
    };
    chatRequests.push(record);
    const answer = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      sendJson(res, status, payload, headers);
    };
    const error = (message: string, type: string, extra: { param?: string; code?: string } = {}) => ({
      error: { message, type, param: extra.param ?? null, code: extra.code ?? null },
    });

    if (options.apiKey && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      answer(401, error('Incorrect API key provided.', 'invalid_request_error', { code: 'invalid_api_key' }));
      return;
    }
    const failure = chatFailures.shift();
    if (failure) {
      answer(failure.status, error(failure.message ?? `stubbed ${failure.status}`, 'stub'), failure.headers);
      return;
    }
    if (record.model === '') {
      answer(400, error('you must provide a model parameter', 'invalid_request_error', { param: 'model' }));
      return;
    }
    if (messages.length === 0) {
      answer(400, error("[] is too short - 'messages'", 'invalid_request_error', { param: 'messages' }));
      return;
    }

    const question = [...messages].reverse().find((message) => message.role === 'user');
    const script = scripts.shift() ?? { content: `You asked: ${textOf(question?.content)}` };
    const pieces = typeof script.content === 'string' ? script.content.match(/\s*\S+/gu) ?? [] : script.content;
    const content = pieces.join('');
    // OpenAI's framing: 3 tokens per message and 3 to prime the reply.
    const counted = {
      prompt_tokens: messages.reduce((sum, message) => sum + 3 + countTokens(textOf(message.content)), 3),
      completion_tokens: countTokens(content),
    };
    const reported = script.usage === null ? null : script.usage ?? counted;
    const usage = reported && { ...reported, total_tokens: reported.prompt_tokens + reported.completion_tokens };
    const finishReason = script.finishReason ?? 'stop';
    const common = {
      id: `chatcmpl-stub${chatRequests.length}`,
      created: Math.floor(Date.now() / 1000),
      model: record.model,
      service_tier: 'default',
      system_fingerprint: 'fp_stub',
    };

    if (!record.stream) {
      answer(200, {
        ...common,
        object: 'chat.completion',
        choices: [{
          index: 0,
          message: { role: 'assistant', content, refusal: null, annotations: [] },
          logprobs: null,
          finish_reason: finishReason,
        }],
        usage,
      });
      return;
    }

    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    const send = (payload: unknown) =>
      new Promise<void>((resolve) => res.write(`data: ${JSON.stringify(payload)}\n\n`, () => resolve()));
    const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
      ...common,
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(record.includeUsage ? { usage: null } : {}),
    });
    await send(chunk({ role: 'assistant', content: '', refusal: null }, null));
    const streamError = () => {
      res.end(`data: ${JSON.stringify(error('The server had an error while processing your request. Sorry about that!', 'server_error'))}\n\n`);
    };
    for (const [index, piece] of pieces.entries()) {
      if (script.dropAfter === index) return dropConnection(res);
      if (script.errorAfter === index) return streamError();
      if (script.delayMs) await new Promise((resolve) => setTimeout(resolve, script.delayMs));
      await send(chunk({ content: piece }, null));
    }
    if (script.dropAfter !== undefined && script.dropAfter >= pieces.length) return dropConnection(res);
    if (script.errorAfter !== undefined && script.errorAfter >= pieces.length) return streamError();
    await send(chunk({}, finishReason));
    if (record.includeUsage && usage) await send({ ...common, object: 'chat.completion.chunk', choices: [], usage });
    res.end('data: [DONE]\n\n');
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    chatRequests,
    failNext(...next) {
      failures.push(...next);
    },
    failChatNext(...next) {
      chatFailures.push(...next);
    },
    answerChat(...next) {
      scripts.push(...next);
    },
    reset() {
      requests.length = 0;
      failures = [];
      chatRequests.length = 0;
      chatFailures = [];
      scripts = [];
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A message's content as text: a string as is, content parts joined. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((part: { text?: unknown }) => (typeof part.text === 'string' ? part.text : '')).join('');
}

/** The connection cut mid-response, as when a server or proxy dies: the client sees the body end in an error. */
async function dropConnection(res: ServerResponse): Promise<void> {
  // Give the chunks already written time to reach the client before the cut.
  await new Promise((resolve) => setTimeout(resolve, 20));
  res.socket?.destroy();
}

function toBase64(vector: number[]): string {
  return Buffer.from(new Float32Array(vector).buffer).toString('base64');
}

function sendJson(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(payload));
}
