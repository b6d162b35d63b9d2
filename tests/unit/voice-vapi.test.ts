import { describe, expect, it } from 'vitest';
import { CallEventParseError } from '../../functions/_shared/voice/types.ts';
import {
  parseVapiEvent,
  redactVapiBody,
  toIsoTime,
  vapiEventId,
  verifyVapiSignature,
} from '../../functions/_shared/voice/vapi.ts';
import {
  signedVapiRequest,
  vapiCall,
  vapiEndOfCallReport,
  vapiMessage,
  vapiStatusUpdate,
  vapiTranscript,
} from '../support/vapi-stub.ts';

const received = new Date('2026-11-23T10:10:00.000Z');
const OUR_CALL = '0b6f1c2e-3d4a-4b5c-8d6e-7f8091a2b3c4';
const OUR_BOT = '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f';
const at = (iso: string) => Date.parse(iso);

const parse = (message: unknown) => parseVapiEvent(JSON.stringify(message), received);

describe('Vapi status-update', () => {
  const inbound = vapiCall({
    id: 'vapi-call-1',
    type: 'inboundPhoneCall',
    customerNumber: '+4915112345678',
    createdAt: '2026-11-23T10:00:00.000Z',
  });

  it('maps queued, ringing, in-progress and forwarding, with direction, numbers and times', () => {
    const queued = parse(vapiStatusUpdate('queued', { call: inbound, timestamp: at('2026-11-23T10:00:01.000Z') }));
    expect(queued).toEqual({
      eventId: expect.stringMatching(/^vapi_[0-9a-f]{64}$/),
      provider: 'vapi',
      type: 'call.status',
      providerCallId: 'vapi-call-1',
      occurredAt: '2026-11-23T10:00:01.000Z',
      direction: 'inbound',
      from: '+4915112345678',
      to: '+493012345678',
      status: 'queued',
    });
    expect(parse(vapiStatusUpdate('scheduled', { call: inbound }))?.status).toBe('queued');
    expect(parse(vapiStatusUpdate('ringing', { call: inbound }))).toMatchObject({ type: 'call.status', status: 'ringing' });

    const answered = parse(vapiStatusUpdate('in-progress', { call: inbound, timestamp: at('2026-11-23T10:00:05.000Z') }));
    // No call.startedAt yet: the message's time is when it happened (the database dates the start from it when it
    // applies the status), not a stated start that a late or repeated update would write over the real one.
    expect(answered).toMatchObject({ type: 'call.started', status: 'in_progress', occurredAt: '2026-11-23T10:00:05.000Z' });
    expect(answered?.startedAt).toBeUndefined();

    const forwarding = parse(
      vapiStatusUpdate('forwarding', { call: { ...inbound, startedAt: '2026-11-23T10:00:04.500Z' } }),
    );
    expect(forwarding).toMatchObject({ type: 'call.status', status: 'in_progress', startedAt: '2026-11-23T10:00:04.500Z' });
  });

  it('swaps the numbers for an outbound call, and has none for a web call', () => {
    const outbound = vapiCall({ type: 'outboundPhoneCall', customerNumber: '+14155550123', callId: OUR_CALL });
    expect(parse(vapiStatusUpdate('ringing', { call: outbound }))).toMatchObject({
      direction: 'outbound',
      from: '+493012345678',
      to: '+14155550123',
      metadata: { callId: OUR_CALL },
    });
    const web = parse(vapiStatusUpdate('in-progress', { call: vapiCall({ type: 'webCall' }) }));
    expect(web).toMatchObject({ direction: 'web' });
    expect(web?.from).toBeUndefined();
    expect(web?.to).toBeUndefined();
  });

  it('reads our ids from the call or the assistant, and ignores numbers that are not E.164', () => {
    const call = { ...vapiCall({ customerNumber: 'anonymous' }), metadata: { call_id: OUR_CALL.toUpperCase() } };
    const event = parse(vapiStatusUpdate('ringing', { call, assistantMetadata: { bot_id: OUR_BOT, call_id: 'nope' } }));
    expect(event?.metadata).toEqual({ callId: OUR_CALL, botId: OUR_BOT });
    expect(event?.from).toBeUndefined();
    expect(event?.to).toBe('+493012345678');
  });

  it('maps the ended reason: not answered, busy, canceled, failed, or a call that took place', () => {
    const ended = (endedReason: string) =>
      parse(vapiStatusUpdate('ended', { call: inbound, endedReason, timestamp: at('2026-11-23T10:03:00.000Z') }));
    expect(ended('customer-ended-call')).toMatchObject({
      type: 'call.ended',
      status: 'ended',
      endedReason: 'customer-ended-call',
      occurredAt: '2026-11-23T10:03:00.000Z',
    });
    expect(ended('customer-ended-call')?.endedAt).toBeUndefined();
    expect(ended('silence-timed-out')).toMatchObject({ status: 'ended', endedReason: 'silence-timed-out' });
    expect(ended('assistant-forwarded-call')?.status).toBe('ended');
    expect(ended('exceeded-max-duration')?.status).toBe('ended');
    expect(ended('customer-did-not-answer')).toMatchObject({ status: 'no_answer', endedReason: 'customer-did-not-answer' });
    expect(ended('voicemail')?.status).toBe('no_answer');
    expect(ended('customer-busy')).toMatchObject({ status: 'busy', endedReason: 'customer-busy' });
    expect(ended('manually-canceled')?.status).toBe('canceled');
    expect(ended('pipeline-error-openai-llm-failed')?.status).toBe('failed');
    expect(ended('call.start.error-subscription-insufficient-credits')?.status).toBe('failed');
    expect(ended('twilio-failed-to-connect-call')?.status).toBe('failed');
    expect(ended('call.in-progress.error-providerfault-outbound-sip-503-service-unavailable')?.status).toBe('failed');
    // The call's own endedReason when the message has none.
    const fromCall = parse(vapiStatusUpdate('ended', { call: { ...inbound, endedReason: 'customer-busy' } }));
    expect(fromCall).toMatchObject({ status: 'busy', endedReason: 'customer-busy' });
    expect(parse(vapiStatusUpdate('ended', { call: inbound }))).toMatchObject({ status: 'ended' });
  });

  it('keeps a status it does not track as a status event without a status', () => {
    const event = parse(vapiStatusUpdate('not-found', { call: inbound }));
    expect(event).toMatchObject({ type: 'call.status', providerCallId: 'vapi-call-1' });
    expect(event?.status).toBeUndefined();
  });

  it('dates a message without a timestamp by when it was received', () => {
    const message = vapiStatusUpdate('ringing', { call: inbound });
    delete message.message.timestamp;
    expect(parse(message)?.occurredAt).toBe(received.toISOString());
  });

  it('reads a timestamp beyond what a Date holds as absent (dated by when received), never throwing', () => {
    const far = parse(vapiStatusUpdate('ringing', { call: { ...vapiCall({ id: 'vapi-call-far' }), startedAt: 1e20 }, timestamp: 1e20 }));
    expect(far).toMatchObject({ type: 'call.status', providerCallId: 'vapi-call-far', occurredAt: received.toISOString() });
    expect(far?.startedAt).toBeUndefined();
    expect(parse(vapiStatusUpdate('ringing', { call: inbound, timestamp: -1e20 }))?.occurredAt).toBe(received.toISOString());
  });
});

