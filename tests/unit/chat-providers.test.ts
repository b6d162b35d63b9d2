import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  buildChatMessages,
  type ChatDelta,
  type ChatProvider,
  ChatProviderError,
  chatProviderFor,
  type ChatRequest,
  countPromptTokens,
  createOfflineChatProvider,
  createOpenAiChatProvider,
  extractCitations,
  NO_ANSWER_TEXT,
  NO_ANSWER_TEXTS,
  OFFLINE_CHAT_MODEL,
  type RetrievedChunk,
  type RetrievedProduct,
} from '../../functions/_shared/chat/index.ts';
import { countTokens } from '../../functions/_shared/text/tokens.ts';
import { type OpenAiStub, startOpenAiStub } from '../support/openai-stub.ts';

const chunks: RetrievedChunk[] = [
  {
    chunkId: 11,
    documentId: 'doc-returns',
    documentName: 'Returns policy.pdf',
    pageStart: 3,
    pageEnd: 3,
    content: 'Refund policy.\nYou can return any product within 30 days of delivery for a full refund. ' +
      'Refunds are paid to the original payment method within 5 business days. Opened software cannot be returned.',
    score: 0.82,
  },
  {
    chunkId: 12,
    documentId: 'doc-shipping',
    documentName: 'Shipping.md',
    pageStart: 1,
    pageEnd: 2,
    content: '# Shipping\nWe ship to Germany, Austria and Switzerland. Standard delivery takes 2 to 4 business days. ' +
      'Express delivery arrives the next business day.',
    score: 0.61,
  },
];

const products: RetrievedProduct[] = [{
  productId: 'prod-kettle',
  name: 'Blue Kettle',
  description: 'A 1.7 litre stainless steel kettle. It boils water in under three minutes.',
  price: '39.90',
  currency: 'EUR',
  url: 'https://shop.example/kettle',
  stock: 5,
}];

const bot = {
  name: 'Shop assistant',
  systemPrompt: 'You help customers of Example Shop.',
  language: 'auto',
  managerContact: null,
};

function request(question: string, overrides: Partial<ChatRequest> = {}): ChatRequest {
  return {
    model: 'gpt-4o-mini',
    messages: buildChatMessages({ bot, history: [], question, chunks, products }),
    temperature: 0.2,
    maxTokens: 300,
    context: { chunks, products },
    ...overrides,
  };
}

/** Everything a stream yields, and what it threw at the end, if anything. */
async function collect(stream: AsyncIterable<ChatDelta>, onDelta?: (text: string) => void) {
  const deltas: string[] = [];
  let done: Extract<ChatDelta, { type: 'done' }> | undefined;
  let error: unknown;
  try {
    for await (const item of stream) {
      if (item.type === 'delta') {
        deltas.push(item.text);
        onDelta?.(item.text);
      } else {
        done = item;
      }
    }
  } catch (caught) {
    error = caught;
  }
  return { deltas, text: deltas.join(''), done, error };
}

