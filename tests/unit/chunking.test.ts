import { describe, expect, it } from 'vitest';
import { chunkPages, type TextChunk } from '../../functions/_shared/text/chunk.ts';
import type { Page } from '../../functions/_shared/text/document.ts';
import { countTokens } from '../../functions/_shared/text/tokens.ts';

/** Numbered words, so where each word ended up can be checked. */
function words(from: number, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `w${from + index}`);
}

/** Pages of sentences of numbered words: page n holds words [n*perPage, (n+1)*perPage). */
function pagesOfWords(pageCount: number, perPage: number): Page[] {
  return Array.from({ length: pageCount }, (_, index) => {
    const list = words(index * perPage, perPage);
    const sentences: string[] = [];
    for (let at = 0; at < list.length; at += 12) sentences.push(`${list.slice(at, at + 12).join(' ')}.`);
    return { number: index + 1, text: sentences.join(' ') };
  });
}

/** The numbered words of a chunk, in order. */
function wordNumbers(chunk: TextChunk): number[] {
  return [...chunk.content.matchAll(/w(\d+)/g)].map((match) => Number(match[1]));
}

describe('chunkPages', () => {
  it('keeps a short text as one chunk with its exact token count and page', () => {
    const [chunk, ...rest] = chunkPages([{ number: 3, text: 'The refund policy allows returns within 30 days.' }]);
    expect(rest).toEqual([]);
    expect(chunk).toEqual({
      content: 'The refund policy allows returns within 30 days.',
      pageStart: 3,
      pageEnd: 3,
      tokenCount: countTokens('The refund policy allows returns within 30 days.'),
    });
  });

  it('cuts long text into chunks of about 400 tokens that overlap by about 40 and lose no word', () => {
    const pages = pagesOfWords(6, 400);
    const chunks = chunkPages(pages);
    expect(chunks.length).toBeGreaterThan(4);
    for (const chunk of chunks.slice(0, -1)) {
      expect(chunk.tokenCount).toBeGreaterThan(300);
      expect(chunk.tokenCount).toBeLessThanOrEqual(440);
    }
    const seen = new Set<number>();
    chunks.forEach((chunk, index) => {
      const numbers = wordNumbers(chunk);
      // In order, without gaps inside a chunk.
      numbers.forEach((n, at) => at > 0 && expect(n).toBe(numbers[at - 1] + 1));
      numbers.forEach((n) => seen.add(n));
      if (index > 0) {
        const previous = wordNumbers(chunks[index - 1]);
        const shared = previous.filter((n) => numbers.includes(n));
        // The overlap is the previous chunk's tail, about 40 tokens (each word here is 2-3 tokens).
        expect(shared[shared.length - 1]).toBe(previous[previous.length - 1]);
        const sharedTokens = countTokens(shared.map((n) => `w${n}`).join(' '));
        expect(sharedTokens).toBeGreaterThan(25);
        expect(sharedTokens).toBeLessThanOrEqual(45);
      }
    });
    expect(seen.size).toBe(6 * 400);
  });

  it('records the pages each chunk spans', () => {
    const chunks = chunkPages(pagesOfWords(4, 150));
    for (const chunk of chunks) {
      const numbers = wordNumbers(chunk);
      expect(chunk.pageStart).toBe(Math.floor(numbers[0] / 150) + 1);
      expect(chunk.pageEnd).toBe(Math.floor(numbers[numbers.length - 1] / 150) + 1);
    }
    expect(chunks.some((chunk) => chunk.pageEnd > chunk.pageStart)).toBe(true);
  });

  it('ends a chunk at a paragraph break near the 400 mark rather than mid-sentence', () => {
    const paragraph = (from: number) => `${words(from, 22).join(' ')} end of paragraph.`;
    const text = Array.from({ length: 40 }, (_, index) => paragraph(index * 100)).join('\n\n');
    const chunks = chunkPages([{ number: 1, text }]);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.content.endsWith('end of paragraph.')).toBe(true);
  });

  it('ends a chunk at a sentence end when there is no paragraph break nearby', () => {
    const text = Array.from({ length: 80 }, (_, index) => `${words(index * 20, 15).join(' ')}.`).join(' ');
    const chunks = chunkPages([{ number: 1, text }]);
    expect(chunks.length).toBeGreaterThan(2);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.content).toMatch(/\.$/);
  });

  it('cuts text without spaces (Chinese, a long token) by characters, within the size', () => {
    const text = '知识库中的每一个文件都会被切分成小块以便检索。'.repeat(120);
    const chunks = chunkPages([{ number: 1, text }]);
    expect(chunks.length).toBeGreaterThan(3);
    for (const chunk of chunks) expect(chunk.tokenCount).toBeLessThanOrEqual(440);
    expect(chunks.map((chunk) => chunk.content).join('')).toContain('知识库');
  });

  it('carries 1-40 tokens over between chunks of Chinese text without spaces', () => {
    // 3,000 characters drawn without a pattern from 2,000 CJK ideographs, so an overlap found is a real one.
    let seed = 288;
    const text = Array.from({ length: 3000 }, () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return String.fromCodePoint(0x4e00 + (seed % 2000));
    }).join('');
    const chunks = chunkPages([{ number: 1, text }]);
    expect(chunks.length).toBeGreaterThan(3);
    for (const [index, chunk] of chunks.entries()) {
      if (index === 0) continue;
      const previous = Array.from(chunks[index - 1].content);
      const current = Array.from(chunk.content);
      // The longest start of this chunk that is the end of the previous one.
      let shared = Math.min(previous.length, current.length);
      while (shared > 0 && previous.slice(previous.length - shared).join('') !== current.slice(0, shared).join('')) shared--;
      const overlap = countTokens(current.slice(0, shared).join(''));
      expect(overlap, `chunk ${index}`).toBeGreaterThanOrEqual(1);
      expect(overlap, `chunk ${index}`).toBeLessThanOrEqual(40);
    }
  });

  it('is deterministic', () => {
    const pages = pagesOfWords(5, 333);
    expect(chunkPages(pages)).toEqual(chunkPages(pages));
  });

  it('opens a resumed step with the last ~40 tokens of the pages before it, and never emits lead text alone', () => {
    const pages = pagesOfWords(6, 300);
    const first = chunkPages(pages.slice(0, 3));
    const second = chunkPages(pages.slice(3), { lead: pages.slice(0, 3) });
    const lastOfFirst = wordNumbers(first[first.length - 1]);
    const firstOfSecond = wordNumbers(second[0]);
    // The second step starts inside the first step's text (the overlap) and continues without a gap.
    expect(firstOfSecond[0]).toBeLessThan(900);
    expect(firstOfSecond).toContain(899);
    expect(firstOfSecond).toContain(900);
    expect(lastOfFirst).toContain(firstOfSecond[0]);
    expect(second[0].pageStart).toBe(3);
    // Every word of the document is in some chunk of one step or the other.
    const seen = new Set([...first, ...second].flatMap(wordNumbers));
    expect(seen.size).toBe(1800);

    expect(chunkPages([{ number: 4, text: '' }], { lead: pages.slice(0, 3) })).toEqual([]);
  });

  it('produces nothing for pages without text', () => {
    expect(chunkPages([{ number: 1, text: '' }, { number: 2, text: '   ' }])).toEqual([]);
  });
});
