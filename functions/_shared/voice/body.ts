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
