import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HttpError } from '../../functions/_shared/errors.ts';
import { readJson } from '../../functions/_shared/http.ts';
import {
  chatCompletion,
  chatCompletionRequestSchema,
  chunkBuilder,
  completionMeta,
  contentText,
  openAiErrorBody,
  openAiErrorResponse,
  requestedMaxTokens,
  SSE_DONE,
  sseData,
  sseError,
} from '../../functions/_shared/openai-wire.ts';
import {
  createSseWriter,
  formatSseComment,
  formatSseFrame,
  SSE_HEADERS,
  sseResponse,
} from '../../functions/_shared/sse.ts';
import { readBody } from '../support/read-body.ts';

const decoder = new TextDecoder();

/** Everything a stream yields until it ends, as text. */
async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let text = '';
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    text += decoder.decode(read.value, { stream: true });
  }
  return text;
}

describe('SSE framing', () => {
  it('frames an event with its name, id and one data line per line, ended by a blank line', () => {
    expect(formatSseFrame({ event: 'delta', data: '{"text":"Hi"}' })).toBe('event: delta\ndata: {"text":"Hi"}\n\n');
    expect(formatSseFrame({ data: 'one\ntwo\r\nthree', id: '7' })).toBe('id: 7\ndata: one\ndata: two\ndata: three\n\n');
    expect(() => formatSseFrame({ event: 'a\nb', data: '' })).toThrow(TypeError);
  });

  it('frames comments, which clients ignore', () => {
    expect(formatSseComment('keep-alive')).toBe(': keep-alive\n\n');
    expect(formatSseComment()).toBe(':\n\n');
  });

  it('answers with the event-stream headers over the caller’s own', async () => {
    const writer = createSseWriter({ keepAliveMs: 0 });
    const response = sseResponse(writer, { headers: { 'x-request-id': 'req-1', 'content-type': 'application/json' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-cache');
    expect(response.headers.get('x-accel-buffering')).toBe('no');
    expect(response.headers.get('x-request-id')).toBe('req-1');
    expect(SSE_HEADERS['cache-control']).toBe('no-cache');
    writer.close();
    await response.body?.cancel();
  });
});

describe('SSE writer', () => {
  it('sends JSON events, raw frames and comments in order, and ends on close', async () => {
    const writer = createSseWriter({ keepAliveMs: 0 });
    const body = readAll(writer.stream);
    expect(await writer.send('delta', { text: 'Hel' })).toBe(true);
    expect(await writer.send(undefined, { text: 'lo\nthere' })).toBe(true);
    expect(await writer.comment('ping')).toBe(true);
    expect(await writer.write('data: [DONE]\n\n')).toBe(true);
    writer.close();
    writer.close();
    expect(await body).toBe(
      'event: delta\ndata: {"text":"Hel"}\n\n' + 'data: {"text":"lo\\nthere"}\n\n' + ': ping\n\n' + 'data: [DONE]\n\n',
    );
    expect(writer.closed).toBe(true);
    expect(await writer.send('late', {})).toBe(false);
    expect(writer.signal.aborted).toBe(false);
  });

  it('makes writers wait while the client is not reading, and lets them go as it reads', async () => {
    const writer = createSseWriter({ keepAliveMs: 0, highWaterMark: 16 });
    let settled = false;
    const pending = writer.write(formatSseFrame({ data: 'x'.repeat(32) })).then((sent) => {
      settled = true;
      return sent;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(false);
    const reader = writer.stream.getReader();
    await reader.read();
    expect(await pending).toBe(true);
    writer.close();
    expect((await reader.read()).done).toBe(true);
  });

  it('aborts its signal and refuses writes when the client goes away, releasing waiting writers', async () => {
    const writer = createSseWriter({ keepAliveMs: 0, highWaterMark: 16 });
    const waiting = writer.write(formatSseFrame({ data: 'x'.repeat(32) }));
    await writer.stream.cancel();
    expect(writer.signal.aborted).toBe(true);
    expect(writer.closed).toBe(true);
    expect(await waiting).toBe(false);
    expect(await writer.send('delta', { text: 'nobody listens' })).toBe(false);
    expect(() => writer.close()).not.toThrow();
  });

  it('sends keep-alive comments while idle, and stops with the stream', async () => {
    const writer = createSseWriter({ keepAliveMs: 20 });
    const body = readAll(writer.stream);
    await new Promise((resolve) => setTimeout(resolve, 70));
    writer.close();
    const text = await body;
    expect(text).toMatch(/^(: keep-alive\n\n){2,}$/);
  });
});

describe('OpenAI chat completions request schema', () => {
  it('accepts what the official SDK sends, keeping the fields we read and dropping the rest', async () => {
    const bodies: unknown[] = [];
    const server = await serve((req, res) => {
      void readBody(req).then((raw) => {
        bodies.push(JSON.parse(raw));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(
            chatCompletion(completionMeta('bot'), {
              content: 'ok',
              finishReason: 'stop',
              usage: { tokensIn: 1, tokensOut: 1 },
            }),
          ),
        );
      });
    });
    try {
      const client = new OpenAI({ apiKey: 'ak_test', baseURL: server.url, maxRetries: 0 });
      await client.chat.completions.create({
        model: 'bot-1',
        messages: [
          { role: 'developer', content: 'Be brief.' },
          { role: 'system', content: [{ type: 'text', text: 'You are a voice agent.' }] },
          { role: 'user', content: [{ type: 'text', text: 'Where is ' }, { type: 'text', text: 'my order?' }] },
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }],
          },
          { role: 'tool', tool_call_id: 'c1', content: 'done' },
        ],
        temperature: 0.7,
        max_tokens: 120,
        user: 'caller-42',
        top_p: 0.9,
        tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      });
      await client.chat.completions.create({
        model: 'bot-1',
        messages: [{ role: 'user', content: 'Hi' }],
        stream: true,
        stream_options: { include_usage: true },
        max_completion_tokens: 50,
      }).catch(() => undefined);
    } finally {
      await server.close();
    }

    const first = chatCompletionRequestSchema.parse(bodies[0]);
    expect(first).toEqual({
      model: 'bot-1',
      messages: [
        { role: 'developer', content: 'Be brief.' },
        { role: 'system', content: [{ type: 'text', text: 'You are a voice agent.' }] },
        { role: 'user', content: [{ type: 'text', text: 'Where is ' }, { type: 'text', text: 'my order?' }] },
        { role: 'assistant', content: null },
        { role: 'tool', content: 'done' },
      ],
      temperature: 0.7,
      max_tokens: 120,
      user: 'caller-42',
    });
    expect(contentText(first.messages[2].content)).toBe('Where is my order?');
    expect(contentText(first.messages[3].content)).toBe('');
    expect(requestedMaxTokens(first)).toBe(120);

    const second = chatCompletionRequestSchema.parse(bodies[1]);
    expect(second).toMatchObject({ stream: true, stream_options: { include_usage: true }, max_completion_tokens: 50 });
    expect(requestedMaxTokens(second)).toBe(50);
  });

  const issues = (body: unknown) =>
    chatCompletionRequestSchema.safeParse(body).error?.issues.map((issue) =>
      `${issue.path.join('.')}: ${issue.message}`
    );

  it('rejects malformed bodies with messages that say what is wrong', () => {
    const message = { role: 'user', content: 'Hi' };
    expect(issues({ messages: [message] })).toEqual(['model: model must be a string']);
    expect(issues({ model: '', messages: [message] })).toEqual(['model: model must not be empty']);
    expect(issues({ model: 'm' })).toEqual(['messages: messages must be an array']);
    expect(issues({ model: 'm', messages: [] })).toEqual(['messages: messages must not be empty']);
    expect(issues({ model: 'm', messages: [{ role: 'robot', content: 'x' }] })).toEqual([
      'messages.0.role: role must be one of system, user, assistant, developer, tool',
    ]);
    expect(issues({ model: 'm', messages: [{ role: 'user', content: 5 }] })?.[0]).toMatch(
      /^messages\.0\.content: content must be a string or an array of .*text/,
    );
    expect(
      issues({ model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] })
        ?.[0],
    )
      .toContain('only text is supported');
    expect(issues({ model: 'm', messages: [{ role: 'user' }] })).toEqual(['messages.0.content: content is required']);
    expect(issues({ model: 'm', messages: [message], temperature: 3 })?.[0]).toMatch(/^temperature: /);
    expect(issues({ model: 'm', messages: [message], max_tokens: 0 })?.[0]).toMatch(/^max_tokens: /);
    expect(issues({ model: 'm', messages: [message], max_completion_tokens: 1.5 })?.[0]).toMatch(
      /^max_completion_tokens: /,
    );
    expect(issues({ model: 'm', messages: [message], stream: 'yes' })?.[0]).toMatch(/^stream: /);
  });

  it('reads through readJson as a 422 naming the field', async () => {
    const req = new Request('http://x/v1/chat/completions', {
      method: 'POST',
      body: JSON.stringify({ model: 'm', messages: [{ role: 'robot', content: 'x' }] }),
    });
    const error = await readJson(req, chatCompletionRequestSchema).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).status).toBe(422);
    expect((error as HttpError).message).toContain('messages.0.role: role must be one of');
  });
});

