/**
 * Long chat history costs bounded time (a 150,000-character word without
 * spaces once blocked the runtime for 9 s in the tokenizer): token counts in
 * slices, trimHistory stopping before a message too long for what is left
 * of its budget, and chat/completions' body refusing a user or assistant
 * message over 32,000 characters or more than 1,000 messages.
 */
import { describe, expect, it } from 'vitest';
import { AnswerText, MAX_ANSWER_CHARS } from '../../functions/_shared/chat/answer-text.ts';
import { codePointLength } from '../../functions/_shared/text/code-points.ts';
import { countPromptTokens, trimHistory } from '../../functions/_shared/chat/index.ts';
import {
  chatCompletionRequestSchema,
  MAX_MESSAGE_CHARS,
  MAX_MESSAGES,
  MAX_QUESTION_CHARS,
} from '../../functions/_shared/openai-wire.ts';
import { countTokens, countTokensUpTo } from '../../functions/_shared/text/tokens.ts';

const prose = (words: number) =>
  Array.from({ length: words }, (_, i) => ['Delivery', 'takes', 'two', 'working', 'days,', 'café', '42', '😀'][i % 8]).join(' ');

/** Pseudo-random letters without a space (about 2 characters a token): one pre-token, the tokenizer's quadratic case. */
function unbroken(length: number): string {
  let seed = 42;
  let text = '';
  for (let i = 0; i < length; i += 1) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    text += String.fromCharCode(97 + (seed >> 16) % 26);
  }
  return text;
}

function timed<T>(fn: () => T): { value: T; ms: number } {
  const started = performance.now();
  const value = fn();
  return { value, ms: performance.now() - started };
}

describe('countTokensUpTo', () => {
  it('counts text with spaces exactly as the tokenizer does, across its slices', () => {
    for (const text of [prose(5), prose(700), `  ${prose(2000)}\n\n${prose(300)}  `]) {
      expect(countTokensUpTo(text)).toBe(countTokens(text));
    }
  });

  it('counts a 150,000-character word in linear time, and stops once past the limit', () => {
    const word = unbroken(150_000);
    const whole = timed(() => countTokensUpTo(word));
    expect(whole.ms).toBeLessThan(1500);
    // Cut without a space to cut at: close to the tokenizer's own count (measured only on a short one).
    const short = unbroken(6000);
    expect(Math.abs(countTokensUpTo(short) - countTokens(short))).toBeLessThanOrEqual(countTokens(short) * 0.02);
    const capped = timed(() => countTokensUpTo(word, 100));
    expect(capped.value).toBeGreaterThan(100);
    expect(capped.value).toBeLessThan(whole.value / 10);
  });

  it('keeps countPromptTokens fast on such a word', () => {
    const { ms } = timed(() => countPromptTokens([{ role: 'user', content: unbroken(150_000) }]));
    expect(ms).toBeLessThan(1500);
  });
});

describe('trimHistory', () => {
  it('drops a 150,000-character word at once, uncounted, keeping the newer messages', () => {
    const history = [
      { role: 'user' as const, content: unbroken(150_000) },
      { role: 'assistant' as const, content: 'Two working days.' },
      { role: 'user' as const, content: 'Thanks' },
    ];
    const { value, ms } = timed(() => trimHistory(history, 2000));
    expect(value).toEqual(history.slice(1));
    expect(ms).toBeLessThan(100);
  });

  it('stops at a 32,000-character word within the length bound, in bounded time', () => {
    // 32,000 characters pass the length bound of a 2,000-token budget; counting stops once past the budget.
    const history = [{ role: 'user' as const, content: unbroken(32_000) }];
    const { value, ms } = timed(() => trimHistory(history, 2000));
    expect(value).toEqual([]);
    expect(ms).toBeLessThan(300);
  });

  it('keeps the same messages as counting them whole would, for ordinary text', () => {
    const history = Array.from({ length: 12 }, (_, i) => ({
      role: i % 2 === 0 ? 'user' as const : 'assistant' as const,
      content: prose(40 + i * 30),
    }));
    const budget = 2000;
    let used = 0;
    let from = history.length;
    while (from > 0 && used + countTokens(history[from - 1].content) + 4 <= budget) {
      used += countTokens(history[from - 1].content) + 4;
      from -= 1;
    }
    expect(from).toBeGreaterThan(0);
    expect(trimHistory(history, budget)).toEqual(history.slice(from));
  });
});

