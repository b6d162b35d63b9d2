/**
 * A local server that speaks OpenAI's embeddings wire format, for tests of the
 * `openai` SDK path with no network: POST /v1/embeddings
 * `{ model, input, dimensions, encoding_format }` →
 * `{ object: 'list', data: [{ object: 'embedding', index, embedding }], model, usage }`,
 * with `embedding` as floats or as base64 of little-endian float32 (what the
 * SDK asks for by default). Vectors are the offline provider's lexical
 * embeddings, so retrieval behaves the same through either path. Failures
 * (429 with Retry-After, 5xx, 401) can be queued for the next requests.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { lexicalEmbedding } from '../../functions/_shared/embeddings/offline.ts';
import { countTokens } from '../../functions/_shared/text/tokens.ts';

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

export interface OpenAiStub {
  /** Base URL to give the SDK (ends in /v1). */
  baseURL: string;
  requests: StubRequest[];
  /** Answers the next requests with these failures, in order, before answering normally again. */
  failNext(...failures: StubFailure[]): void;
  reset(): void;
  close(): Promise<void>;
}

const MAX_INPUTS = 2048;
const MAX_TOKENS_PER_REQUEST = 300_000;
const MAX_TOKENS_PER_INPUT = 8192;

export async function startOpenAiStub(options: { apiKey?: string } = {}): Promise<OpenAiStub> {
  const requests: StubRequest[] = [];
  let failures: StubFailure[] = [];

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      sendJson(res, 500, { error: { message: String(error), type: 'server_error' } });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST' || req.url?.split('?')[0] !== '/v1/embeddings') {
      sendJson(res, 404, { error: { message: `Unknown route ${req.method} ${req.url}`, type: 'invalid_request_error' } });
      return;
    }
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

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    requests,
    failNext(...next) {
      failures.push(...next);
    },
    reset() {
      requests.length = 0;
      failures = [];
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function toBase64(vector: number[]): string {
  return Buffer.from(new Float32Array(vector).buffer).toString('base64');
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(payload));
}