describe('Vapi transcript', () => {
  const call = vapiCall({ id: 'vapi-call-2', startedAt: '2026-11-23T10:00:00.000Z' });

  it('appends a final transcript as one segment placed at its time in the call', () => {
    const event = parse(
      vapiTranscript('user', '  I would like to move my appointment. ', {
        call,
        timestamp: at('2026-11-23T10:00:12.340Z'),
      }),
    );
    expect(event).toMatchObject({
      type: 'call.transcript',
      providerCallId: 'vapi-call-2',
      occurredAt: '2026-11-23T10:00:12.340Z',
      transcriptMode: 'append',
      transcript: [{ speaker: 'user', text: 'I would like to move my appointment.', startMs: 12_340, endMs: 12_340 }],
    });
    const reply = parse(vapiTranscript('assistant', 'Of course.', { call, timestamp: at('2026-11-23T10:00:14.000Z') }));
    expect(reply?.transcript).toEqual([{ speaker: 'assistant', text: 'Of course.', startMs: 14_000, endMs: 14_000 }]);
  });

  it('marks a line it cannot place in the call untimed, so it is appended rather than keyed by a start time', () => {
    const undated = vapiCall({ id: 'vapi-call-3' });
    delete undated.createdAt;
    const line = parse(vapiTranscript('user', 'Hello?', { call: undated, timestamp: at('2026-11-23T10:00:05.000Z') }));
    expect(line?.transcript).toEqual([{ speaker: 'user', text: 'Hello?', startMs: 0, endMs: 0, untimed: true }]);
    // Dated before the call started: no place in it either.
    const early = parse(vapiTranscript('user', 'Hi', { call, timestamp: at('2026-11-23T09:59:59.000Z') }));
    expect(early?.transcript).toEqual([{ speaker: 'user', text: 'Hi', startMs: 0, endMs: 0, untimed: true }]);
  });

  it('ignores partial and blank transcripts', () => {
    expect(parse(vapiTranscript('user', 'I would li', { call, transcriptType: 'partial' }))).toBeNull();
    expect(parse(vapiTranscript('user', '   ', { call }))).toBeNull();
  });

  it('reads the final-only message type', () => {
    const message = vapiMessage('transcript[transcriptType="final"]', { role: 'user', transcript: 'Hello?' }, { call });
    expect(parse(message)?.transcript).toMatchObject([{ speaker: 'user', text: 'Hello?' }]);
  });
});