describe('chat/completions body limits', () => {
  const body = (messages: unknown[]) => ({ model: 'bot', messages });

  it('takes history messages up to 32,000 characters and up to 1,000 messages', () => {
    const long = { role: 'assistant', content: 'x'.repeat(MAX_MESSAGE_CHARS) };
    const many = Array.from({ length: MAX_MESSAGES - 1 }, () => ({ role: 'user', content: 'hi' }));
    expect(chatCompletionRequestSchema.safeParse(body([long, ...many.slice(1), { role: 'user', content: 'Q' }])).success)
      .toBe(true);
  });

  it('refuses an earlier message over 32,000 characters, as text or as parts, naming it', () => {
    for (
      const content of [
        'x'.repeat(MAX_MESSAGE_CHARS + 1),
        [{ type: 'text', text: 'x'.repeat(MAX_MESSAGE_CHARS) }, { type: 'text', text: 'y' }],
      ]
    ) {
      const parsed = chatCompletionRequestSchema.safeParse(body([{ role: 'user', content }, { role: 'user', content: 'Q' }]));
      expect(parsed.success).toBe(false);
      expect(parsed.error?.issues).toEqual([
        expect.objectContaining({ path: ['messages', 0, 'content'], message: 'a message has at most 32000 characters' }),
      ]);
    }
  });

  it('takes a system, developer or tool message of any length: only user and assistant turns make the history', () => {
    const long = 'x'.repeat(MAX_MESSAGE_CHARS * 2);
    for (const role of ['system', 'developer', 'tool']) {
      expect(chatCompletionRequestSchema.safeParse(body([{ role, content: long }, { role: 'user', content: 'Q' }])).success)
        .toBe(true);
    }
  });

  it('counts characters as the database does (code points): an answer cut with emoji is taken back as history', () => {
    expect([codePointLength(''), codePointLength('a\u00e9\u{1F600}'), codePointLength('\ud83d'), codePointLength('\u{1F600}\ud83d')])
      .toEqual([0, 3, 1, 2]);
    // What AnswerText keeps of a long answer: 32,000 characters, 32,001 UTF-16 units with one emoji.
    const answer = new AnswerText();
    answer.append(`\u{1F600}${'x'.repeat(MAX_ANSWER_CHARS)}`);
    expect([answer.full, answer.text.length, codePointLength(answer.text)]).toEqual([true, MAX_ANSWER_CHARS + 1, MAX_MESSAGE_CHARS]);
    const emoji = (count: number) => '\u{1F600}'.repeat(count);
    const history = [{ role: 'user', content: 'Q' }, { role: 'assistant', content: answer.text }];
    for (const messages of [
      [...history, { role: 'user', content: 'Q2' }],
      [{ role: 'assistant', content: emoji(MAX_MESSAGE_CHARS) }, { role: 'user', content: 'Q' }],
      [{ role: 'user', content: ` ${emoji(MAX_QUESTION_CHARS)} ` }],
    ]) {
      expect(chatCompletionRequestSchema.safeParse(body(messages)).error?.issues).toBeUndefined();
    }
    const over = chatCompletionRequestSchema.safeParse(body([
      { role: 'assistant', content: emoji(MAX_MESSAGE_CHARS + 1) },
      { role: 'user', content: emoji(MAX_QUESTION_CHARS + 1) },
    ]));
    expect(over.error?.issues).toEqual([
      expect.objectContaining({ path: ['messages', 0, 'content'], message: 'a message has at most 32000 characters' }),
      expect.objectContaining({ path: ['messages', 1, 'content'], message: 'the last message has at most 8000 characters' }),
    ]);
  });

  it('refuses more than 1,000 messages', () => {
    const parsed = chatCompletionRequestSchema.safeParse(
      body(Array.from({ length: MAX_MESSAGES + 1 }, () => ({ role: 'user', content: 'hi' }))),
    );
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]).toMatchObject({ path: ['messages'], message: 'messages has at most 1000 entries' });
  });
});
