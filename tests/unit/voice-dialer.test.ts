import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createVapiDialer,
  DEFAULT_VAPI_BASE_URL,
  DialError,
  type DialLookup,
  type DialRequest,
  VAPI_LIST_LIMIT,
  vapiBaseUrl,
} from '../../functions/_shared/voice/dialer.ts';
import { startVapiStub, type VapiStub } from '../support/vapi-stub.ts';

const request: DialRequest = {
  to: '+14155550123',
  assistantId: '5b0a1f7e-8d6c-4f1e-9a2b-3c4d5e6f7a8b',
  phoneNumberId: '9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
  metadata: { call_id: '0b6f1c2e-3d4a-4b5c-8d6e-7f8091a2b3c4', org_id: '7e6d5c4b-3a29-4817-8f6e-5d4c3b2a1908' },
};

/** What a failed dial threw. */
async function dialError(promise: Promise<unknown>): Promise<DialError> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(DialError);
  return error as DialError;
}

describe('Vapi dialer against a POST /call stand-in', () => {
  let stub: VapiStub;
  beforeAll(async () => {
    stub = await startVapiStub();
  });
  afterAll(async () => {
    await stub?.close();
  });
  beforeEach(() => stub.reset());

  const dialer = (overrides: Partial<Parameters<typeof createVapiDialer>[0]> = {}) =>
    createVapiDialer({ apiKey: stub.apiKey, baseUrl: `${stub.baseUrl}/`, ...overrides });

  it("places the call with the assistant, the number and our ids, and returns Vapi's id and status", async () => {
    const result = await dialer().dial(request);
    expect(result).toEqual({ providerCallId: expect.stringMatching(/^[0-9a-f-]{36}$/), status: 'queued' });
    expect(stub.requests).toHaveLength(1);
    expect(stub.requests[0]).toMatchObject({
      method: 'POST',
      path: '/call',
      authorization: `Bearer ${stub.apiKey}`,
      status: 201,
      body: {
        assistantId: request.assistantId,
        phoneNumberId: request.phoneNumberId,
        customer: { number: '+14155550123' },
        assistantOverrides: { metadata: request.metadata },
      },
    });
  });

  it('sends only properties Vapi accepts (it refuses a top-level metadata)', async () => {
    // What the stand-in does with the shape we avoid, as Vapi does.
    const response = await fetch(`${stub.baseUrl}/call`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stub.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...request, customer: { number: request.to }, to: undefined, metadata: request.metadata }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ message: ['property metadata should not exist'], statusCode: 400 });

    await dialer().dial(request);
    expect(Object.keys(stub.requests[1].body).sort()).toEqual([
      'assistantId',
      'assistantOverrides',
      'customer',
      'phoneNumberId',
    ]);
  });

  it('classifies a 429 as retryable after Retry-After, not placed', async () => {
    stub.failNext({ status: 429, retryAfter: '30', message: 'Rate limit exceeded' });
    const error = await dialError(dialer().dial(request));
    expect(error).toMatchObject({ status: 429, retryable: true, retryAfterSeconds: 30, maybePlaced: false });
    expect(error.message).toBe('Vapi POST /call failed with 429: Rate limit exceeded');
  });

  it('reads Retry-After as an HTTP date too', async () => {
    stub.failNext({ status: 503, retryAfter: new Date(Date.now() + 120_000).toUTCString() });
    const error = await dialError(dialer().dial(request));
    expect(error).toMatchObject({ status: 503, retryable: true, maybePlaced: false });
    expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(118);
    expect(error.retryAfterSeconds).toBeLessThanOrEqual(120);
  });

  it('classifies a 500 as retryable, but maybe placed', async () => {
    stub.failNext({ status: 500 });
    const error = await dialError(dialer().dial(request));
    expect(error).toMatchObject({ status: 500, retryable: true, maybePlaced: true, retryAfterSeconds: undefined });
  });

  it("classifies a 400 as not retryable, with Vapi's reasons", async () => {
    const error = await dialError(dialer().dial({ ...request, phoneNumberId: '' }));
    expect(error).toMatchObject({ status: 400, retryable: false, maybePlaced: false });
    expect(error.message).toBe('Vapi POST /call failed with 400: phoneNumberId or phoneNumber is required');

    stub.failNext({ status: 400, message: ['assistantId must be a UUID', 'customer.number must be a valid phone number'] });
    const both = await dialError(dialer().dial(request));
    expect(both.message).toBe(
      'Vapi POST /call failed with 400: assistantId must be a UUID; customer.number must be a valid phone number',
    );
  });

  it('classifies a wrong key as not retryable', async () => {
    const error = await dialError(dialer({ apiKey: 'wrong' }).dial(request));
    expect(error).toMatchObject({ status: 401, retryable: false });
    expect(error.message).not.toContain('wrong');
  });

  it('gives up on a Vapi that does not answer: retryable, maybe placed', async () => {
    stub.hangNext();
    const started = Date.now();
    const error = await dialError(dialer({ timeoutMs: 150 }).dial(request));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(error).toMatchObject({ retryable: true, maybePlaced: true, status: undefined });
    expect(error.message).toBe('Vapi POST /call failed: no answer within 150 ms.');
    expect(stub.requests).toHaveLength(1);
  });

  it('classifies an unreachable Vapi as retryable', async () => {
    const unreachable = createVapiDialer({ apiKey: 'k', baseUrl: 'http://127.0.0.1:9', timeoutMs: 2_000 });
    const error = await dialError(unreachable.dial(request));
    expect(error).toMatchObject({ retryable: true, maybePlaced: true });
    expect(error.message).toBe('Vapi POST /call failed: Vapi could not be reached.');
  });

  it('refuses a number that is not E.164 before asking Vapi', async () => {
    const error = await dialError(dialer().dial({ ...request, to: '0301234567' }));
    expect(error).toMatchObject({ retryable: false, maybePlaced: false });
    expect(stub.requests).toHaveLength(0);
  });

  it('reports an answer without a call id as not retryable, maybe placed', async () => {
    const odd = createVapiDialer({
      apiKey: 'k',
      fetch: () => Promise.resolve(new Response('<html>ok</html>', { status: 201 })),
    });
    const error = await dialError(odd.dial(request));
    expect(error).toMatchObject({ status: 201, retryable: false, maybePlaced: true });
  });

  describe('looking up a dial of unknown outcome (GET /call)', () => {
    const lookup = (): DialLookup => ({ ...request, dialStartedAt: new Date(Date.now() - 60_000) });

    it("finds the call the attempt placed by our call id, with Vapi's id", async () => {
      const placed = await dialer().dial(request);
      await dialer().dial({ ...request, metadata: { ...request.metadata, call_id: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f' } });
      stub.requests.length = 0;
      expect(await dialer().findCall(lookup())).toEqual({ providerCallId: placed.providerCallId, status: 'queued' });
      expect(stub.requests).toHaveLength(1);
      expect(stub.requests[0]).toMatchObject({ method: 'GET', path: '/call', status: 200, authorization: `Bearer ${stub.apiKey}` });
    });

    it('answers null when Vapi has no call for the attempt (another assistant, or outside the window)', async () => {
      await dialer().dial({ ...request, assistantId: 'another-assistant' });
      expect(await dialer().findCall(lookup())).toBeNull();
      await dialer().dial(request);
      // Created more than 20 minutes after the attempt started: not this attempt's call.
      expect(await dialer().findCall({ ...lookup(), dialStartedAt: new Date(Date.now() - 3_600_000) })).toBeNull();
    });

    it('throws a maybe-placed DialError when Vapi cannot tell', async () => {
      stub.failNext({ status: 500, message: 'Internal server error' });
      const failed = await dialError(dialer().findCall(lookup()));
      expect(failed).toMatchObject({ status: 500, retryable: true, maybePlaced: true });
      expect(failed.message).toBe('Vapi GET /call failed: 500: Internal server error');
      // A full page of other calls cannot rule ours out.
      const crowded = createVapiDialer({
        apiKey: 'k',
        fetch: () =>
          Promise.resolve(Response.json(Array.from({ length: VAPI_LIST_LIMIT }, (_, index) => ({ id: `other-${index}` })))),
      });
      expect((await dialError(crowded.findCall(lookup()))).message).toContain('too many to rule the call out');
      const garbled = createVapiDialer({ apiKey: 'k', fetch: () => Promise.resolve(new Response('<html/>', { status: 200 })) });
      expect(await dialError(garbled.findCall(lookup()))).toMatchObject({ maybePlaced: true });
    });

    it('leaves the attempt unknown on any refusal, a 4xx too, keeping Retry-After', async () => {
      // Unlike a dial's: a refused lookup settles nothing, so it is always worth asking again.
      stub.failNext({ status: 429, retryAfter: '30', message: 'Rate limit exceeded' }, { status: 400 });
      const limited = await dialError(dialer().findCall(lookup()));
      expect(limited).toMatchObject({ status: 429, retryable: true, maybePlaced: true, retryAfterSeconds: 30 });
      expect(limited.message).toBe('Vapi GET /call failed: 429: Rate limit exceeded');
      const refused = await dialError(dialer().findCall(lookup()));
      expect(refused).toMatchObject({ status: 400, retryable: true, maybePlaced: true, retryAfterSeconds: undefined });
      expect(refused.message).toBe('Vapi GET /call failed: 400: stubbed 400');
      const bare = createVapiDialer({ apiKey: 'k', fetch: () => Promise.resolve(new Response(null, { status: 502 })) });
      expect((await dialError(bare.findCall(lookup()))).message).toBe('Vapi GET /call failed: 502.');
    });

    it('leaves the attempt unknown when Vapi does not answer or cannot be reached', async () => {
      stub.hangNext();
      const silent = await dialError(dialer({ timeoutMs: 150 }).findCall(lookup()));
      expect(silent).toMatchObject({ retryable: true, maybePlaced: true, status: undefined });
      expect(silent.message).toBe('Vapi GET /call failed: no answer within 150 ms.');
      const unreachable = createVapiDialer({ apiKey: 'k', baseUrl: 'http://127.0.0.1:9', timeoutMs: 2_000 });
      const away = await dialError(unreachable.findCall(lookup()));
      expect(away).toMatchObject({ retryable: true, maybePlaced: true });
      expect(away.message).toBe('Vapi GET /call failed: Vapi could not be reached.');
    });
  });

  it('takes the base URL from VAPI_BASE_URL', () => {
    expect(vapiBaseUrl(() => undefined)).toBe(DEFAULT_VAPI_BASE_URL);
    expect(vapiBaseUrl((name) => (name === 'VAPI_BASE_URL' ? ' http://127.0.0.1:8089 ' : undefined)))
      .toBe('http://127.0.0.1:8089');
  });
});
