/**
 * The chat function with OPENAI_API_KEY set: the question is embedded and the
 * answer streamed through the `openai` SDK against a local server speaking
 * OpenAI's wire format (the production code path, with no network). The
 * prompt carries the bot's settings and the retrieved sources; a 500 before
 * the first token is retried; a cut after it ends the stream with an error.
 * A client that leaves while a 429 is waited out meters nothing (the provider
 * billed nothing); one that leaves once the stream started meters the prompt.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg, createDocument } from '../support/chat-fixtures.ts';
import { type OpenAiStub, startOpenAiStub } from '../support/openai-stub.ts';
import { startTestStack, type TestStack } from './support.ts';

let stack: TestStack;
let sql: Sql;
let stub: OpenAiStub;
let org: ChatOrg;
let manual: string;
let key: string;
let concierge: string;

const complete = (body: Record<string, unknown>) =>
  fetch(`${stack.functionsUrl}/chat/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'concierge', ...body }),
  });

interface StoredTurn {
  conversation_id: string;
  content: string;
  finish_reason: string | null;
  tokens_in: number;
  tokens_out: number;
}

/** The answer to this question once chat_finish stored it (a turn whose client left finishes in the background). */
async function storedAnswerTo(question: string, timeoutMs = 10_000): Promise<StoredTurn | undefined> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const [answer] = await sql<StoredTurn[]>`
      select a.conversation_id, a.content, a.finish_reason, a.tokens_in, a.tokens_out
      from public.messages a join public.messages q on q.id = a.reply_to_message_id
      where q.content = ${question} and q.role = 'user' and a.role = 'assistant'`;
    if (answer || Date.now() > until) return answer;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Asks in web chat (its stream opens at once, so the turn sees the client leave) and goes away `afterMs` after
 * the stub has seen the first chat request.
 */