describe('offline chat provider', () => {
  const provider = createOfflineChatProvider();

  it('answers with the sentence that best matches the question, cited by its source number', async () => {
    const { text, done, error } = await collect(
      provider.stream(request('How many days do I have to return a product for a refund?')),
    );
    expect(error).toBeUndefined();
    expect(provider.name).toBe(OFFLINE_CHAT_MODEL);
    expect(text).toBe('You can return any product within 30 days of delivery for a full refund. [1]');
    expect(done?.finishReason).toBe('stop');
    expect(extractCitations(text, { chunks, products })).toEqual([
      { chunk_id: 11, document_id: 'doc-returns', document_name: 'Returns policy.pdf', page_start: 3, page_end: 3 },
    ]);
  });

  it('joins sentences from several sources, in source order, each run followed by its marker', async () => {
    const { text } = await collect(provider.stream(request('How long does delivery take, and when are refunds paid?')));
    expect(text).toContain('Refunds are paid to the original payment method within 5 business days. [1]');
    expect(text).toContain('delivery');
    expect(text).toMatch(/\[2\]$/);
    expect(text.indexOf('[1]')).toBeLessThan(text.indexOf('[2]'));
    expect(extractCitations(text, { chunks, products }).map((citation) => 'chunk_id' in citation && citation.chunk_id))
      .toEqual([11, 12]);
  });

  it('leaves markdown headings out of the sentences', async () => {
    const { text } = await collect(provider.stream(request('Do you ship to Austria?')));
    expect(text).toBe('We ship to Germany, Austria and Switzerland. [2]');
  });

  it('answers from a product with its price, stock and link, numbered after the chunks', async () => {
    const { text } = await collect(provider.stream(request('How much is the Blue Kettle?')));
    expect(text).toBe('Blue Kettle: 39.90 EUR, 5 in stock, https://shop.example/kettle [3]');
    expect(extractCitations(text, { chunks, products })).toEqual([{ product_id: 'prod-kettle', name: 'Blue Kettle' }]);
  });

  it('says it has no answer, in the bot language when fixed, when nothing matches or there is no context', async () => {
    expect((await collect(provider.stream(request('What is the capital of France?')))).text).toBe(NO_ANSWER_TEXT);
    const german = await collect(provider.stream(request('What is the capital of France?', { language: 'de' })));
    expect(german.text).toBe(NO_ANSWER_TEXTS.de);
    const empty = await collect(
      provider.stream(request('How do refunds work?', { context: { chunks: [], products: [] } })),
    );
    expect(empty.text).toBe(NO_ANSWER_TEXT);
    expect(extractCitations(empty.text, { chunks, products })).toEqual([]);
  });

  it('streams one delta per word with its trailing space, and counts usage with cl100k', async () => {
    const req = request('How many days do I have to return a product for a refund?');
    const { deltas, text, done } = await collect(provider.stream(req));
    expect(deltas.length).toBe(text.split(' ').length);
    for (const delta of deltas) expect(delta).toMatch(/^\S+\s*$/);
    expect(deltas.slice(0, 3)).toEqual(['You ', 'can ', 'return ']);
    expect(done?.usage).toEqual({ tokensIn: countPromptTokens(req.messages), tokensOut: countTokens(text) });
    expect(done!.usage.tokensIn).toBeGreaterThan(100);
  });

  it('is deterministic', async () => {
    const question = 'How long does delivery take, and when are refunds paid?';
    const first = await collect(provider.stream(request(question)));
    const second = await collect(provider.stream(request(question)));
    expect(second.text).toBe(first.text);
  });

  it('stops at maxTokens with finishReason length', async () => {
    const { text, done } = await collect(
      provider.stream(request('How many days do I have to return a product for a refund?', { maxTokens: 5 })),
    );
    expect(done?.finishReason).toBe('length');
    expect(done?.usage.tokensOut).toBe(5);
    expect('You can return any product within 30 days').toContain(text.trim());
  });

  it('stops when the request is aborted', async () => {
    const controller = new AbortController();
    const { deltas, done, error } = await collect(
      provider.stream(
        request('How many days do I have to return a product for a refund?', { signal: controller.signal }),
      ),
      () => controller.abort(),
    );
    expect(deltas).toHaveLength(1);
    expect(done).toBeUndefined();
    expect((error as Error).name).toBe('AbortError');
  });
});

