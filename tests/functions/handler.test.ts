import postgres from 'postgres';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { corsHeaders } from '../../functions/_shared/cors.ts';
import { errorResponse, HttpError } from '../../functions/_shared/errors.ts';
import { createHandler } from '../../functions/_shared/handler.ts';
import { json, readJson } from '../../functions/_shared/http.ts';

const noEnv = () => undefined;

describe('errorResponse', () => {
  it('renders an HttpError as { error: { code, message } } with its status and headers', async () => {
    const response = errorResponse(new HttpError(405, 'method_not_allowed', 'Use GET.', { allow: 'GET' }));
    expect(response.status).toBe(405);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('allow')).toBe('GET');
    expect(await response.json()).toEqual({ error: { code: 'method_not_allowed', message: 'Use GET.' } });
  });

  it('hides unknown errors behind a generic 500 and logs the real one', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const response = errorResponse(new Error('password=hunter2 in connection string'), 'req-1');
    expect(response.status).toBe(500);
    expect(response.headers.get('x-request-id')).toBe('req-1');
    const body = await response.json();
    expect(body).toEqual({
      error: { code: 'internal_error', message: 'The server failed to process the request.', request_id: 'req-1' },
    });
    expect(JSON.stringify(body)).not.toContain('hunter2');
    expect(String(log.mock.calls[0])).toContain('hunter2');
    log.mockRestore();
  });
});

describe('cors', () => {
  it('allows any origin when ALLOWED_ORIGINS is unset', () => {
    expect(corsHeaders('https://evil.example', noEnv)).toMatchObject({
      'access-control-allow-origin': '*',
      'access-control-allow-headers':
        'authorization, x-client-info, apikey, content-type, traceparent, tracestate, baggage, x-region, ' +
        'x-api-key, idempotency-key, x-conversation-id, x-chat-channel, x-request-id',
      'access-control-expose-headers':
        'x-request-id, x-conversation-id, retry-after, x-ratelimit-scope, idempotent-replayed, location',
    });
  });

  it('echoes only listed origins when ALLOWED_ORIGINS is set', () => {
    const env = (
      name: string,
    ) => (name === 'ALLOWED_ORIGINS' ? 'https://app.example, https://admin.example' : undefined);
    expect(corsHeaders('https://admin.example', env)['access-control-allow-origin']).toBe('https://admin.example');
    expect(corsHeaders('https://evil.example', env)['access-control-allow-origin']).toBeUndefined();
    expect(corsHeaders('https://evil.example', env).vary).toBe('Origin');
  });
});

describe('createHandler', () => {
  const schema = z.object({ name: z.string().min(1), count: z.number().int() });
  const echo = createHandler(async (req, ctx) => json({ ...(await readJson(req, schema)), requestId: ctx.requestId }), {
    env: noEnv,
  });
  const post = (body: string, headers: Record<string, string> = {}) =>
    new Request('http://local/echo', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', ...headers },
    });

  it('answers a CORS preflight without calling the function', async () => {
    const fn = vi.fn();
    const response = await createHandler(fn, { env: noEnv })(new Request('http://local/x', { method: 'OPTIONS' }));
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-methods')).toContain('POST');
    expect(fn).not.toHaveBeenCalled();
  });

  it('passes the parsed body through and adds CORS headers and a request id', async () => {
    const response = await echo(post('{"name":"ada","count":2}'));
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body).toMatchObject({ name: 'ada', count: 2 });
    expect(response.headers.get('x-request-id')).toBe(body.requestId);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('reuses a well-formed incoming x-request-id and replaces a malformed one', async () => {
    const reused = await echo(post('{"name":"ada","count":2}', { 'x-request-id': 'abc-123' }));
    expect(reused.headers.get('x-request-id')).toBe('abc-123');
    const replaced = await echo(post('{"name":"ada","count":2}', { 'x-request-id': 'bad id\twith spaces' }));
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers a non-JSON body with 400 invalid_json', async () => {
    const response = await echo(post('name=ada'));
    expect(response.status).toBe(400);
    expect((await response.json()).error.code).toBe('invalid_json');
  });

  it('answers a body that fails the schema with 422 invalid_request naming the fields', async () => {
    const response = await echo(post('{"name":"","count":1.5}'));
    expect(response.status).toBe(422);
    const { error } = await response.json();
    expect(error.code).toBe('invalid_request');
    expect(error.message).toContain('name:');
    expect(error.message).toContain('count:');
  });

  it('turns a thrown error into a 500 JSON error carrying the request id', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const response = await createHandler(
      () => {
        throw new Error('boom');
      },
      { env: noEnv },
    )(new Request('http://local/x', { headers: { 'x-request-id': 'trace-42' } }));
    expect(response.status).toBe(500);
    expect(response.headers.get('x-request-id')).toBe('trace-42');
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect((await response.json()).error).toEqual({
      code: 'internal_error',
      message: 'The server failed to process the request.',
      request_id: 'trace-42',
    });
    log.mockRestore();
  });

  it('answers Postgres errors no endpoint mapped: a value it cannot take is 422, a deadlock a 503 to retry', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const failWith = (code: string, message: string) =>
      createHandler(() => {
        // postgres.js builds its errors from the server's fields; its typings say the constructor takes a string.
        throw new (postgres.PostgresError as unknown as new (fields: { code: string; message: string }) => Error)({
          code,
          message,
        });
      }, { env: noEnv })(new Request('http://local/x'));
    const overflow = await failWith('22003', 'numeric field overflow');
    expect(overflow.status).toBe(422);
    expect((await overflow.json()).error).toMatchObject({ code: 'invalid_request', message: 'A number is out of range.' });
    const tooLong = await failWith('22001', 'value too long for type character varying(20)');
    expect(tooLong.status).toBe(422);
    const deadlock = await failWith('40P01', 'deadlock detected');
    expect(deadlock.status).toBe(503);
    expect(deadlock.headers.get('retry-after')).toBe('1');
    expect((await deadlock.json()).error.code).toBe('conflict_retry');
    const other = await failWith('42P01', 'relation "secret_table" does not exist');
    expect(other.status).toBe(500);
    expect(JSON.stringify(await other.json())).not.toContain('secret_table');
    log.mockRestore();
  });

  it('keeps a streamed body streaming', async () => {
    let pull = 0;
    const handler = createHandler(
      () =>
        new Response(
          new ReadableStream({
            pull(controller) {
              controller.enqueue(new TextEncoder().encode(`data: ${++pull}\n\n`));
            },
          }),
          { headers: { 'content-type': 'text/event-stream' } },
        ),
      { env: noEnv },
    );
    const reader = (await handler(new Request('http://local/sse'))).body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: 1\n\n');
    await reader.cancel();
  });
});
