/**
 * Request bodies are capped before they are read (through the gateway, real
 * Deno): an oversize body to chat/completions (4 MiB), the calls API,
 * knowledge search, webhooks, account or billing (1 MiB) is a 413
 * `payload_too_large` JSON error that changes nothing, with or without
 * Content-Length, and a declared Content-Length over the cap is answered
 * without waiting for the body. Chat's messages may add up to 500,000 characters, system prompts
 * counted; a legal body past 1 MiB is still served.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { startTestStack, type TestStack } from './support.ts';

let stack: TestStack;
let sql: Sql;
let org: ChatOrg;
let botId: string;
let chatKey: string;
let callsKey: string;
let searchKey: string;

const MiB = 1024 * 1024;

/** `{ ...fields, pad: "xxx…" }`, at least `bytes` long. */
const padded = (fields: Record<string, unknown>, bytes: number) => JSON.stringify({ ...fields, pad: 'x'.repeat(bytes) });

interface Answer {
  status: number;
  contentType: string;
  body: { error: { code: string; type?: string; message: string } };
}

/**
 * A request on its own connection (a server that answers before the body is
 * sent closes it), with Content-Length or chunked in 64 KiB pieces. Ends
 * when the answer has come, whether or not the whole body was taken.
 */
function send(path: string, init: { method?: string; headers: Record<string, string>; body: string; chunked?: boolean }) {
  return new Promise<Answer>((resolve, reject) => {
    const bytes = Buffer.from(init.body);
    const req = httpRequest(new URL(`${stack.functionsUrl}${path}`), {
      method: init.method ?? 'POST',
      agent: false,
      headers: {
        'content-type': 'application/json',
        ...(init.chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(bytes.byteLength) }),
        ...init.headers,
      },
    }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.on('end', () => {
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type']),
          body: JSON.parse(Buffer.concat(parts).toString('utf8')) as Answer['body'],
        });
        req.destroy();
      });
    });
    // After the answer, an error (the connection closed on the body's rest) finds the promise settled.
    req.on('error', reject);
    void (async () => {
      for (let at = 0; at < bytes.byteLength && !req.destroyed; at += 64 * 1024) {
        if (!req.write(bytes.subarray(at, at + 64 * 1024))) await new Promise((drained) => req.once('drain', drained));
      }
      if (!req.destroyed) req.end();
    })().catch(reject);
  });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function expectTooLarge(answer: Answer, maxBytes: number): void {
  expect(answer.status).toBe(413);
  expect(answer.contentType).toContain('application/json');
  expect(answer.body.error.code).toBe('payload_too_large');
  expect(answer.body.error.message).toContain(`at most ${maxBytes} bytes`);
}

const count = async (table: 'conversations' | 'messages' | 'usage_events' | 'calls') =>
  (await sql<{ n: number }[]>`select count(*)::int as n from ${sql(`public.${table}`)} where org_id = ${org.id}`)[0].n;

const complete = (body: string, chunked = false) =>
  send('/chat/v1/chat/completions', { headers: bearer(chatKey), body, chunked });

beforeAll(async () => {
  stack = await startTestStack();
  sql = createSql(stack.dbUrl, { max: 1 });
  org = await createChatOrg(sql, 'body-caps');
  botId = await createBot(sql, org.id, { slug: 'body-caps-bot' });
  chatKey = (await createApiKey(sql, org)).key;
  callsKey = (await createApiKey(sql, org, ['calls.read', 'calls.write'])).key;
  searchKey = (await createApiKey(sql, org, ['knowledge.read'])).key;
  await sql`update public.api_keys set rate_limit_per_minute = 1000 where org_id = ${org.id}`;
});

