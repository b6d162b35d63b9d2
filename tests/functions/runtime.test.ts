import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT_DIR, startTestStack, type TestStack } from './support.ts';

const shared = pathToFileURL(join(ROOT_DIR, 'functions/_shared/')).href;

/** Functions that exist only for these tests, one per behaviour of the runtime. */
const fixtures: Record<string, string> = {
  'echo/index.ts': `
    import { z } from 'zod';
    import { createHandler } from '${shared}handler.ts';
    import { json, readJson } from '${shared}http.ts';
    const schema = z.object({ name: z.string() });
    Deno.serve(createHandler(async (req) => {
      const { name } = await readJson(req, schema);
      return json({ hello: name, path: new URL(req.url).pathname + new URL(req.url).search });
    }));`,
  'fails/index.ts': `
    import { createHandler } from '${shared}handler.ts';
    Deno.serve(createHandler(() => { throw new Error('secret detail'); }));`,
  'raw-throw/index.ts': `Deno.serve(() => { throw new Error('kaboom'); });`,
  'boot-error/index.ts': `throw new Error('OPENAI_API_KEY is not set');`,
  'no-serve/index.ts': `export const nothing = true;`,
  'options-shape/index.ts': `Deno.serve({ port: 9999 }, () => new Response('options-shape'));`,
  'object-shape/index.ts': `Deno.serve({ port: 9999, handler: () => new Response('object-shape') });`,
  'sse/index.ts': `
    Deno.serve((req) => {
      const body = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('data: first\\n\\n'));
          // Stays open until the client goes away, so a buffering proxy would never deliver anything.
          req.signal.addEventListener('abort', () => controller.close());
        },
      });
      return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
    });`,
  'first-chunk/index.ts': `
    Deno.serve(async (req) => {
      const { value } = await req.body!.getReader().read();
      return new Response(value);
    });`,
  '_private/index.ts': `Deno.serve(() => new Response('should not be served'));`,
  'lib/elsewhere.ts': `Deno.serve(() => new Response('served from lib/elsewhere.ts'));`,
  'supabase/config.toml': `
    [functions.elsewhere]
    verify_jwt = false
    entrypoint = "../lib/elsewhere.ts"
  `,
};

describe('functions runtime (fixture functions)', () => {
  let dir: string;
  let stack: TestStack;
  let auth: Record<string, string>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'functions-runtime-'));
    for (const [path, source] of Object.entries(fixtures)) {
      mkdirSync(join(dir, dirname(path)), { recursive: true });
      writeFileSync(join(dir, path), source);
    }
    stack = await startTestStack({ functionsDir: dir, configPath: join(dir, 'supabase/config.toml') });
    auth = { authorization: `Bearer ${stack.keys.anonKey}` };
  });
  afterAll(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${stack.functionsUrl}/${path}`, {
      ...init,
      headers: { ...auth, ...(init.headers as Record<string, string>) },
    });

  it('routes /<name>/<rest>?query to the function with the path and query intact', async () => {
    const response = await call('echo/sub/path?x=1', { method: 'POST', body: '{"name":"ada"}' });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ hello: 'ada', path: '/echo/sub/path?x=1' });
  });

  it('answers a non-JSON body with 400 invalid_json', async () => {
    const response = await call('echo', { method: 'POST', body: 'not json' });
    expect(response.status).toBe(400);
    expect((await response.json()).error.code).toBe('invalid_json');
  });

  it('answers a throwing createHandler function with 500 internal_error and the request id', async () => {
    const response = await call('fails', { headers: { 'x-request-id': 'trace-500' } });
    expect(response.status).toBe(500);
    expect(response.headers.get('x-request-id')).toBe('trace-500');
    const { error } = await response.json();
    expect(error).toMatchObject({ code: 'internal_error', request_id: 'trace-500' });
    expect(error.message).not.toContain('secret detail');
  });

  it('answers a raw handler that throws with 500 internal_error', async () => {
    const response = await call('raw-throw');
    expect(response.status).toBe(500);
    expect(response.headers.get('x-request-id')).toBeTruthy();
    expect((await response.json()).error.code).toBe('internal_error');
  });

  it('answers a function whose import threw with 500 function_boot_error, reported once at start-up', async () => {
    const response = await call('boot-error');
    expect(response.status).toBe(500);
    const { error } = await response.json();
    expect(error.code).toBe('function_boot_error');
    expect(error.message).toContain('OPENAI_API_KEY is not set');
    await call('boot-error');
    const reports = stack.logs.filter((line) => line.includes('OPENAI_API_KEY is not set'));
    expect(reports).toHaveLength(1);
    expect(reports[0]).toContain('function "boot-error" failed to boot');
  });

  it('treats a module that never calls Deno.serve as a boot error', async () => {
    const response = await call('no-serve');
    expect((await response.json()).error.code).toBe('function_boot_error');
  });

  it('captures Deno.serve(options, handler) and Deno.serve({ handler })', async () => {
    expect(await (await call('options-shape')).text()).toBe('options-shape');
    expect(await (await call('object-shape')).text()).toBe('object-shape');
  });

  it('serves a function from its config.toml entrypoint, with its verify_jwt setting', async () => {
    const response = await fetch(`${stack.functionsUrl}/elsewhere`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('served from lib/elsewhere.ts');
  });

  it('does not serve folders starting with _', async () => {
    const response = await call('_private');
    expect(response.status).toBe(404);
    expect((await response.json()).error.code).toBe('function_not_found');
  });

  it('streams server-sent events without buffering', async () => {
    const controller = new AbortController();
    const response = await call('sse', { signal: controller.signal });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const reader = response.body!.getReader();
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toBe('data: first\n\n');
    controller.abort();
  });

  it('streams the request body: the function sees the first chunk before the upload ends', async () => {
    const url = new URL(`${stack.functionsUrl}/first-chunk`);
    const answer = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(url, { method: 'POST', headers: { ...auth, 'transfer-encoding': 'chunked' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          req.end();
          resolve(text);
        });
      });
      req.on('error', reject);
      req.write('first chunk');
      // The request is deliberately left open: the answer can only come from streaming.
    });
    expect(answer).toBe('first chunk');
  });
});
