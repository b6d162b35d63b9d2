/**
 * Questions and search texts are bounded in code points, as the database
 * bounds them (private.chat_prepare: length(message) <= 8000;
 * search_products: 200): zod's .max counted UTF-16 units, so a question of
 * 4,001 emoji (8,002 units, 4,001 characters to Postgres) was refused.
 */
import { describe, expect, it } from 'vitest';
import { chatBody } from '../../functions/chat/schemas.ts';
import { productSearchBody } from '../../functions/knowledge/products.ts';
import { searchBody } from '../../functions/knowledge/search.ts';
import { codePointLength } from '../../functions/_shared/text/code-points.ts';

const botId = '5b0d4b8e-4f0e-4c52-9d36-5a8c3f1f3a01';
const emoji = (count: number) => '\u{1F600}'.repeat(count);

describe('question length in code points', () => {
  it('web chat takes 8,000 emoji and refuses 8,001, trimmed first', () => {
    const longest = emoji(8000);
    expect(codePointLength(longest)).toBe(8000);
    expect(chatBody.safeParse({ bot_id: botId, message: `  ${longest}\n` }).data?.message).toBe(longest);
    const refused = chatBody.safeParse({ bot_id: botId, message: emoji(8001) });
    expect(refused.error?.issues.map((issue) => issue.message)).toEqual(['message has at most 8000 characters']);
  });

  it('web chat still refuses an empty or blank message with its own message', () => {
    for (const message of ['', '   ']) {
      const refused = chatBody.safeParse({ bot_id: botId, message });
      expect(refused.error?.issues.map((issue) => issue.message)).toEqual(['message must not be empty']);
    }
    expect(chatBody.safeParse({ bot_id: botId, message: 7 }).success).toBe(false);
  });

  it('knowledge search takes 8,000 emoji, refuses 8,001, blank and NUL', () => {
    expect(searchBody.safeParse({ query: emoji(8000) }).success).toBe(true);
    expect(searchBody.safeParse({ query: emoji(8001) }).success).toBe(false);
    expect(searchBody.safeParse({ query: ' ' }).success).toBe(false);
    expect(searchBody.safeParse({ query: 'a\u0000b' }).success).toBe(false);
  });

  it('catalog search takes 200 emoji and refuses 201', () => {
    expect(productSearchBody.safeParse({ query: emoji(200) }).success).toBe(true);
    expect(productSearchBody.safeParse({ query: emoji(201) }).success).toBe(false);
    expect(productSearchBody.safeParse({}).success).toBe(true);
  });
});
