import type { ZodType } from 'zod';
import { CallEventParseError } from './types.ts';

const MAX_ISSUES = 5;

/** A webhook body as JSON, or a CallEventParseError (the endpoint answers 400). */
export function parseJsonBody(rawBody: string, what: string): unknown {
  try {
    return JSON.parse(rawBody);
  } catch {
    throw new CallEventParseError(`The ${what} is not JSON`);
  }
}

/**
 * `value` checked by `schema`, or a CallEventParseError naming the first few
 * problems by path, for the sender's logs (the endpoint answers 400 with it).
 */
export function checkBody<T>(value: unknown, schema: ZodType<T>, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) =>
    `${issue.path.length > 0 ? issue.path.join('.') : '(body)'}: ${issue.message}`
  );
  const shown = issues.slice(0, MAX_ISSUES);
  if (issues.length > MAX_ISSUES) shown.push(`and ${issues.length - MAX_ISSUES} more`);
  throw new CallEventParseError(`Not a valid ${what}`, shown);
}

/**
 * A parsed body or event with every U+0000 and every lone surrogate, in
 * strings and in keys, made U+FFFD: JSON may carry `\u0000` or `\ud83d`,
 * Postgres's jsonb and text never take them (SQLSTATE 22P05, 22021, 22P02).
 * Called once the signature, which is over the raw bytes, has been checked,
 * so that such an event is stored, not refused (a refusal would be retried
 * by the provider for ever).
 */
export function replaceUnstorable<T>(value: T): T {
  return replaceUnstorableIn(value) as T;
}

/** A NUL, or half of a surrogate pair without its other half (a cut emoji): neither is valid in jsonb. */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function replaceUnstorableIn(value: unknown): unknown {
  if (typeof value === 'string') return value.replace(UNSTORABLE, '\uFFFD');
  if (Array.isArray(value)) return value.map(replaceUnstorableIn);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [replaceUnstorableIn(key), replaceUnstorableIn(item)]));
}