describe('OpenAI chat completion objects', () => {
  it('makes chatcmpl ids and times in seconds', () => {
    const meta = completionMeta('bot-1', 1_700_000_000_999);
    expect(meta.id).toMatch(/^chatcmpl-[A-Za-z0-9]{24}$/);
    expect(meta.created).toBe(1_700_000_000);
    expect(completionMeta('bot-1').id).not.toBe(meta.id);
  });

  it('builds the chunks in OpenAI’s shapes, with usage null on each when usage was asked for', () => {
    const meta = { id: 'chatcmpl-abc', created: 1, model: 'bot-1' };
    const withUsage = chunkBuilder(meta, { includeUsage: true });
    const common = {
      id: 'chatcmpl-abc',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'bot-1',
      system_fingerprint: null,
    };
    expect(withUsage.start()).toEqual({
      ...common,
      choices: [{
        index: 0,
        delta: { role: 'assistant', content: '', refusal: null },
        logprobs: null,
        finish_reason: null,
      }],
      usage: null,
    });
    expect(withUsage.content('Hi')).toEqual({
      ...common,
      choices: [{ index: 0, delta: { content: 'Hi' }, logprobs: null, finish_reason: null }],
      usage: null,
    });
    expect(withUsage.finish('length').choices[0]).toEqual({
      index: 0,
      delta: {},
      logprobs: null,
      finish_reason: 'length',
    });
    expect(withUsage.usage({ tokensIn: 10, tokensOut: 3 })).toEqual({
      ...common,
      choices: [],
      usage: { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13 },
    });
    expect('usage' in chunkBuilder(meta, { includeUsage: false }).content('Hi')).toBe(false);
    expect(sseData(withUsage.content('Hi'))).toBe(`data: ${JSON.stringify(withUsage.content('Hi'))}\n\n`);
    expect(SSE_DONE).toBe('data: [DONE]\n\n');
  });

  it('builds OpenAI’s error body, keeping our code and message', () => {
    expect(openAiErrorBody(400, 'invalid_request', 'Bad.', 'messages')).toEqual({
      error: { message: 'Bad.', type: 'invalid_request_error', code: 'invalid_request', param: 'messages' },
    });
    expect(openAiErrorBody(401, 'invalid_api_key', 'No.').error.type).toBe('authentication_error');
    expect(openAiErrorBody(503, null, 'Down.').error).toEqual({
      message: 'Down.',
      type: 'server_error',
      code: null,
      param: null,
    });
  });

  it('frames a mid-stream failure as OpenAI does: the error body as a data event, no event name', () => {
    expect(sseError(503, 'model_unavailable', 'The model did not answer; try again.')).toBe(
      `data: ${
        JSON.stringify({
          error: { message: 'The model did not answer; try again.', type: 'server_error', code: 'model_unavailable', param: null },
        })
      }\n\n`,
    );
  });

  it('turns an HttpError into an OpenAI error response with its headers, and hides anything else', async () => {
    const limited = openAiErrorResponse(
      new HttpError(429, 'rate_limited', 'Too many requests.', { 'retry-after': '30' }),
      'req-9',
    );
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('30');
    expect(limited.headers.get('x-request-id')).toBe('req-9');
    expect(await limited.json()).toEqual({
      error: {
        message: 'Too many requests.',
        type: 'rate_limit_error',
        code: 'rate_limited',
        param: null,
        request_id: 'req-9',
      },
    });
    const original = console.error;
    console.error = () => {};
    try {
      const hidden = openAiErrorResponse(new Error('password=hunter2'));
      expect(hidden.status).toBe(500);
      expect(JSON.stringify(await hidden.json())).not.toContain('hunter2');
    } finally {
      console.error = original;
    }
  });
});