describe('OpenAI chat provider through the openai SDK against a local stub', () => {
  let stub: OpenAiStub;
  beforeAll(async () => {
    stub = await startOpenAiStub({ apiKey: 'sk-test' });
  });
  afterAll(async () => {
    await stub?.close();
  });
  beforeEach(() => stub.reset());

  const provider = (overrides: Partial<Parameters<typeof createOpenAiChatProvider>[0]> = {}): ChatProvider =>
    createOpenAiChatProvider({ apiKey: 'sk-test', baseURL: stub.baseURL, maxRetries: 2, ...overrides });

  it('streams the deltas as they come and takes the usage from the final chunk', async () => {
    stub.answerChat({
      content: ['Returns ', 'are accepted ', 'within 30 days ', '[1].'],
      usage: { prompt_tokens: 321, completion_tokens: 9 },
    });
    const req = request('Can I return things?');
    const { deltas, done, error } = await collect(provider().stream(req));
    expect(error).toBeUndefined();
    expect(deltas).toEqual(['Returns ', 'are accepted ', 'within 30 days ', '[1].']);
    expect(done).toEqual({ type: 'done', usage: { tokensIn: 321, tokensOut: 9 }, finishReason: 'stop' });

    expect(stub.chatRequests).toHaveLength(1);
    const sent = stub.chatRequests[0];
    expect(sent.authorization).toBe('Bearer sk-test');
    expect(sent.body).toMatchObject({
      model: 'gpt-4o-mini',
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.2,
      max_completion_tokens: 300,
    });
    expect(sent.messages).toEqual(req.messages);
  });

  it('counts the usage itself when the server sends none, and passes a length finish on', async () => {
    stub.answerChat({ content: 'Hello there, this is cut', usage: null, finishReason: 'length' });
    const req = request('Hi');
    const { text, done } = await collect(provider().stream(req));
    expect(text).toBe('Hello there, this is cut');
    expect(done?.usage).toEqual({ tokensIn: countPromptTokens(req.messages), tokensOut: countTokens(text) });
    expect(done?.finishReason).toBe('length');
  });

  it('waits as Retry-After says on a 429 before the first token, then answers', async () => {
    stub.failChatNext({ status: 429, headers: { 'retry-after': '1' }, message: 'Rate limit reached' });
    stub.answerChat({ content: 'After the pause.' });
    const { text, error } = await collect(provider().stream(request('Hi')));
    expect(error).toBeUndefined();
    expect(text).toBe('After the pause.');
    expect(stub.chatRequests.map((sent) => sent.status)).toEqual([429, 200]);
    expect(stub.chatRequests[1].at - stub.chatRequests[0].at).toBeGreaterThanOrEqual(950);
  });

  it('backs off and retries on 5xx before the first token', async () => {
    stub.failChatNext({ status: 500 }, { status: 503 });
    const { text } = await collect(provider().stream(request('Are you there?')));
    expect(text).toBe('You asked: Are you there?');
    expect(stub.chatRequests.map((sent) => sent.status)).toEqual([500, 503, 200]);
    // 0.5 s, then 1 s, each up to a quarter less.
    expect(stub.chatRequests[2].at - stub.chatRequests[0].at).toBeGreaterThanOrEqual(1100);
  });

  it('retries a stream cut before any text, since the user has seen nothing', async () => {
    stub.answerChat({ content: 'Lost answer', dropAfter: 0 }, { content: 'Second try.' });
    const { text, error } = await collect(provider().stream(request('Hi')));
    expect(error).toBeUndefined();
    expect(text).toBe('Second try.');
    expect(stub.chatRequests).toHaveLength(2);
  });

  it('does not retry once text has arrived: the stream ends with a ChatProviderError after the first token', async () => {
    stub.answerChat({ content: ['One ', 'two ', 'three ', 'four.'], dropAfter: 2 }, { content: 'Never sent.' });
    const { deltas, done, error } = await collect(provider().stream(request('Count')));
    expect(deltas).toEqual(['One ', 'two ']);
    expect(done).toBeUndefined();
    expect(error).toBeInstanceOf(ChatProviderError);
    expect(error).toMatchObject({ afterFirstToken: true, retryable: true });
    expect(stub.chatRequests).toHaveLength(1);
  });

  it('gives up on a server that stops sending, and retries it before any text', async () => {
    stub.answerChat({ content: ['Too ', 'slow.'], delayMs: 400 }, { content: 'Quick answer.' });
    const { text, error } = await collect(provider({ idleTimeoutMs: 150 }).stream(request('Hi')));
    expect(error).toBeUndefined();
    expect(text).toBe('Quick answer.');
    expect(stub.chatRequests).toHaveLength(2);

    stub.answerChat({ content: ['Never ', 'arrives.'], delayMs: 400 });
    const stalled = await collect(provider({ idleTimeoutMs: 150, maxRetries: 0 }).stream(request('Hi')));
    expect(stalled.error).toBeInstanceOf(ChatProviderError);
    expect((stalled.error as Error).message).toContain('stopped sending');
  });

  it('does not count a slow reader as a stalled server', async () => {
    stub.answerChat({ content: ['Read ', 'slowly.'] });
    const pause = () => new Promise((resolve) => setTimeout(resolve, 300));
    const deltas: string[] = [];
    for await (const item of provider({ idleTimeoutMs: 150, maxRetries: 0 }).stream(request('Hi'))) {
      if (item.type === 'delta') deltas.push(item.text);
      await pause();
    }
    expect(deltas).toEqual(['Read ', 'slowly.']);
    expect(stub.chatRequests).toHaveLength(1);
  });

  it('gives up after its retries with the last status', async () => {
    stub.failChatNext({ status: 503 }, { status: 503 }, { status: 503 });
    const { error } = await collect(provider({ maxRetries: 1 }).stream(request('Hi')));
    expect(error).toBeInstanceOf(ChatProviderError);
    expect(error).toMatchObject({ status: 503, retryable: true, afterFirstToken: false });
    expect(stub.chatRequests).toHaveLength(2);
  });

  it('does not wait for a Retry-After longer than its limit, and reports it', async () => {
    stub.failChatNext({ status: 429, headers: { 'retry-after': '30' } });
    const started = Date.now();
    const { error } = await collect(provider().stream(request('Hi')));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error).toMatchObject({ status: 429, retryAfterSeconds: 30, afterFirstToken: false });
    expect(stub.chatRequests).toHaveLength(1);
  });

  it('does not retry a bad key or a bad request', async () => {
    const { error } = await collect(provider({ apiKey: 'sk-wrong' }).stream(request('Hi')));
    expect(error).toMatchObject({ status: 401, retryable: false });
    stub.failChatNext({ status: 400 });
    const second = await collect(provider().stream(request('Hi')));
    expect(second.error).toMatchObject({ status: 400, retryable: false });
    expect(stub.chatRequests).toHaveLength(2);
  });

  it('stops when the request is aborted mid-answer, without retrying', async () => {
    stub.answerChat({ content: 'one two three four five six', delayMs: 50 });
    const controller = new AbortController();
    const { deltas, done, error } = await collect(
      provider().stream(request('Hi', { signal: controller.signal })),
      () => controller.abort(),
    );
    expect(deltas).toEqual(['one']);
    expect(done).toBeUndefined();
    expect((error as Error).name).toBe('AbortError');
    expect(stub.chatRequests).toHaveLength(1);
  });

  it('reports an unreachable server as a retryable ChatProviderError', async () => {
    const unreachable = createOpenAiChatProvider({
      apiKey: 'sk-test',
      baseURL: 'http://127.0.0.1:9/v1',
      maxRetries: 0,
    });
    const { error } = await collect(unreachable.stream(request('Hi')));
    expect(error).toBeInstanceOf(ChatProviderError);
    expect(error).toMatchObject({ retryable: true, status: undefined, afterFirstToken: false });
  });
});

