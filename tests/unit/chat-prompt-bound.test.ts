/**
 * A turn's prompt has a bound chat_prepare reserves before the model is
 * called: the reservation's fixed part (the number added to the answer's
 * budget and the bytes of system prompt and question in the latest
 * chat_prepare) covers everything else the prompt can hold: the history's
 * 2,000 tokens, five sources of CHUNK_SOURCE_TOKENS, three products of
 * PRODUCT_SOURCE_TOKENS whatever their descriptions (5,000 characters of
 * CJK), the rules with the longest bot name and manager contact, and the
 * messages' framing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildChatMessages,
  type ChatMessage,
  countPromptTokens,
  NO_ANSWER_TEXTS,
  type RetrievedChunk,
  type RetrievedProduct,
} from '../../functions/_shared/chat/index.ts';
import { CHUNK_SOURCE_TOKENS, PRODUCT_SOURCE_TOKENS } from '../../functions/_shared/chat/prompt.ts';
import { countTokens } from '../../functions/_shared/text/tokens.ts';

const MIGRATIONS = join(import.meta.dirname, '../../supabase/migrations');
const RESERVATION = /reservation := bot\.max_tokens \+ octet_length\(bot\.system_prompt\) \+ octet_length\(message\) \+ (\d+);/g;

/** The fixed part of the reservation in the newest migration that sets it. */
function reservedFixedTokens(): number {
  const found = readdirSync(MIGRATIONS).filter((name) => name.endsWith('.sql')).sort().flatMap((name) =>
    [...readFileSync(join(MIGRATIONS, name), 'utf8').matchAll(RESERVATION)].map((match) => Number(match[1]))
  );
  expect(found.length).toBeGreaterThan(0);
  return found.at(-1)!;
}

// CJK Extension B: 4 UTF-8 bytes and 4 tokens a character, the most one takes.
const RARE = '\u{2A6D6}';
const CJK = '漢字仮名交じり文の説明書き';
const cjk = (chars: number) => CJK.repeat(Math.ceil(chars / CJK.length)).slice(0, chars);

const chunk = (index: number): RetrievedChunk => ({
  chunkId: index,
  documentId: `doc-bound-${index}`,
  // documents.name's limit: 255 characters.
  documentName: RARE.repeat(255),
  pageStart: 1,
  pageEnd: 2147483647,
  content: cjk(3000),
  score: 1,
});

const product = (index: number): RetrievedProduct => ({
  productId: `prod-bound-${index}`,
  // products.name 200, description 5,000, url 2,000 characters; price numeric(12, 2).
  name: RARE.repeat(200),
  description: cjk(5000),
  price: '9999999999.99',
  currency: 'EUR',
  url: `https://${RARE.repeat(1992)}`,
  stock: 2147483647,
});

/** Far more history than fits 2,000 tokens, in messages of every length. */
const history: ChatMessage[] = Array.from({ length: 60 }, (_, index) => ({
  role: index % 2 === 0 ? 'user' : 'assistant',
  content: index % 3 === 0 ? cjk(40 + index) : `${RARE.repeat(index)} answer ${index} with words`,
}));

const question = cjk(8000);
const languages = ['auto', 'sv', ...Object.keys(NO_ANSWER_TEXTS)];

function worstPrompt(systemPrompt: string, language: string): ChatMessage[] {
  return buildChatMessages({
    // bots.name: 100 characters; manager_contact: 200.
    bot: { name: RARE.repeat(100), systemPrompt, language, managerContact: RARE.repeat(200) },
    history,
    question,
    chunks: [1, 2, 3, 4, 5].map(chunk),
    products: [1, 2, 3].map(product),
  });
}

describe('the prompt a turn reserves for', () => {
  const fixed = reservedFixedTokens();

  it('cuts each source to its limit: a product of 5,000 CJK characters to PRODUCT_SOURCE_TOKENS', () => {
    const system = worstPrompt('', 'auto')[0].content;
    const sources = system.slice(system.indexOf('Sources:\n\n') + 'Sources:\n\n'.length).split(/\n\n(?=\[\d+\] )/u);
    expect(sources).toHaveLength(8);
    for (const source of sources.slice(0, 5)) expect(countTokens(source)).toBeLessThanOrEqual(CHUNK_SOURCE_TOKENS);
    for (const source of sources.slice(5)) {
      expect(source).toMatch(/^\[[678]\] Product "/u);
      expect(countTokens(source)).toBeLessThanOrEqual(PRODUCT_SOURCE_TOKENS);
    }
    expect(countTokens(cjk(5000))).toBeGreaterThan(5 * PRODUCT_SOURCE_TOKENS);
  });

  it('keeps a source under its limit whole', () => {
    const ordinary: RetrievedProduct = { ...product(1), name: 'Kettle', url: null, description: 'A 1.7 litre kettle.' };
    const system = buildChatMessages({
      bot: { name: 'Shop', systemPrompt: '', language: 'en', managerContact: null },
      history: [],
      question: 'kettle?',
      chunks: [{ ...chunk(1), documentName: 'Guide.pdf', content: 'Water boils at 100 degrees.' }],
      products: [ordinary],
    })[0].content;
    expect(system).toContain('[1] Guide.pdf, pages 1–2147483647:\nWater boils at 100 degrees.');
    expect(system).toContain('[2] Product "Kettle": 9999999999.99 EUR, 2147483647 in stock\nA 1.7 litre kettle.');
  });

  it.each(languages)('counts at most the fixed part plus system prompt and question tokens (language %s)', (language) => {
    for (const systemPrompt of ['', cjk(4000)]) {
      const spent = countPromptTokens(worstPrompt(systemPrompt, language));
      expect(spent).toBeLessThanOrEqual(fixed + countTokens(systemPrompt) + countTokens(question));
    }
  });

  it('is near the worst case: the fixed part is a bound, not just a large number', () => {
    // 'auto' lists every language's no-answer sentence; a blank system prompt is replaced by one naming the bot.
    const spent = countPromptTokens(worstPrompt('', 'auto'));
    expect(spent).toBeGreaterThan(fixed + countTokens(question) - 1000);
  });
});