describe('the official SDK reads what the wire helpers and the SSE writer produce', () => {
  let server: { url: string; close(): Promise<void> };
  let mode: 'stream' | 'error' = 'stream';
  beforeAll(async () => {
    server = await serve((req, res) => {
      void readBody(req).then(async (raw) => {
        const body = chatCompletionRequestSchema.parse(JSON.parse(raw));
        if (mode === 'error') {
          const response = openAiErrorResponse(
            new HttpError(429, 'rate_limited', 'Slow down.', { 'retry-after': '7' }),
          );
          res.writeHead(response.status, Object.fromEntries(response.headers));
          res.end(await response.text());
          return;
        }
        const meta = completionMeta(body.model);
        const usage = { tokensIn: 12, tokensOut: 4 };
        if (!body.stream) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(chatCompletion(meta, { content: 'Hello there [1].', finishReason: 'stop', usage })));
          return;
        }
        const includeUsage = body.stream_options?.include_usage === true;
        const chunks = chunkBuilder(meta, { includeUsage });
        const writer = createSseWriter({ keepAliveMs: 0 });
        const response = sseResponse(writer);
        res.writeHead(200, Object.fromEntries(response.headers));
        // Each frame goes out as the writer emits it, as a function's streamed Response body does.
        const piping = (async () => {
          const reader = writer.stream.getReader();
          for (let read = await reader.read(); !read.done; read = await reader.read()) res.write(read.value);
          res.end();
        })();
        await writer.write(sseData(chunks.start()));
        for (const text of ['Hello', ' there', ' [1].']) await writer.write(sseData(chunks.content(text)));
        await writer.write(sseData(chunks.finish('stop')));
        if (includeUsage) await writer.write(sseData(chunks.usage(usage)));
        await writer.write(SSE_DONE);
        writer.close();
        await piping;
      });
    });
  });
  afterAll(async () => {
    await server?.close();
  });
  beforeEach(() => {
    mode = 'stream';
  });

  const client = () => new OpenAI({ apiKey: 'ak_test', baseURL: server.url, maxRetries: 0 });

  it('streams content and the usage chunk', async () => {
    const stream = await client().chat.completions.create({
      model: 'bot-1',
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    const finishReasons: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.choices[0]) finishReasons.push(chunk.choices[0].finish_reason);
      if (chunk.usage) usage = chunk.usage;
      expect(chunk.object).toBe('chat.completion.chunk');
      expect(chunk.model).toBe('bot-1');
    }
    expect(text).toBe('Hello there [1].');
    expect(finishReasons.at(-1)).toBe('stop');
    expect(usage).toEqual({ prompt_tokens: 12, completion_tokens: 4, total_tokens: 16 });
  });

  it('reads a whole completion, and the SDK helper that assembles a stream agrees', async () => {
    const completion = await client().chat.completions.create({
      model: 'bot-1',
      messages: [{ role: 'user', content: 'Hi' }],
    });
    expect(completion.choices[0].message).toMatchObject({ role: 'assistant', content: 'Hello there [1].' });
    expect(completion.usage?.total_tokens).toBe(16);

    const runner = client().chat.completions.stream({ model: 'bot-1', messages: [{ role: 'user', content: 'Hi' }] });
    const final = await runner.finalChatCompletion();
    expect(final.choices[0].message.content).toBe('Hello there [1].');
    expect(final.choices[0].finish_reason).toBe('stop');
  });

  it('raises our OpenAI-shaped error as its RateLimitError with code and message', async () => {
    mode = 'error';
    const error = await client().chat.completions.create({
      model: 'bot-1',
      messages: [{ role: 'user', content: 'Hi' }],
    })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect(error).toMatchObject({ status: 429, code: 'rate_limited', type: 'rate_limit_error' });
    expect((error as Error).message).toContain('Slow down.');
    expect((error as APIError).headers?.get('retry-after')).toBe('7');
  });
});

async function serve(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