describe('Vapi end-of-call-report', () => {
  const startedAt = '2026-11-23T10:00:00.000Z';
  const start = at(startedAt);
  const messages = [
    { role: 'system', message: 'You are the reception of Example Dental. Be brief.', time: start, secondsFromStart: 0 },
    { role: 'bot', message: 'Example Dental, how can I help?', time: start + 500, endTime: start + 2_100, secondsFromStart: 0.5 },
    { role: 'user', message: 'I need to move my appointment.', time: start + 3_000, endTime: start + 5_250, secondsFromStart: 3 },
    { role: 'tool_calls', toolCalls: [{ id: 't1', function: { name: 'findSlot' } }], time: start + 5_400, secondsFromStart: 5.4 },
    { role: 'tool_call_result', name: 'findSlot', result: '{"slot":"Friday 9:00"}', time: start + 5_600, secondsFromStart: 5.6 },
    { role: 'bot', message: 'Friday at nine works. Shall I book it?', time: start + 6_100, endTime: start + 8_000, secondsFromStart: 6.1 },
    { role: 'user', message: 'Yes please, thanks.', time: start + 9_000, endTime: start + 10_200, secondsFromStart: 9 },
    { role: 'bot', message: 'Done. See you Friday.', time: start + 10_900, endTime: start + 12_400, secondsFromStart: 10.9 },
  ];
  const report = (overrides: Parameters<typeof vapiEndOfCallReport>[0] = {}) =>
    vapiEndOfCallReport({
      call: vapiCall({ id: 'vapi-call-3', type: 'outboundPhoneCall', customerNumber: '+14155550123', callId: OUR_CALL }),
      timestamp: at('2026-11-23T10:00:20.000Z'),
      startedAt,
      endedAt: '2026-11-23T10:00:13.000Z',
      messages,
      summary: 'The caller moved their appointment to Friday at 9:00.',
      successEvaluation: 'true',
      cost: 0.1234,
      costBreakdown: { stt: 0.01, llm: 0.0034, tts: 0.02, vapi: 0.05, transport: 0.04, total: 0.1234, llmPromptTokens: 812 },
      recordingUrl: 'https://storage.vapi.ai/vapi-call-3-mono.wav',
      performanceMetrics: {
        turnLatencies: [
          { modelLatency: 410.4, voiceLatency: 220, transcriberLatency: 95, endpointingLatency: 300, turnLatency: 1100 },
          { modelLatency: 380, voiceLatency: 240.6, transcriberLatency: 105, endpointingLatency: 310, turnLatency: 1050 },
        ],
        modelLatencyAverage: 395.2,
        voiceLatencyAverage: 230.3,
        transcriberLatencyAverage: 100,
      },
      ...overrides,
    });

  it('is the call ended, with the whole transcript, recording, summary, cost and latencies', () => {
    const event = parse(report());
    expect(event).toEqual({
      eventId: expect.stringMatching(/^vapi_[0-9a-f]{64}$/),
      provider: 'vapi',
      type: 'call.ended',
      providerCallId: 'vapi-call-3',
      occurredAt: '2026-11-23T10:00:20.000Z',
      direction: 'outbound',
      from: '+493012345678',
      to: '+14155550123',
      metadata: { callId: OUR_CALL },
      status: 'ended',
      endedReason: 'customer-ended-call',
      startedAt,
      endedAt: '2026-11-23T10:00:13.000Z',
      durationSeconds: 13,
      transcriptMode: 'replace',
      transcript: [
        { speaker: 'assistant', text: 'Example Dental, how can I help?', startMs: 500, endMs: 2_100 },
        {
          speaker: 'user',
          text: 'I need to move my appointment.',
          startMs: 3_000,
          endMs: 5_250,
        },
        // Replies to the caller carry that turn's latencies; the greeting answers no one.
        {
          speaker: 'assistant',
          text: 'Friday at nine works. Shall I book it?',
          startMs: 6_100,
          endMs: 8_000,
          sttMs: 95,
          llmMs: 410,
          ttsMs: 220,
        },
        { speaker: 'user', text: 'Yes please, thanks.', startMs: 9_000, endMs: 10_200 },
        {
          speaker: 'assistant',
          text: 'Done. See you Friday.',
          startMs: 10_900,
          endMs: 12_400,
          sttMs: 105,
          llmMs: 380,
          ttsMs: 241,
        },
      ],
      recordingUrl: 'https://storage.vapi.ai/vapi-call-3-mono.wav',
      summary: 'The caller moved their appointment to Friday at 9:00.',
      successEvaluation: 'true',
      cost: {
        amount: '0.1234',
        currency: 'USD',
        breakdown: { stt: '0.01', llm: '0.0034', tts: '0.02', vapi: '0.05', transport: '0.04' },
      },
      latencies: { sttMs: 100, llmMs: 395, ttsMs: 230 },
    });
  });

  it('maps a call that ended before anyone answered', () => {
    const noAnswer = parse(report({ endedReason: 'customer-did-not-answer', messages: [], summary: undefined }));
    expect(noAnswer).toMatchObject({ type: 'call.ended', status: 'no_answer', endedReason: 'customer-did-not-answer' });
    // Nothing was said: the complete transcript is empty.
    expect(noAnswer).toMatchObject({ transcript: [], transcriptMode: 'replace' });
    expect(parse(report({ endedReason: 'customer-busy' }))?.status).toBe('busy');
  });

  it('leaves per-turn latencies off when the turns do not match the replies, and averages them when Vapi does not', () => {
    const event = parse(report({
      performanceMetrics: { turnLatencies: [{ modelLatency: 400, voiceLatency: 200, transcriberLatency: 100 }] },
    }));
    expect(event?.transcript?.some((segment) => segment.llmMs !== undefined)).toBe(false);
    expect(event?.latencies).toEqual({ sttMs: 100, llmMs: 400, ttsMs: 200 });
  });

  it('takes what it can from a sparse report', () => {
    const { message } = report();
    delete message.analysis;
    delete message.cost;
    delete message.costBreakdown;
    // The call's own figures, older top-level fields, and an artifact without messages or metrics.
    Object.assign(message, {
      call: { ...(message.call as object), cost: 0.3, costBreakdown: { llm: 0.1 + 0.2 } },
      summary: ' Older reports put the summary here. ',
      artifact: { recording: { stereoUrl: 'https://storage.vapi.ai/stereo.wav' } },
    });
    const event = parse({ message });
    expect(event).toMatchObject({
      summary: 'Older reports put the summary here.',
      recordingUrl: 'https://storage.vapi.ai/stereo.wav',
      cost: { amount: '0.3', currency: 'USD', breakdown: { llm: '0.3' } },
    });
    expect(event?.transcript).toBeUndefined();
    expect(event?.transcriptMode).toBeUndefined();
    expect(event?.latencies).toBeUndefined();
  });

  it('drops enrichment fields in a shape it does not expect, instead of refusing the report', () => {
    const message = report();
    Object.assign(message.message, { cost: '0.12', endedAt: 'yesterday', durationSeconds: -1 });
    Object.assign(message.message.artifact as object, {
      recordingUrl: 'http://insecure.example/rec.wav',
      recording: { mono: { combinedUrl: 'javascript:alert(1)' } },
    });
    const event = parse(message);
    expect(event?.recordingUrl).toBeUndefined();
    expect(event?.cost?.amount).toBe('0.1234'); // from costBreakdown.total
    expect(event?.endedAt).toBeUndefined();
    expect(event?.durationSeconds).toBeUndefined();
    expect(event?.transcript).toHaveLength(5);
  });

  it('drops a cost that calls.cost cannot hold once rounded (numeric(12,4)), keeping the rest of the report', () => {
    const message = report();
    Object.assign(message.message, { cost: 99_999_999.99995, costBreakdown: { total: 1e9, llm: 0.02 } });
    const event = parse(message);
    expect(event?.cost).toBeUndefined();
    expect(event?.transcript).toHaveLength(5);
    Object.assign(message.message, { cost: 99_999_999.9999 });
    expect(Number(parse(message)?.cost?.amount)).toBeCloseTo(99_999_999.9999, 4);
  });
});

