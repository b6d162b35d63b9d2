/**
 * The shared readers' encodings and the handler's HTTP semantics
 * (functions/_shared/{http,handler}.ts), without a stack: which charsets and
 * Content-Encodings a body may declare, bytes and queries that are not UTF-8,
 * HEAD served as GET, no-store by default and HEAD beside GET in Allow.
 */
import { describe, expect, it } from 'vitest';
import { HttpError } from '../../functions/_shared/errors.ts';
import { createHandler } from '../../functions/_shared/handler.ts';
import { assertIdentityEncoding, assertUtf8Query, declaredCharset, json, readBodyText } from '../../functions/_shared/http.ts';

const noEnv = () => undefined;

function post(body: BodyInit, headers: Record<string, string> = {}): Request {
  return new Request('http://functions.test/x', { method: 'POST', headers, body });
}

async function refusal(work: () => unknown): Promise<{ status: number; code: string; message: string }> {
  const error = await Promise.resolve().then(work).then(() => null, (thrown: unknown) => thrown);
  expect(error).toBeInstanceOf(HttpError);
  const { status, code, message } = error as HttpError;
  return { status, code, message };
}

describe('readBodyText', () => {
  it('takes utf-8 and us-ascii however spelt, and a body with no charset', async () => {
    const types = [
      'application/json',
      'application/json; charset=utf-8',
      'application/json;CHARSET="UTF-8"',
      'text/plain; charset=US-ASCII',
      // UTF-8's other labels in the Encoding standard, as some clients send them.
      'application/json; charset=UTF8',
      'application/json; charset=unicode-1-1-utf-8',
    ];
    for (const type of types) {
      expect(await readBodyText(post('{"a":"\u00e9"}', { 'content-type': type })), type).toBe('{"a":"\u00e9"}');
    }
  });

  it('refuses any other declared charset with 415 before reading, naming it', async () => {
    for (const charset of ['iso-8859-1', '"utf-16"', 'windows-1252', 'utf8mb4']) {
      const error = await refusal(() => readBodyText(post('{}', { 'content-type': `application/json; charset=${charset}` })));
      expect(error).toMatchObject({ status: 415, code: 'unsupported_media_type' });
      expect(error.message).toContain(charset.replaceAll('"', ''));
    }
  });

  it('refuses bytes that are not UTF-8 with 400 invalid_encoding instead of replacing them', async () => {
    for (const bytes of [[0x7b, 0xe9, 0x7d], [0xed, 0xa0, 0x80], [0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00], [0xc3]]) {
      const error = await refusal(() => readBodyText(post(new Uint8Array(bytes))));
      expect(error).toMatchObject({ status: 400, code: 'invalid_encoding' });
    }
    // U+FFFD sent as its UTF-8 bytes is a character like any other.
    expect(await readBodyText(post(new Uint8Array([0xef, 0xbf, 0xbd])))).toBe('\ufffd');
    expect(await readBodyText(post(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])))).toBe('{}');
  });

  it('refuses a compressed body with 415 naming its coding, and takes identity', async () => {
    const error = await refusal(() => readBodyText(post('{}', { 'content-encoding': 'identity, GZIP' })));
    expect(error).toMatchObject({ status: 415, code: 'unsupported_media_type' });
    expect(error.message).toContain('gzip');
    expect(await readBodyText(post('{}', { 'content-encoding': 'Identity' }))).toBe('{}');
    expect(() => assertIdentityEncoding(new Headers({ 'content-encoding': 'br' }))).toThrow(/br/);
  });

  it('reads the charset parameter only', () => {
    expect(declaredCharset(new Headers({ 'content-type': 'text/plain; format=flowed; charset = "Latin1"' }))).toBe('latin1');
    expect(declaredCharset(new Headers({ 'content-type': 'application/json' }))).toBeUndefined();
    expect(declaredCharset(new Headers())).toBeUndefined();
  });
});

