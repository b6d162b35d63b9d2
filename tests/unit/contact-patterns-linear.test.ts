/**
 * The escalation patterns read a long text once, not once per character:
 * isNoAnswer (run on every answer before chat_finish stores the turn) on an
 * answer that is one long run without an "@", and detectsHumanRequest on a
 * question that is a long run of modifiers ("a a a …", "einem einem …").
 * Quadratic, the e-mail pattern took 1.3-1.7 s for 32,000 letters and the
 * modifiers 370 ms for 8,000 characters.
 *
 * No timing is asserted: each case is a text many times longer, which the
 * linear patterns read in under a second and the quadratic ones did not in a
 * minute, under a generous timeout of its own (vitest fails a test that ran
 * past it, even synchronously). What the patterns find is unchanged: an
 * e-mail address, however long, weighs nothing before the no-answer sentence,
 * and a person after five modifiers is still asked for.
 */
import { describe, expect, it } from 'vitest';
import {
  detectsHumanRequest,
  extractCitations,
  isNoAnswer,
  NO_ANSWER_TEXT,
} from '../../functions/_shared/chat/index.ts';

const TIMEOUT_MS = 20_000;
const CONTEXT = {
  chunks: [{ chunkId: 1, documentId: 'd1', documentName: 'Manual.pdf', pageStart: 1, pageEnd: 1, content: 'x', score: 0.9 }],
  products: [],
};

describe('isNoAnswer on long answers', () => {
  it('reads a 400,000-letter run without an "@" once', () => {
    expect(isNoAnswer('a'.repeat(400_000))).toBe(false);
  }, TIMEOUT_MS);

  it('reads a run of local-part characters ending in an "@" with no domain once', () => {
    expect(isNoAnswer(`${'ann.lee+x_'.repeat(40_000)}@ ${NO_ANSWER_TEXT}`)).toBe(false);
  }, TIMEOUT_MS);

  it('reads a long domain without a dot once', () => {
    expect(isNoAnswer(`ann@${'b'.repeat(400_000)} ${NO_ANSWER_TEXT}`)).toBe(false);
  }, TIMEOUT_MS);

  it('reads long runs of digits, dotted labels and hyphens once', () => {
    for (const run of ['1'.repeat(400_000), 'a.'.repeat(200_000), 'ab.'.repeat(130_000) + '/', 'a-'.repeat(200_000)]) {
      expect(isNoAnswer(run)).toBe(false);
    }
  }, TIMEOUT_MS);

  it('cites the top source of a long answer, reading it once', () => {
    expect(extractCitations('a'.repeat(400_000), CONTEXT)).toEqual([
      { chunk_id: 1, document_id: 'd1', document_name: 'Manual.pdf', page_start: 1, page_end: 1 },
    ]);
  }, TIMEOUT_MS);

  it('still takes out an e-mail address, however long, wherever it starts', () => {
    const local = 'ann.lee.customer.relations'.repeat(4);
    expect(isNoAnswer(`${local}@example.com ${NO_ANSWER_TEXT}`)).toBe(true);
    expect(isNoAnswer(`Write to (${local}@example.com): ${NO_ANSWER_TEXT}`)).toBe(true);
    expect(isNoAnswer(`Write to ann.lee@example.com, ${NO_ANSWER_TEXT}`)).toBe(true);
    // The same letters without the "@" are a statement before the sentence.
    expect(isNoAnswer(`${local} example com ${NO_ANSWER_TEXT}`)).toBe(false);
  });
});

describe('extractCitations with the no-answer verdict given', () => {
  it('takes the caller\'s verdict rather than reading the answer again', () => {
    expect(extractCitations(NO_ANSWER_TEXT, CONTEXT)).toEqual([]);
    expect(extractCitations(NO_ANSWER_TEXT, CONTEXT, true)).toEqual([]);
    expect(extractCitations(NO_ANSWER_TEXT, CONTEXT, false)).toHaveLength(1);
    expect(extractCitations('Returns take 30 days.', CONTEXT, true)).toEqual([]);
  });
});

describe('detectsHumanRequest on long questions', () => {
  const cases: [string, string][] = [
    ['English modifiers', 'i want ' + 'a '.repeat(100_000)],
    ['English modifiers after a talking verb', 'talk to ' + 'the '.repeat(100_000)],
    ['German modifiers that are also introductions', 'sprechen mit ' + 'einem '.repeat(100_000)],
  ];
  it.each(cases)('reads a run of %s once', (_name, question) => {
    expect(detectsHumanRequest(question)).toBe(false);
  }, TIMEOUT_MS);

  it('still finds a person after up to six modifiers', () => {
    expect(detectsHumanRequest('Can I talk to one of your real live people?')).toBe(true);
    expect(detectsHumanRequest('I need a real live human agent please')).toBe(true);
    expect(detectsHumanRequest('Ich möchte mit einem echten menschlichen Mitarbeiter sprechen')).toBe(true);
  });
});