describe('Vapi messages we do not store, and malformed ones', () => {
  it('returns null for other message types', () => {
    expect(parse(vapiMessage('speech-update', { status: 'started', role: 'assistant', turn: 2 }))).toBeNull();
    expect(parse(vapiMessage('conversation-update', { messages: [] }))).toBeNull();
    expect(parse({ message: { type: 'hang' } })).toBeNull();
  });

  it('throws CallEventParseError for what is not a readable message', () => {
    const attempt = (raw: string) => {
      try {
        parseVapiEvent(raw, received);
      } catch (error) {
        return error;
      }
      return undefined;
    };
    const notJson = attempt('{"message":');
    expect(notJson).toBeInstanceOf(CallEventParseError);
    expect((notJson as Error).message).toBe('The Vapi server message is not JSON');

    expect(attempt(JSON.stringify({ type: 'status-update' }))).toBeInstanceOf(CallEventParseError);
    const noCall = attempt(JSON.stringify({ message: { type: 'status-update', status: 'ringing' } }));
    expect(noCall).toMatchObject({ issues: ['message.call: Invalid input: expected object, received undefined'] });
    const noId = vapiStatusUpdate('ringing');
    delete (noId.message.call as Record<string, unknown>).id;
    expect(attempt(JSON.stringify(noId))).toMatchObject({ issues: [expect.stringMatching(/^message\.call\.id: /)] });
    const badRole = vapiTranscript('user', 'hi');
    badRole.message.role = 'customer';
    expect(attempt(JSON.stringify(badRole))).toMatchObject({ issues: [expect.stringMatching(/^message\.role: /)] });
    const noStatus = vapiStatusUpdate('ringing');
    delete noStatus.message.status;
    expect(attempt(JSON.stringify(noStatus))).toBeInstanceOf(CallEventParseError);
  });
});

