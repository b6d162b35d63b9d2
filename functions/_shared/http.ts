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
 * The largest JSON body read unless a route names its own cap: every body
 * our routes take is far smaller (a campaign's 1,000 numbers, escaped, are
 * under 400 KB), and a hosted worker's 256 MB is shared by the requests it
 * serves at once, so one body must not be able to take it.
 */
export const DEFAULT_MAX_JSON_BYTES = 1024 * 1024;

export interface BodyLimit {
  /** Bytes past which the body is refused (413) unread; DEFAULT_MAX_JSON_BYTES when left out. */
  maxBytes?: number;
}

/** 413 `payload_too_large`, as call-events answers an oversized event. */
export function payloadTooLarge(maxBytes: number): HttpError {
  return new HttpError(413, 'payload_too_large', `The request body must be at most ${maxBytes} bytes.`);
}

/**
 * 415 `unsupported_media_type` for a body sent compressed (any Content-Encoding
 * but `identity`): nothing here inflates one, and read as it is it would be
 * stored as gzip bytes or refused as bad JSON.
 */
export function assertIdentityEncoding(headers: Headers): void {
  const codings = (headers.get('content-encoding') ?? '').split(',').map((coding) => coding.trim().toLowerCase());
  const other = codings.find((coding) => coding !== '' && coding !== 'identity');
  if (other !== undefined) {
    throw new HttpError(
      415,
      'unsupported_media_type',
      `The body must be sent uncompressed (Content-Encoding ${other} is not accepted).`,
    );
  }
}

/** The Content-Type's `charset` parameter, lower-cased and unquoted; undefined when not given. */
export function declaredCharset(headers: Headers): string | undefined {
  for (const parameter of (headers.get('content-type') ?? '').split(';').slice(1)) {
    const at = parameter.indexOf('=');
    if (at < 0 || parameter.slice(0, at).trim().toLowerCase() !== 'charset') continue;
    return parameter.slice(at + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase();
  }
  return undefined;
}

/**
 * Whether a declared charset is UTF-8 by any of its labels (the Encoding
 * standard's: `utf8`, `unicode-1-1-utf-8`, ...) or US-ASCII, which UTF-8
 * contains (the standard reads that label as windows-1252, hence named here).
 */
function isUtf8Charset(charset: string): boolean {
  if (charset === 'us-ascii' || charset === 'ascii') return true;
  try {
    return new TextDecoder(charset).encoding === 'utf-8';
  } catch {
    return false;
  }
}

const notUtf8 = (what: string) => new HttpError(400, 'invalid_encoding', `${what} is not valid UTF-8.`);

/**
 * The body as UTF-8 text, read through readBodyBytes: 415
 * `unsupported_media_type` when it is compressed (assertIdentityEncoding) or
 * declares a charset other than utf-8 or us-ascii; over `maxBytes`, declared
 * or counted, a 413 before the rest is read; 400 `invalid_encoding` when the
 * bytes are not UTF-8 (never U+FFFD in their place). A byte order mark is
 * dropped, as `req.text()` drops it.
 */
export async function readBodyText(req: Request, { maxBytes = DEFAULT_MAX_JSON_BYTES }: BodyLimit = {}): Promise<string> {
  assertIdentityEncoding(req.headers);
  const charset = declaredCharset(req.headers);
  if (charset !== undefined && !isUtf8Charset(charset)) {
    throw new HttpError(415, 'unsupported_media_type', `Send the body as UTF-8 (charset=utf-8), not ${charset}.`);
  }
  const bytes = await readBodyBytes(req, maxBytes, () => payloadTooLarge(maxBytes));
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw notUtf8('The request body');
  }
}

/**
 * The request body parsed as JSON and validated by `schema`: 413
 * `payload_too_large` past the route's cap (readBodyText), 400 `invalid_json`
 * when it is not JSON, 422 `invalid_request` when it does not match the schema.
 */
export async function readJson<T>(req: Request, schema: ZodType<T>, limit: BodyLimit = {}): Promise<T> {
  return parseJson(await readBodyText(req, limit), schema);
}

/**
 * Like readJson, for endpoints whose body may be left out (a scheduler's
 * wake-up with nothing to say): an empty body is `undefined`.
 */
export async function readOptionalJson<T>(req: Request, schema: ZodType<T>, limit: BodyLimit = {}): Promise<T | undefined> {
  const text = await readBodyText(req, limit);
  if (text.trim() === '') return undefined;
  return parseJson(text, schema);
}

function parseJson<T>(text: string, schema: ZodType<T>): T {
  let body: unknown;
  try {
    body = JSON.parse(text);
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
 * 400 `invalid_encoding` when a query parameter's name or value, percent-decoded,
 * is not UTF-8 (`?name=a%ED%A0%80b`): URLSearchParams would hand it on with
 * U+FFFD in place of the bytes. A U+FFFD sent as such (`%EF%BF%BD`) is kept.
 */
export function assertUtf8Query(url: URL): void {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  for (const pair of url.search.slice(1).split('&')) {
    if (!pair.includes('%')) continue;
    try {
      decoder.decode(percentDecoded(pair));
    } catch {
      const name = pair.split('=')[0];
      throw notUtf8(`The query parameter ${new TextDecoder().decode(percentDecoded(name)).slice(0, 100)}`);
    }
  }
}

/** The bytes `component` stands for, as application/x-www-form-urlencoded percent-decodes it. */
function percentDecoded(component: string): Uint8Array {
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  let last = 0;
  for (const escape of component.matchAll(/%([0-9A-Fa-f]{2})/g)) {
    parts.push(encoder.encode(component.slice(last, escape.index)), Uint8Array.of(Number.parseInt(escape[1], 16)));
    last = escape.index + 3;
  }
  parts.push(encoder.encode(component.slice(last)));
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