describe('chatProviderFor', () => {
  let stub: OpenAiStub;
  beforeAll(async () => {
    stub = await startOpenAiStub({ apiKey: 'sk-env' });
  });
  afterAll(async () => {
    await stub?.close();
  });

  it('is offline for the offline model and whenever OPENAI_API_KEY is unset', () => {
    expect(chatProviderFor({ id: 'gpt-4o-mini', provider: 'openai' }, () => undefined).name).toBe('offline');
    expect(
      chatProviderFor(
        { id: 'gpt-4o-mini', provider: 'openai' },
        (name) => (name === 'OPENAI_API_KEY' ? ' ' : undefined),
      ).name,
    )
      .toBe('offline');
    expect(chatProviderFor({ id: 'offline', provider: 'offline' }, () => 'sk-env').name).toBe('offline');
  });

  it('is OpenAI at OPENAI_BASE_URL with a key', async () => {
    const env: Record<string, string> = {
      OPENAI_API_KEY: 'sk-env',
      OPENAI_BASE_URL: stub.baseURL,
      OPENAI_MAX_RETRIES: '0',
    };
    const provider = chatProviderFor({ id: 'gpt-4o-mini', provider: 'openai' }, (name) => env[name]);
    expect(provider.name).toBe('openai');
    const { text } = await collect(provider.stream(request('Through the base URL?')));
    expect(text).toBe('You asked: Through the base URL?');
    expect(stub.chatRequests).toHaveLength(1);
  });
});