describe('assertUtf8Query', () => {
  const check = (query: string) => () => assertUtf8Query(new URL(`http://functions.test/x${query}`));

  it('refuses names and values whose percent-decoded bytes are not UTF-8', async () => {
    for (const query of ['?name=a%ED%A0%80b.txt', '?name=caf%E9', '?n%FF=1', '?a=%C3', '?a%C3=%A9', '?ok=1&bad=%80']) {
      expect(await refusal(check(query)), query).toMatchObject({ status: 400, code: 'invalid_encoding' });
    }
  });

  it('takes UTF-8, U+FFFD spelt out, stray percent signs and raw characters the URL escapes', () => {
    for (const query of ['', '?', '?name=caf%C3%A9', '?name=%EF%BF%BD', '?a=100%&b=%zz', '?name=café', '?a=%e2%82%ac+x']) {
      expect(check(query), query).not.toThrow();
    }
  });
});

describe('createHandler', () => {
  const seen: string[] = [];
  const handler = createHandler((req) => {
    seen.push(req.method);
    if (req.method !== 'GET') throw new HttpError(405, 'method_not_allowed', 'Use GET.', { allow: 'GET, DELETE' });
    return json({ ok: true }, 200, { 'x-custom': 'kept' });
  }, { env: noEnv });

  it('serves HEAD as GET, with its status and headers and no body', async () => {
    const get = await handler(new Request('http://functions.test/x'));
    const head = await handler(new Request('http://functions.test/x', { method: 'HEAD' }));
    expect(seen.slice(-2)).toEqual(['GET', 'GET']);
    expect(head.status).toBe(200);
    expect(head.body).toBeNull();
    expect(head.headers.get('x-custom')).toBe('kept');
    expect(head.headers.get('content-type')).toBe(get.headers.get('content-type'));
    expect(head.headers.get('content-length')).toBe(String((await get.arrayBuffer()).byteLength));
  });

  it('cancels an event stream unread for HEAD, without a length', async () => {
    let canceled = false;
    const stream = new ReadableStream({ cancel: () => void (canceled = true) });
    const events = createHandler(() => new Response(stream, { headers: { 'content-type': 'text/event-stream' } }), { env: noEnv });
    const head = await events(new Request('http://functions.test/x', { method: 'HEAD' }));
    expect(head.body).toBeNull();
    expect(head.headers.get('content-length')).toBeNull();
    expect(canceled).toBe(true);
  });

  it('lists HEAD beside GET in a 405\'s Allow, and leaves an Allow without GET as it is', async () => {
    const put = await handler(new Request('http://functions.test/x', { method: 'PUT' }));
    expect(put.headers.get('allow')).toBe('GET, HEAD, DELETE');
    const postOnly = createHandler(() => {
      throw new HttpError(405, 'method_not_allowed', 'Use POST.', { allow: 'POST' });
    }, { env: noEnv });
    expect((await postOnly(new Request('http://functions.test/x', { method: 'HEAD' }))).headers.get('allow')).toBe('POST');
  });

  it('sets no-store unless the answer set its own Cache-Control, errors included', async () => {
    expect((await handler(new Request('http://functions.test/x'))).headers.get('cache-control')).toBe('no-store');
    const refused = await handler(new Request('http://functions.test/x', { method: 'PUT' }));
    expect(refused.headers.get('cache-control')).toBe('no-store');
    const cached = createHandler(() => new Response('{}', { headers: { 'cache-control': 'public, max-age=60' } }), {
      env: noEnv,
    });
    expect((await cached(new Request('http://functions.test/x'))).headers.get('cache-control')).toBe('public, max-age=60');
  });

  it('refuses a query that is not UTF-8 before the function runs', async () => {
    const before = seen.length;
    const response = await handler(new Request('http://functions.test/x?name=a%ED%A0%80b'));
    expect(response.status).toBe(400);
    expect((await response.json()).error.code).toBe('invalid_encoding');
    expect(seen.length).toBe(before);
  });
});