async function askAndLeave(question: string, afterMs: number): Promise<void> {
  const abort = new AbortController();
  const response = await fetch(`${stack.functionsUrl}/chat`, {
    method: 'POST',
    signal: abort.signal,
    headers: { authorization: `Bearer ${org.tokens.member}`, 'content-type': 'application/json' },
    body: JSON.stringify({ bot_id: concierge, message: question }),
  });
  expect(response.status).toBe(200);
  const read = response.text();
  const until = Date.now() + 10_000;
  while (stub.chatRequests.length === 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(stub.chatRequests).toHaveLength(1);
  await new Promise((resolve) => setTimeout(resolve, afterMs));
  abort.abort();
  await expect(read).rejects.toThrow();
}

beforeAll(async () => {
  stub = await startOpenAiStub({ apiKey: 'sk-test-chat' });
  stack = await startTestStack({
    env: { OPENAI_API_KEY: 'sk-test-chat', OPENAI_BASE_URL: stub.baseURL, OPENAI_MAX_RETRIES: '2' },
  });
  sql = createSql(stack.dbUrl, { max: 1 });
  org = await createChatOrg(sql, 'chat-openai');
  concierge = await createBot(sql, org.id, { slug: 'concierge', model: 'gpt-4o-mini', language: 'de' });
  manual = await createDocument(sql, org.id, 'hours.pdf', [
    'Delivery takes two working days.',
    'Opening hours are from 9 am to 5 pm on weekdays.',
  ]);
  key = (await createApiKey(sql, org)).key;
});

afterAll(async () => {
  await sql`delete from public.organizations where id = ${org.id}`;
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

beforeEach(() => stub.reset());

describe('chat through OpenAI (local wire-format server)', () => {
  it('sends the bot\'s model, settings and retrieved sources, streams the answer back and stores the model\'s usage', async () => {
    stub.answerChat({ content: 'Wir haben werktags von 9 bis 17 Uhr geöffnet [1].', usage: { prompt_tokens: 321, completion_tokens: 12 } });
    const response = await complete({ messages: [{ role: 'user', content: 'When are your opening hours?' }] });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.choices[0].message.content).toBe('Wir haben werktags von 9 bis 17 Uhr geöffnet [1].');
    expect(body.usage).toMatchObject({ prompt_tokens: 321, completion_tokens: 12 });

    expect(stub.requests).toHaveLength(1);
    expect(stub.requests[0].inputs).toEqual(['When are your opening hours?']);
    const [request] = stub.chatRequests;
    expect(request.model).toBe('gpt-4o-mini');
    expect(request.stream).toBe(true);
    const system = String(request.messages[0].content);
    expect(request.messages[0].role).toBe('system');
    expect(system).toContain('Opening hours are from 9 am to 5 pm');
    expect(system).toMatch(/German|de\b/);
    expect(request.messages.at(-1)).toEqual({ role: 'user', content: 'When are your opening hours?' });

    const conversation = response.headers.get('x-conversation-id')!;
    const [stored] = await sql<{ model: string; tokens_in: number; tokens_out: number; citations: { document_id: string; page_start: number }[] }[]>`
      select model, tokens_in, tokens_out, citations from public.messages
      where conversation_id = ${conversation} and role = 'assistant'`;
    expect(stored).toMatchObject({ model: 'gpt-4o-mini', tokens_in: 321, tokens_out: 12 });
    expect(stored.citations[0]).toMatchObject({ document_id: manual });
    const usage = await sql<{ kind: string; model: string; tokens_in: number }[]>`
      select kind, model, tokens_in from public.usage_events where conversation_id = ${conversation} order by kind`;
    expect(usage.map((u) => [u.kind, u.model])).toEqual([
      ['chat', 'gpt-4o-mini'],
      ['embedding', 'text-embedding-3-small'],
    ]);
  });

  it('retries a 500 before the first token and answers once', async () => {
    stub.failChatNext({ status: 500 });
    stub.answerChat({ content: 'Delivery takes two working days [1].' });
    const response = await complete({ messages: [{ role: 'user', content: 'How long does delivery take?' }], stream: true });
    const text = await response.text();
    expect(text).toContain('two');
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
    expect(stub.chatRequests.map((r) => r.status)).toEqual([500, 200]);
  });

  it('ends the stream with an error event when the model is cut off after the first token', async () => {
    stub.answerChat({ content: 'Delivery takes two working days.', dropAfter: 2 });
    const response = await complete({ messages: [{ role: 'user', content: 'How long does delivery take?' }], stream: true });
    const text = await response.text();
    expect(text).toContain('"code":"model_unavailable"');
    expect(text).not.toContain('[DONE]');
    expect(stub.chatRequests).toHaveLength(1);
  });
});

describe('a client that goes away before the answer', () => {
  it('meters no tokens when it leaves while a 429 is waited out: the provider billed nothing', async () => {
    const question = 'How long does delivery take? (left during the retry wait)';
    stub.failChatNext({ status: 429, headers: { 'retry-after': '3' } });
    await askAndLeave(question, 300);

    const answer = await storedAnswerTo(question);
    expect(answer).toMatchObject({ content: '', finish_reason: 'interrupted', tokens_in: 0, tokens_out: 0 });
    // The wait was cut short: no further try reached the server.
    expect(stub.chatRequests.map((r) => r.status)).toEqual([429]);
    const usage = await sql<{ tokens_in: number; tokens_out: number }[]>`
      select tokens_in, tokens_out from public.usage_events where conversation_id = ${answer!.conversation_id} and kind = 'chat'`;
    expect(usage).toEqual([{ tokens_in: 0, tokens_out: 0 }]);
  });

  it('meters the prompt when it leaves after the stream started, even before any text', async () => {
    const question = 'How long does delivery take? (left once the stream began)';
    stub.answerChat({ content: 'Delivery takes two working days [1].', delayMs: 2_000 });
    await askAndLeave(question, 300);

    const answer = await storedAnswerTo(question);
    expect(answer).toMatchObject({ content: '', finish_reason: 'interrupted', tokens_out: 0 });
    // The prompt (system message with the bot's settings and sources, and the question), counted by us.
    expect(answer!.tokens_in).toBeGreaterThan(50);
    expect(stub.chatRequests.map((r) => r.status)).toEqual([200]);
    const usage = await sql<{ tokens_in: number; tokens_out: number }[]>`
      select tokens_in, tokens_out from public.usage_events where conversation_id = ${answer!.conversation_id} and kind = 'chat'`;
    expect(usage).toEqual([{ tokens_in: answer!.tokens_in, tokens_out: 0 }]);
  });
});