describe('Vapi event ids', () => {
  it('are the sha256 of the body: the same for a re-delivery, different for another message', () => {
    const body = JSON.stringify(vapiStatusUpdate('ringing', { timestamp: 1_795_000_000_000 }));
    const first = parseVapiEvent(body, received);
    const again = parseVapiEvent(body, new Date(received.getTime() + 60_000));
    expect(again?.eventId).toBe(first?.eventId);
    expect(first?.eventId).toBe(vapiEventId(body));
    // Known vector: sha256("") in hex.
    expect(vapiEventId('')).toBe('vapi_e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const other = parseVapiEvent(body.replace('1795000000000', '1795000000001'), received);
    expect(other?.eventId).not.toBe(first?.eventId);
  });
});

describe('verifyVapiSignature', () => {
  const secret = 'org-hmac-secret-7f3a';
  const body = vapiStatusUpdate('ringing');
  const now = Date.parse('2026-11-23T10:00:00.000Z');
  const nowSeconds = now / 1000;
  const check = (request: { body: string; headers: Record<string, string> }, options: { secret?: string; body?: string } = {}) =>
    verifyVapiSignature(new Headers(request.headers), options.body ?? request.body, options.secret ?? secret, now);

  it('accepts a message signed with the org secret, the timestamp in seconds or milliseconds', () => {
    expect(check(signedVapiRequest(body, secret, { timestamp: nowSeconds }))).toEqual({ ok: true });
    expect(check(signedVapiRequest(body, secret, { timestamp: now - 30_000 }))).toEqual({ ok: true });
    expect(check(signedVapiRequest(body, secret, { timestamp: nowSeconds + 300 }))).toEqual({ ok: true });
    expect(check(signedVapiRequest(body, secret, { timestamp: nowSeconds - 300 }))).toEqual({ ok: true });
  });

  it('accepts upper-case hex and a sha256= prefix', () => {
    const request = signedVapiRequest(body, secret, { timestamp: nowSeconds });
    const signature = request.headers['x-vapi-signature'];
    expect(check({ ...request, headers: { ...request.headers, 'x-vapi-signature': signature.toUpperCase() } }))
      .toEqual({ ok: true });
    expect(check({ ...request, headers: { ...request.headers, 'x-vapi-signature': `sha256=${signature}` } }))
      .toEqual({ ok: true });
  });

  it('refuses another secret, a changed body, a changed timestamp, or no secret', () => {
    const request = signedVapiRequest(body, secret, { timestamp: nowSeconds });
    const bad = { ok: false, reason: 'bad_signature' };
    expect(check(request, { secret: 'another-secret' })).toEqual(bad);
    expect(check(request, { body: request.body.replace('ringing', 'in-progress') })).toEqual(bad);
    expect(check({ ...request, headers: { ...request.headers, 'x-vapi-timestamp': String(nowSeconds + 1) } }))
      .toEqual(bad);
    expect(check(request, { secret: '' })).toEqual(bad);
  });

  it('refuses a message without signature or timestamp', () => {
    const request = signedVapiRequest(body, secret, { timestamp: nowSeconds });
    const missing = { ok: false, reason: 'missing_signature' };
    const { 'x-vapi-signature': _signature, ...noSignature } = request.headers;
    const { 'x-vapi-timestamp': _timestamp, ...noTimestamp } = request.headers;
    expect(check({ ...request, headers: noSignature })).toEqual(missing);
    expect(check({ ...request, headers: noTimestamp })).toEqual(missing);
    expect(check({ ...request, headers: { ...request.headers, 'x-vapi-signature': ' ' } })).toEqual(missing);
  });

  it('refuses a timestamp more than five minutes off, in seconds or milliseconds, or not a number', () => {
    const stale = { ok: false, reason: 'stale_timestamp' };
    expect(check(signedVapiRequest(body, secret, { timestamp: nowSeconds - 301 }))).toEqual(stale);
    expect(check(signedVapiRequest(body, secret, { timestamp: nowSeconds + 301 }))).toEqual(stale);
    expect(check(signedVapiRequest(body, secret, { timestamp: now - 301_000 }))).toEqual(stale);
    expect(check(signedVapiRequest(body, secret, { timestamp: '2026-11-23T10:00:00Z' }))).toEqual(stale);
    expect(check(signedVapiRequest(body, secret, { timestamp: '-1' }))).toEqual(stale);
  });
});

describe('redactVapiBody', () => {
  it('replaces the carrier and server credentials Vapi embeds, and keeps the rest', () => {
    const raw = JSON.stringify(vapiEndOfCallReport({ costBreakdown: { llm: 0.01, llmPromptTokens: 812 } }));
    const redacted = redactVapiBody(raw) as { message: Record<string, Record<string, unknown>> };
    expect(redacted.message.phoneNumber.twilioAuthToken).toBe('[redacted]');
    expect(redacted.message.phoneNumber.number).toBe('+493012345678');
    expect((redacted.message.assistant.server as Record<string, unknown>).headers).toBe('[redacted]');
    expect(redacted.message.costBreakdown).toEqual({ llm: 0.01, llmPromptTokens: 812 });
    expect(JSON.stringify(redacted)).not.toContain('twilio-auth-token-secret');
    expect(() => redactVapiBody('not json')).toThrow(CallEventParseError);
  });

  it('replaces the call\'s live links (listen, control, transport, web call), which would let a reader join the call', () => {
    const report = vapiEndOfCallReport({}) as { message: Record<string, unknown> };
    const call = {
      id: 'call-live-links',
      monitor: { listenUrl: 'wss://phone-call-websocket.aws-us-west-2-backend-production2.vapi.ai/listen-abc', controlUrl: 'https://phone-call-websocket.aws-us-west-2-backend-production2.vapi.ai/control-abc' },
      transport: { provider: 'twilio', callUrl: 'https://api.twilio.com/2010-04-01/Accounts/AC1/Calls/CA1.json' },
      webCallUrl: 'https://vapi.daily.co/room-abc',
    };
    const raw = JSON.stringify({ message: { ...report.message, call } });
    const stored = JSON.stringify(redactVapiBody(raw));
    for (const link of ['listen-abc', 'control-abc', 'Calls/CA1', 'room-abc']) expect(stored).not.toContain(link);
    expect(stored).toContain('call-live-links');
  });
});

describe('Vapi times', () => {
  it('takes numbers over 10^12 as milliseconds, else seconds, and ISO strings', () => {
    expect(toIsoTime(1_795_000_000_000)).toBe('2026-11-18T11:06:40.000Z');
    expect(toIsoTime(1_795_000_000)).toBe('2026-11-18T11:06:40.000Z');
    expect(toIsoTime('2026-11-23T10:00:00+01:00')).toBe('2026-11-23T09:00:00.000Z');
  });

  it('gives undefined for what a Date cannot hold (past 8.64e15 ms either way) or is not a time', () => {
    expect(toIsoTime(8.64e15)).toBe('+275760-09-13T00:00:00.000Z');
    // Seconds, the earliest a Date holds.
    expect(toIsoTime(-8.64e12)).toBe('-271821-04-20T00:00:00.000Z');
    for (const value of [8.64e15 + 1, 1e20, -8.64e12 - 1, -1e20, Number.POSITIVE_INFINITY, Number.NaN, 'soon', '', null, {}]) {
      expect(toIsoTime(value), String(value)).toBeUndefined();
    }
  });
});

describe('verifyVapiSignature: an org without a secret', () => {
  it('refuses a message signed with the empty key (an HMAC with an empty key is otherwise valid, and anyone can make one)', () => {
    const now = Date.parse('2026-11-23T10:00:00.000Z');
    const request = signedVapiRequest(vapiStatusUpdate('ringing'), '', { timestamp: now / 1000 });
    expect(verifyVapiSignature(new Headers(request.headers), request.body, '', now))
      .toEqual({ ok: false, reason: 'bad_signature' });
  });
});
