/**
 * Token counting for text-embedding-3-small, whose tokenizer is cl100k_base.
 * Text that spells a special token ("<|endoftext|>") is counted as plain text,
 * as the embeddings API does, instead of throwing.
 */
import { decode, encode } from 'gpt-tokenizer/encoding/cl100k_base';

const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

export function encodeTokens(text: string): number[] {
  return encode(text, PLAIN_TEXT);
}

export function countTokens(text: string): number {
  return text === '' ? 0 : encodeTokens(text).length;
}

export function decodeTokens(tokens: number[]): string {
  return decode(tokens);
}

/**
 * The text cut to at most `limit` tokens. Cutting between tokens can split a
 * multi-byte character; the replacement character a partial one decodes to is dropped.
 */
export function truncateToTokens(text: string, limit: number): { text: string; tokens: number } {
  const tokens = encodeTokens(text);
  if (tokens.length <= limit) return { text, tokens: tokens.length };
  const cut = decodeTokens(tokens.slice(0, limit)).replace(/\uFFFD+$/u, '');
  return { text: cut, tokens: countTokens(cut) };
}
