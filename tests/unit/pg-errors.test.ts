/** Postgres errors as HTTP answers: a value jsonb refuses (a NUL, 22P05) is the client's 422, a not found (P0002, PT404) 404; replaceUnstorable makes NULs U+FFFD. */
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { HttpError } from '../../functions/_shared/errors.ts';
import { httpErrorFromPostgres, httpErrorFromUnmappedPostgres } from '../../functions/_shared/pg-errors.ts';
import { replaceUnstorable } from '../../functions/_shared/voice/index.ts';

describe('httpErrorFromUnmappedPostgres', () => {
  it('answers 22P05 (jsonb refusing \\u0000) with 422 invalid_request and fixed wording', () => {
    const refused = new postgres.PostgresError({
      code: '22P05',
      message: 'unsupported Unicode escape sequence',
      detail: '\\u0000 cannot be converted to text.',
    } as never /* the constructor's parameter type is the driver's internal row of error fields */);
    const mapped = httpErrorFromUnmappedPostgres(refused);
    expect(mapped).toBeInstanceOf(HttpError);
    expect(mapped).toMatchObject({ status: 422, code: 'invalid_request', cause: refused });
    expect((mapped as HttpError).message).toContain('NUL');
  });
});

describe('httpErrorFromPostgres', () => {
  it('answers PT404 (a public RPC\'s not found, which PostgREST answers 404) as P0002: 404 not_found, fixed wording', () => {
    for (const code of ['P0002', 'PT404']) {
      const missing = new postgres.PostgresError({ code, message: 'no such member in this organization' } as never);
      expect(httpErrorFromPostgres(missing, { notFound: 'The member was not found.' })).toMatchObject({
        status: 404,
        code: 'not_found',
        message: 'The member was not found.',
      });
    }
  });
});

describe('replaceUnstorable', () => {
  it('makes every U+0000 U+FFFD, in strings and keys at any depth, and leaves the rest alone', () => {
    const value = { 'k\u0000': ['a\u0000b', 1, null, true, { deep: '\u0000' }], plain: 'ok' };
    expect(replaceUnstorable(value)).toEqual({ 'k\uFFFD': ['a\uFFFDb', 1, null, true, { deep: '\uFFFD' }], plain: 'ok' });
    expect(value['k\u0000'][0]).toBe('a\u0000b');
  });

  it('makes a lone surrogate (half an emoji) U+FFFD and keeps whole pairs', () => {
    expect(replaceUnstorable({ text: 'cut \ud83d here', tail: 'end \ude00', whole: 'smile \ud83d\ude00' })).toEqual({
      text: 'cut \uFFFD here',
      tail: 'end \uFFFD',
      whole: 'smile \ud83d\ude00',
    });
  });
});
