import type { ZodType } from 'zod';
import { concatBytes } from './bytes.ts';
import { HttpError } from './errors.ts';

/** A JSON response. */
export function json(data: unknown, status = 200, headers: Record<string, string> = {}): Response {
  const merged = new Headers(headers);
  merged.set('content-type', 'application/json');
  return new Response(JSON.stringify(data), { status, headers: merged });
}

const MAX_ISSUES_IN_MESSAGE = 5;

/**
 * The request body parsed as JSON and validated by `schema`: 400 `invalid_json`
 * when it is not JSON, 422 `invalid_request` when it does not match the schema.
 */
export async function readJson<T>(req: Request, schema: ZodType<T>): Promise<T> {
  let body: unknown;
  try {
    body = JSON.parse(await req.text());
  } catch {
    throw new HttpError(400, 'invalid_json', 'The request body must be valid JSON.');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issues = result.error.issues;
  const summary = issues
    .slice(0, MAX_ISSUES_IN_MESSAGE)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(body)'}: ${issue.message}`);
  if (issues.length > MAX_ISSUES_IN_MESSAGE) summary.push(`and ${issues.length - MAX_ISSUES_IN_MESSAGE} more`);
  throw new HttpError(422, 'invalid_request', `Invalid request body: ${summary.join('; ')}`);
}

/**
 * Like readJson, for endpoints whose body may be left out (a scheduler's
 * wake-up with nothing to say): an empty body is `undefined`.
 */
export async function readOptionalJson<T>(req: Request, schema: ZodType<T>): Promise<T | undefined> {
  const text = await req.text();
  if (text.trim() === '') return undefined;
  return await readJson(new Request(req.url, { method: 'POST', body: text }), schema);
}

/**
 * The body's bytes, counted as they arrive: past `maxBytes` (declared in
 * Content-Length, or once read that far) `tooLarge()` is thrown without the
 * rest being read or the whole held. A request's body, or a fetched
 * response's (canceling the read aborts the download).
 */
export async function readBodyBytes(
  req: Pick<Request, 'headers' | 'body'>,
  maxBytes: number,
  tooLarge: () => Error,
): Promise<Uint8Array> {
  if (Number(req.headers.get('content-length') ?? '0') > maxBytes) throw tooLarge();
  if (!req.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    parts.push(value);
  }
  return concatBytes(parts);
}

/**
 * The query string validated by `schema` (string values): a parameter given
 * twice, or one the schema refuses, is a 422 `invalid_request` naming it.
 */
export function readQuery<T>(url: URL, schema: ZodType<T>): T {
  const values: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    if (Object.hasOwn(values, name)) throw new HttpError(422, 'invalid_request', `Invalid query: ${name}: given more than once`);
    values[name] = value;
  }
  const parsed = schema.safeParse(values);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new HttpError(422, 'invalid_request', `Invalid query: ${issue.path.join('.') || '(query)'}: ${issue.message}`);
}