afterAll(async () => {
  if (org) await sql`delete from public.organizations where id = ${org.id}`;
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe('chat/completions (bot key): 4 MiB of body, 500,000 characters of content', () => {
  const overCap = JSON.stringify({
    model: 'body-caps-bot',
    messages: [{ role: 'system', content: 'x'.repeat(5 * MiB) }, { role: 'user', content: 'Hello?' }],
  });

  it('answers 413 payload_too_large in OpenAI\'s error shape, with and without Content-Length, storing nothing', async () => {
    for (const chunked of [false, true]) {
      const answer = await complete(overCap, chunked);
      expectTooLarge(answer, 4 * MiB);
      expect(answer.body.error.type).toBe('invalid_request_error');
    }
    expect(await count('conversations')).toBe(0);
    expect(await count('usage_events')).toBe(0);
  });

  it('refuses messages whose content adds up past 500,000 characters (system prompts counted) with 400, storing nothing', async () => {
    const messages = [
      ...Array.from({ length: 6 }, () => ({ role: 'system', content: 'y'.repeat(100_000) })),
      { role: 'user', content: 'Hello?' },
    ];
    const answer = await complete(JSON.stringify({ model: 'body-caps-bot', messages }));
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('invalid_request');
    expect(answer.body.error.message).toContain('at most 500000 characters in all');
    expect(await count('conversations')).toBe(0);
  });

  it('still serves a legal body past the 1 MiB default: 400,000 escaped characters of system prompt', async () => {
    const body = JSON.stringify({
      model: 'body-caps-bot',
      messages: [{ role: 'system', content: '\u00e9'.repeat(400_000) }, { role: 'user', content: 'Hello?' }],
    }).replace(/\u00e9/g, '\\u00e9');
    expect(body.length).toBeGreaterThan(2 * MiB);
    const served = await fetch(`${stack.functionsUrl}/chat/v1/chat/completions`, {
      method: 'POST',
      headers: { ...bearer(chatKey), 'content-type': 'application/json' },
      body,
    });
    expect(served.status).toBe(200);
    expect((await served.json()).choices[0].message.content).toEqual(expect.any(String));
    expect(await count('conversations')).toBe(1);
  });

  it('answers a declared Content-Length over the cap without waiting for the body', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${stack.functionsUrl}/chat/v1/chat/completions`);
      const req = httpRequest(url, {
        method: 'POST',
        headers: { ...bearer(chatKey), 'content-type': 'application/json', 'content-length': String(100 * MiB) },
      }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', reject);
      req.setTimeout(15_000, () => req.destroy(new Error('no answer before the body was sent')));
      // A start, and then nothing: the other 100 MiB never come.
      req.write('{"model":"body-caps-bot","messages":[');
    });
    expect(status).toBe(413);
  });
});

describe('1 MiB everywhere else', () => {
  it('the calls API: POST /calls over 1 MiB is a 413 and queues no call, chunked or not', async () => {
    for (const chunked of [false, true]) {
      const body = padded({ bot_id: botId, to_number: '+14155550123' }, MiB);
      expectTooLarge(await send('/calls', { headers: bearer(callsKey), body, chunked }), MiB);
    }
    expect(await count('calls')).toBe(0);
  });

  it('knowledge search over 1 MiB is a 413 and embeds and meters nothing', async () => {
    const metered = await count('usage_events');
    for (const chunked of [false, true]) {
      const body = JSON.stringify({ query: 'q'.repeat(MiB) });
      expectTooLarge(await send('/knowledge/search', { headers: bearer(searchKey), body, chunked }), MiB);
    }
    expect(await count('usage_events')).toBe(metered);
  });

  it('account: deleting an org with a body over 1 MiB is a 413 and the org stays', async () => {
    const [{ name }] = await sql<{ name: string }[]>`select name from public.organizations where id = ${org.id}`;
    // With Content-Length only: the local gateway forwards a DELETE without framing a chunked body.
    const body = padded({ confirm_name: name }, MiB);
    expectTooLarge(await send(`/account/organizations/${org.id}`, { method: 'DELETE', headers: bearer(org.tokens.owner), body }), MiB);
    expect(await sql`select 1 from public.organizations where id = ${org.id}`).toHaveLength(1);
  });

  it('webhooks: creating an endpoint with a body over 1 MiB is a 413 and creates none', async () => {
    for (const chunked of [false, true]) {
      const body = padded({ org_id: org.id, url: 'https://hooks.example.com/body-caps', event_types: ['call.ended'] }, MiB);
      expectTooLarge(await send('/webhooks/endpoints', { headers: bearer(org.tokens.owner), body, chunked }), MiB);
    }
    expect(await sql`select 1 from public.webhook_endpoints where org_id = ${org.id}`).toHaveLength(0);
  });

  it('billing: the render wake-up with a body over 1 MiB is a 413', async () => {
    for (const chunked of [false, true]) {
      const body = padded({ action: 'render_pdfs' }, MiB);
      expectTooLarge(await send('/billing', { headers: bearer(stack.keys.serviceRoleKey), body, chunked }), MiB);
    }
  });
});
