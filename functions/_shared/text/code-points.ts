import { z } from 'zod';

/**
 * A text's length as Postgres's length() counts it: code points, so an emoji
 * (two UTF-16 units in JS's .length) is one character.
 */
export function codePointLength(text: string): number {
  let chars = 0;
  for (let index = 0; index < text.length; index += 1) {
    chars += 1;
    if ((text.codePointAt(index) ?? 0) > 0xffff) index += 1;
  }
  return chars;
}

/**
 * A trimmed string of at most `max` characters counted as the database
 * counts them (code points), so the function boundary and the SQL check that
 * bounds the same text agree (zod's .max counts UTF-16 units: 8,000 emoji
 * would be refused at 4,001).
 */
export function trimmedText(max: number, message: string) {
  return z.string().trim().refine((text) => codePointLength(text) <= max, { error: message });
}
