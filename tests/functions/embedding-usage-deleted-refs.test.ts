/**
 * An interactive embedding (a chat turn's question, a knowledge search's
 * query) is metered though its bot, API key or org was deleted while the
 * provider embedded it (20261123014100): what is gone is metered as none, an
 * org that is gone meters nothing, and the search that was served answers 200.
 * Before, record_usage failed 23503 (usage_events_bot_fk,
 * usage_events_api_key_id_fkey): the chat logged it and metered nothing, the
 * search answered 500 after a search that worked. The deletions happen
 * deterministically inside the embeddings request: a local proxy in front of
 * the OpenAI stub runs them before forwarding it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg, createDocument } from '../support/chat-fixtures.ts';
import { type OpenAiStub, startOpenAiStub } from '../support/openai-stub.ts';
import { readBody } from '../support/read-body.ts';
import { startTestStack, type TestStack } from './support.ts';

const API_KEY = 'sk-embedding-usage-deleted-refs';
const SOURCE = 'Parcels to Tromso take three working days.';
const QUESTION = 'How long do parcels to Tromso take?';

interface EmbeddingsProxy {
  baseURL: string;
  /** Run (once) when the next embeddings request arrives, before it is forwarded. */
  beforeEmbedding: (() => Promise<unknown>) | null;
  /** Reported as the next answer's prompt_tokens instead of the stub's count. */
  reportTokens: number | null;
  close(): Promise<void>;
}

/** POST /v1/embeddings forwarded to the stub, after the hook. */
async function startEmbeddingsProxy(stub: OpenAiStub): Promise<EmbeddingsProxy> {
  const proxy: EmbeddingsProxy = { baseURL: '', beforeEmbedding: null, reportTokens: null, close: async () => undefined };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const hook = proxy.beforeEmbedding;
      proxy.beforeEmbedding = null;
      if (hook) await hook();
      const upstream = await fetch(`${stub.baseURL}/embeddings`, {
        method: 'POST',
        headers: { authorization: req.headers.authorization ?? '', 'content-type': 'application/json' },
        body,
      });
      const answer = (await upstream.json()) as { usage?: { prompt_tokens: number; total_tokens: number } };
      if (proxy.reportTokens !== null && answer.usage) {
        answer.usage = { prompt_tokens: proxy.reportTokens, total_tokens: proxy.reportTokens };
        proxy.reportTokens = null;
      }
      res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    })().catch((error: unknown) => {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: String(error) } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  proxy.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return proxy;
}

let stub: OpenAiStub;
let proxy: EmbeddingsProxy;
let stack: TestStack;
let sql: Sql;
const orgs: string[] = [];

interface Fixture {
  org: ChatOrg;
  botId: string;
  keyId: string;
  key: string;
}

async function fixture(label: string): Promise<Fixture> {
  const org = await createChatOrg(sql, `embedding-usage-deleted-refs-${label}`);
  orgs.push(org.id);
  const botId = await createBot(sql, org.id, { slug: `deleted-refs-${label}` });
  await createDocument(sql, org.id, `deleted-refs-${label}.pdf`, [SOURCE]);
  const { id: keyId, key } = await createApiKey(sql, org, ['chat.write', 'knowledge.read']);
  return { org, botId, keyId, key };
}

