/**
 * A person waits while a chat turn's question or a knowledge search's query
 * is embedded, so those embed with the interactive settings (one retry, 10 s a
 * request, a Retry-After over 10 s refused at once), whatever
 * OPENAI_MAX_RETRIES allows ingestion (4 here). An embeddings endpoint (a
 * local server speaking OpenAI's wire format) answering 429 with Retry-After:
 * 20 costs one request and no wait: the chat answers from a full-text search,
 * the search answers its 503 embeddings_unavailable, both within seconds
 * rather than after the 80 s the ingestion settings would wait.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg, createDocument } from '../support/chat-fixtures.ts';
import { type OpenAiStub, startOpenAiStub } from '../support/openai-stub.ts';
import { startTestStack, type TestStack } from './support.ts';

const API_KEY = 'sk-embeddings-interactive';
const SOURCE = 'Parcels to Reykjavik take four working days.';
const QUESTION = 'How long do parcels to Reykjavik take?';
const RATE_LIMITED = { status: 429, headers: { 'retry-after': '20' }, message: 'Rate limit reached for requests' };

let stack: TestStack;
let sql: Sql;
let stub: OpenAiStub;
let org: ChatOrg;
let key: string;

beforeAll(async () => {
  stub = await startOpenAiStub({ apiKey: API_KEY });
  stack = await startTestStack({
    env: { OPENAI_API_KEY: API_KEY, OPENAI_BASE_URL: stub.baseURL, OPENAI_MAX_RETRIES: '4' },
  });
  sql = createSql(stack.dbUrl, { max: 1 });
  org = await createChatOrg(sql, 'embeddings-interactive');
  await createBot(sql, org.id, { slug: 'interactive', model: 'gpt-4o-mini' });
  await createDocument(sql, org.id, 'embeddings-interactive.pdf', [SOURCE]);
  ({ key } = await createApiKey(sql, org, ['chat.write', 'knowledge.read']));
});

afterAll(async () => {
  if (sql && org) await sql`delete from public.organizations where id = ${org.id}`;
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

beforeEach(() => {
  stub.reset();
  // More than any number of tries would take: whatever reaches the provider is rate limited.
  stub.failNext(...Array.from({ length: 6 }, () => RATE_LIMITED));
});

const post = (path: string, body: unknown) =>
  fetch(`${stack.functionsUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

describe('embedding for a person waiting, when the provider asks for 20 s', () => {
  it('answers the chat turn at once from a full-text search, after one embeddings request', async () => {
    stub.answerChat({ content: 'Four working days [1].' });
    const started = Date.now();
    const response = await post('/chat/v1/chat/completions', {
      model: 'interactive',
      messages: [{ role: 'user', content: QUESTION }],
      user: 'embeddings-interactive-chat',
    });
    expect(response.status).toBe(200);
    expect((await response.json()).choices[0].message.content).toBe('Four working days [1].');
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(stub.requests.map((request) => request.status)).toEqual([429]);
    expect(stub.chatRequests).toHaveLength(1);
    expect(JSON.stringify(stub.chatRequests[0].messages)).toContain(SOURCE);
    const usage = await sql<{ kind: string }[]>`
      select kind::text from public.usage_events
      where conversation_id = ${response.headers.get('x-conversation-id')!}`;
    expect(usage).toEqual([{ kind: 'chat' }]);
  });

  it('answers the knowledge search 503 embeddings_unavailable at once, after one request, metering nothing', async () => {
    const started = Date.now();
    const response = await post('/knowledge/search', { query: QUESTION });
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
    expect(await response.json()).toMatchObject({ error: { code: 'embeddings_unavailable' } });
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(stub.requests.map((request) => request.status)).toEqual([429]);
    const [{ count }] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.usage_events where org_id = ${org.id} and kind = 'embedding'`;
    expect(count).toBe(0);
  });
});
