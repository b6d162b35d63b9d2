/**
 * What the SSRF guard makes of a lookup that fails: a name that does not exist is the URL's fault (422
 * `unsafe_url`), a resolver that fails is nobody's (503 `dns_unavailable`, to retry), and a delivery attempt
 * records the latter as a failed attempt without a status, which the retry schedule handles like a network error.
 */
import { describe, expect, it } from 'vitest';
import { HttpError } from '../../functions/_shared/errors.ts';
import { type DestinationPolicy, resolvePublicDestination } from '../../functions/_shared/ssrf.ts';
import { sendAttempt } from '../../functions/webhook-dispatcher/send.ts';

const URL_TO_CHECK = 'https://hooks.ssrf-dns-failures.example/in';

const failingWith = (code: string | null): DestinationPolicy => ({
  allowLoopback: false,
  resolve: () =>
    Promise.reject(code === null ? new Error('the resolver failed') : Object.assign(new Error(`getaddrinfo ${code}`), { code })),
});

async function failure(policy: DestinationPolicy): Promise<HttpError> {
  const error = await resolvePublicDestination(URL_TO_CHECK, policy).then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(HttpError);
  return error as HttpError;
}

describe('a failed lookup', () => {
  it.each(['ENOTFOUND', 'ENODATA', 'EAI_NONAME', 'EAI_NODATA'])('is 422 unsafe_url when the name has no address (%s)', async (code) => {
    expect(await failure(failingWith(code))).toMatchObject({ status: 422, code: 'unsafe_url', message: expect.stringMatching(/does not resolve/) });
  });

  it('is 422 unsafe_url when the resolver answers no address', async () => {
    expect(await failure({ allowLoopback: false, resolve: async () => [] })).toMatchObject({ status: 422, code: 'unsafe_url' });
  });

  it.each(['ESERVFAIL', 'EAI_AGAIN', 'EAI_FAIL', 'ETIMEOUT', 'EREFUSED', 'ECONNREFUSED', null])(
    'is 503 dns_unavailable with Retry-After when the resolver fails (%s)',
    async (code) => {
      const error = await failure(failingWith(code));
      expect(error).toMatchObject({ status: 503, code: 'dns_unavailable', headers: { 'retry-after': '5' } });
      expect(error.cause, 'kept for the log').toBeInstanceOf(Error);
    },
  );

  it('is 503 dns_unavailable when the resolver does not answer within the lookup timeout', async () => {
    const started = performance.now();
    const error = await failure({ allowLoopback: false, resolve: () => new Promise<string[]>(() => undefined), lookupTimeoutMs: 50 });
    expect(error).toMatchObject({ status: 503, code: 'dns_unavailable' });
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('a delivery attempt whose lookup fails', () => {
  it('is a failed attempt without a status (retried on the schedule), naming the resolver failure', async () => {
    const result = await sendAttempt(
      {
        delivery_id: '00000000-0000-4000-8000-000000000011',
        attempt_number: 1,
        message_id: 'msg_0000000000004000800000000000001a',
        endpoint_id: '00000000-0000-4000-8000-000000000012',
        url: URL_TO_CHECK,
        secrets: [`whsec_${Buffer.alloc(32, 9).toString('base64')}`],
        body: '{"type":"document.failed","timestamp":"2026-11-23T10:00:00.000Z","data":{}}',
      },
      { now: () => new Date(), policy: failingWith('ESERVFAIL'), timeoutMs: 2000, userAgent: 'test-agent/1' },
    );
    expect(result).toMatchObject({ statusCode: null, responseBody: null, error: expect.stringMatching(/^dns_unavailable: /) });
  });
});