const post = (key: string, path: string, body: unknown) =>
  fetch(`${stack.functionsUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

interface UsageRow {
  tokens_in: number;
  api_key_id: string | null;
  bot_id: string | null;
  conversation_id: string | null;
}

const embeddingUsage = (orgId: string) =>
  sql<UsageRow[]>`
    select tokens_in, api_key_id, bot_id, conversation_id from public.usage_events
    where org_id = ${orgId} and kind = 'embedding' order by id`;

beforeAll(async () => {
  stub = await startOpenAiStub({ apiKey: API_KEY });
  proxy = await startEmbeddingsProxy(stub);
  stack = await startTestStack({ env: { OPENAI_API_KEY: API_KEY, OPENAI_BASE_URL: proxy.baseURL } });
  sql = createSql(stack.dbUrl, { max: 1 });
});

afterAll(async () => {
  if (sql && orgs.length > 0) await sql`delete from public.organizations where id = any (${orgs}::uuid[])`;
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await proxy?.close();
  await stub?.close();
});

beforeEach(() => {
  stub.reset();
  proxy.beforeEmbedding = null;
  proxy.reportTokens = null;
});

describe('knowledge/search', () => {
  it('answers 200 when its API key is deleted while the query is embedded, and meters the tokens without the key', async () => {
    const f = await fixture('search-key');
    proxy.beforeEmbedding = () => sql`delete from public.api_keys where id = ${f.keyId}`;
    const response = await post(f.key, '/knowledge/search', { query: QUESTION });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.data.map((row: { content: string }) => row.content)).toContain(SOURCE);
    expect(body.usage.embedding_tokens).toBeGreaterThan(0);
    expect(await sql`select 1 from public.api_keys where id = ${f.keyId}`).toHaveLength(0);
    expect(await embeddingUsage(f.org.id)).toEqual([
      { tokens_in: body.usage.embedding_tokens, api_key_id: null, bot_id: null, conversation_id: null },
    ]);
  });

  it('answers, not 500, when its org is deleted while the query is embedded, and meters nothing', async () => {
    const f = await fixture('search-org');
    proxy.beforeEmbedding = () => sql`delete from public.organizations where id = ${f.org.id}`;
    const response = await post(f.key, '/knowledge/search', { query: QUESTION });
    expect(response.status).toBe(200);
    expect(stub.requests).toHaveLength(1);
    expect(await sql`select 1 from public.usage_events where org_id = ${f.org.id}`).toHaveLength(0);
  });

  it('logs a metering that fails after the search was served and answers 200', async () => {
    const f = await fixture('search-log');
    // More than usage_events.tokens_in (an integer) holds: record_usage fails (22003) whatever it names.
    proxy.reportTokens = 3_000_000_000;
    const response = await post(f.key, '/knowledge/search', { query: QUESTION });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.data.map((row: { content: string }) => row.content)).toContain(SOURCE);
    expect(await embeddingUsage(f.org.id)).toEqual([]);
    expect(stack.logs.join('\n')).toContain(`knowledge/search: org ${f.org.id}: metering the query's embedding`);
  });
});

describe('chat', () => {
  it('meters the question\'s embedding to the org and key when the bot is deleted while it is embedded', async () => {
    const f = await fixture('chat-bot');
    proxy.beforeEmbedding = () => sql`delete from public.bots where id = ${f.botId}`;
    const response = await post(f.key, '/chat/v1/chat/completions', {
      model: 'deleted-refs-chat-bot',
      messages: [{ role: 'user', content: QUESTION }],
      user: 'embedding-usage-deleted-refs-chat-bot',
    });
    await response.text();
    expect(stub.requests).toHaveLength(1);
    expect(await sql`select 1 from public.bots where id = ${f.botId}`).toHaveLength(0);
    const usage = await embeddingUsage(f.org.id);
    expect(usage).toEqual([{ tokens_in: expect.any(Number), api_key_id: f.keyId, bot_id: null, conversation_id: null }]);
    expect(usage[0].tokens_in).toBeGreaterThan(0);
  });

  it('meters the question\'s embedding to the bot and conversation when the key is deleted while it is embedded', async () => {
    const f = await fixture('chat-key');
    proxy.beforeEmbedding = () => sql`delete from public.api_keys where id = ${f.keyId}`;
    const response = await post(f.key, '/chat/v1/chat/completions', {
      model: 'deleted-refs-chat-key',
      messages: [{ role: 'user', content: QUESTION }],
      user: 'embedding-usage-deleted-refs-chat-key',
    });
    expect(response.status).toBe(200);
    const conversation = response.headers.get('x-conversation-id');
    await response.text();
    expect(conversation).not.toBeNull();
    const usage = await embeddingUsage(f.org.id);
    expect(usage).toEqual([{ tokens_in: expect.any(Number), api_key_id: null, bot_id: f.botId, conversation_id: conversation }]);
    expect(usage[0].tokens_in).toBeGreaterThan(0);
  });
});
