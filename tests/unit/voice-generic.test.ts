import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { parseGenericEvent, verifyGenericSignature } from '../../functions/_shared/voice/generic.ts';
import { CallEventParseError } from '../../functions/_shared/voice/types.ts';

const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;
const OUR_CALL = '0b6f1c2e-3d4a-4b5c-8d6e-7f8091a2b3c4';

/** Headers as the standardwebhooks package signs them: an implementation independent of ours. */
function signed(secret: string, id: string, body: string, timestamp: Date): Headers {
  const signature = new Webhook(secret).sign(id, timestamp, body);
  return new Headers({
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
    'webhook-signature': signature,
  });
}

describe('verifyGenericSignature', () => {
  const secret = newSecret();
  const body = JSON.stringify({ type: 'call.status', call_id: 'prov-1', occurred_at: '2026-11-23T10:00:00Z', data: {} });
  const now = new Date('2026-11-23T10:00:00.000Z');

  it('accepts a message signed by a Standard Webhooks library with the org secret', async () => {
    expect(await verifyGenericSignature(signed(secret, 'evt_1', body, now), body, secret, now.getTime()))
      .toEqual({ ok: true });
    // Five minutes either way.
    const early = new Date(now.getTime() - 300_000);
    expect(await verifyGenericSignature(signed(secret, 'evt_1', body, early), body, secret, now.getTime()))
      .toEqual({ ok: true });
  });

  it('accepts any of several signatures, as during the sender rotating its secret', async () => {
    const headers = signed(secret, 'evt_2', body, now);
    const other = signed(newSecret(), 'evt_2', body, now).get('webhook-signature');
    headers.set('webhook-signature', `${other} ${headers.get('webhook-signature')}`);
    expect(await verifyGenericSignature(headers, body, secret, now.getTime())).toEqual({ ok: true });
  });

  it('refuses another secret, a changed body or id, and a version other than v1', async () => {
    const bad = { ok: false, reason: 'bad_signature' };
    const headers = signed(secret, 'evt_3', body, now);
    expect(await verifyGenericSignature(headers, body, newSecret(), now.getTime())).toEqual(bad);
    expect(await verifyGenericSignature(headers, body.replace('prov-1', 'prov-2'), secret, now.getTime())).toEqual(bad);
    const otherId = new Headers(headers);
    otherId.set('webhook-id', 'evt_4');
    expect(await verifyGenericSignature(otherId, body, secret, now.getTime())).toEqual(bad);
    const v2 = new Headers(headers);
    v2.set('webhook-signature', headers.get('webhook-signature')!.replace('v1,', 'v2,'));
    expect(await verifyGenericSignature(v2, body, secret, now.getTime())).toEqual(bad);
  });

  it('refuses missing headers and stale or malformed timestamps', async () => {
    const headers = signed(secret, 'evt_5', body, now);
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const without = new Headers(headers);
      without.delete(name);
      expect(await verifyGenericSignature(without, body, secret, now.getTime()))
        .toEqual({ ok: false, reason: 'missing_signature' });
    }
    const stale = { ok: false, reason: 'stale_timestamp' };
    const old = new Date(now.getTime() - 301_000);
    expect(await verifyGenericSignature(signed(secret, 'evt_5', body, old), body, secret, now.getTime())).toEqual(stale);
    const future = new Date(now.getTime() + 301_000);
    expect(await verifyGenericSignature(signed(secret, 'evt_5', body, future), body, secret, now.getTime()))
      .toEqual(stale);
    for (const timestamp of ['1795000000.5', '01795000000', 'soon', String(now.getTime())]) {
      const odd = new Headers(headers);
      odd.set('webhook-timestamp', timestamp);
      expect(await verifyGenericSignature(odd, body, secret, now.getTime())).toEqual(stale);
    }
  });

  it('throws for a secret that is not whsec_ base64: our configuration, not the sender', async () => {
    await expect(verifyGenericSignature(signed(secret, 'evt_6', body, now), body, 'whsec_not base64!', now.getTime()))
      .rejects.toThrow(/base64/);
  });
});

describe('parseGenericEvent', () => {
  const event = (type: string, data: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ type, call_id: 'prov-call-9', occurred_at: '2026-11-23T11:00:00+01:00', data, ...extra });
  const failure = (raw: string, eventId = 'evt_x') => {
    try {
      parseGenericEvent(raw, eventId);
    } catch (error) {
      expect(error).toBeInstanceOf(CallEventParseError);
      return (error as CallEventParseError).issues;
    }
    throw new Error('expected a CallEventParseError');
  };

  it('maps every field to the CallEvent', () => {
    const raw = event('call.ended', {
      direction: 'outbound',
      from: '+493012345678',
      to: '+14155550123',
      status: 'ended',
      ended_reason: 'callee-hung-up',
      started_at: '2026-11-23T09:58:00Z',
      ended_at: '2026-11-23T10:00:00Z',
      duration_seconds: 120,
      transcript: [
        { speaker: 'assistant', text: 'Hello, Example Dental.', start_ms: 0, end_ms: 1_400 },
        { speaker: 'user', text: 'Hi, I need to reschedule.', start_ms: 2_000, end_ms: 3_900 },
        {
          speaker: 'assistant',
          text: 'Sure, when suits you?',
          start_ms: 4_600,
          end_ms: 6_000,
          stt_ms: 90,
          llm_ms: 420,
          tts_ms: 210,
        },
      ],
      transcript_mode: 'replace',
      recording_url: 'https://recordings.example.com/prov-call-9.mp3',
      summary: 'The caller rescheduled.',
      success_evaluation: 'pass',
      sentiment: 'positive',
      sentiment_score: 0.6,
      cost: { amount: '0.0812', currency: 'EUR', breakdown: { telephony: '0.03', ai: '0.0512' } },
      latencies: { stt_ms: 90, llm_ms: 420, tts_ms: 210 },
      metadata: { call_id: OUR_CALL.toUpperCase() },
    });
    expect(parseGenericEvent(raw, ' evt_01HX ')).toEqual({
      eventId: 'evt_01HX',
      provider: 'generic',
      type: 'call.ended',
      providerCallId: 'prov-call-9',
      occurredAt: '2026-11-23T10:00:00.000Z',
      direction: 'outbound',
      from: '+493012345678',
      to: '+14155550123',
      status: 'ended',
      endedReason: 'callee-hung-up',
      startedAt: '2026-11-23T09:58:00.000Z',
      endedAt: '2026-11-23T10:00:00.000Z',
      durationSeconds: 120,
      transcript: [
        { speaker: 'assistant', text: 'Hello, Example Dental.', startMs: 0, endMs: 1_400 },
        { speaker: 'user', text: 'Hi, I need to reschedule.', startMs: 2_000, endMs: 3_900 },
        { speaker: 'assistant', text: 'Sure, when suits you?', startMs: 4_600, endMs: 6_000, sttMs: 90, llmMs: 420, ttsMs: 210 },
      ],
      transcriptMode: 'replace',
      recordingUrl: 'https://recordings.example.com/prov-call-9.mp3',
      summary: 'The caller rescheduled.',
      successEvaluation: 'pass',
      sentiment: 'positive',
      sentimentScore: 0.6,
      cost: { amount: '0.0812', currency: 'EUR', breakdown: { telephony: '0.03', ai: '0.0512' } },
      latencies: { sttMs: 90, llmMs: 420, ttsMs: 210 },
      metadata: { callId: OUR_CALL },
    });
  });

  it('fills in the defaults of each type', () => {
    expect(parseGenericEvent(event('call.started', { direction: 'inbound' }), 'e1')).toMatchObject({
      type: 'call.started',
      status: 'in_progress',
      startedAt: '2026-11-23T10:00:00.000Z',
    });
    expect(parseGenericEvent(event('call.started', { status: 'ringing' }), 'e2')).toMatchObject({ status: 'ringing' });
    expect(parseGenericEvent(JSON.stringify({ type: 'call.ended', call_id: 'c', occurred_at: '2026-11-23T10:00:00Z' }), 'e3'))
      .toMatchObject({ status: 'ended', endedAt: '2026-11-23T10:00:00.000Z' });
    expect(parseGenericEvent(event('call.ended', { status: 'no_answer' }), 'e4')).toMatchObject({ status: 'no_answer' });
    const transcript = parseGenericEvent(
      event('call.transcript', { transcript: [{ speaker: 'user', text: 'Hello?', start_ms: 500, end_ms: 900 }] }),
      'e5',
    );
    expect(transcript).toMatchObject({ transcriptMode: 'append', transcript: [{ speaker: 'user', startMs: 500 }] });
    expect(transcript.status).toBeUndefined();
    expect(parseGenericEvent(event('call.status', { status: 'busy' }), 'e6')).toMatchObject({ status: 'busy' });
  });

  it('refuses unknown and misspelt fields, naming them', () => {
    expect(failure(event('call.status', { status: 'ringing', endedReason: 'x' }))).toEqual([
      'data: Unrecognized key: "endedReason"',
    ]);
    expect(failure(event('call.status', { status: 'ringing' }, { extra: true }))).toEqual(['(body): Unrecognized key: "extra"']);
    expect(failure(event('call.paused', {}))[0]).toMatch(/^type: /);
  });

  it('explains what is wrong with a field', () => {
    expect(failure(event('call.started', { from: '0301234567' }))).toEqual([
      'data.from: must be an E.164 number, e.g. +14155550123',
    ]);
    expect(failure(event('call.ended', { cost: { amount: 0.08, currency: 'EUR' } }))[0]).toMatch(/^data\.cost\.amount: /);
    // calls.cost is numeric(12,4): more would overflow in the database (a 5xx the provider retries for ever).
    expect(failure(event('call.ended', { cost: { amount: '123456789', currency: 'USD' } }))).toEqual([
      'data.cost.amount: must be a decimal string below 100000000, e.g. "0.0425"',
    ]);
    expect(failure(event('call.ended', { cost: { amount: '99999999.99999', currency: 'USD' } }))).toEqual([
      'data.cost.amount: must be below 100000000 once rounded to 4 decimal places',
    ]);
    expect(parseGenericEvent(event('call.ended', { cost: { amount: '99999999.9999', currency: 'USD' } }), 'e9'))
      .toMatchObject({ cost: { amount: '99999999.9999' } });
    expect(failure(event('call.ended', { cost: { amount: '0.08', currency: 'eur' } }))).toEqual([
      'data.cost.currency: must be an ISO 4217 code in capitals, e.g. USD',
    ]);
    expect(failure(event('call.ended', { recording_url: 'http://x.example/r.mp3' }))).toEqual([
      'data.recording_url: must be an https URL',
    ]);
    expect(failure(JSON.stringify({ type: 'call.status', call_id: 'c', occurred_at: 'today', data: { status: 'busy' } })))
      .toEqual(['occurred_at: must be an ISO 8601 date-time with a zone, e.g. 2026-01-31T09:30:00Z']);
    expect(failure(event('call.transcript', { transcript: [{ speaker: 'user', text: 'x', start_ms: 900, end_ms: 500 }] })))
      .toEqual(['data.transcript.0.end_ms: end_ms must not be before start_ms']);
    expect(failure(event('call.ended', { sentiment_score: 2 }))[0]).toMatch(/^data\.sentiment_score: /);
    expect(failure(event('call.ended', { metadata: { call_id: 'ours' } }))).toEqual(['data.metadata.call_id: must be a UUID']);
  });

  it('checks that the status and the fields fit the event type', () => {
    expect(failure(event('call.status', {}))).toEqual(['data.status: call.status needs a status']);
    expect(failure(event('call.ended', { status: 'ringing' }))).toEqual([
      'data.status: call.ended needs a terminal status (ended, failed, canceled, no_answer or busy)',
    ]);
    expect(failure(event('call.started', { status: 'failed' }))).toEqual([
      'data.status: call.started cannot have a terminal status',
    ]);
    expect(failure(event('call.transcript', { transcript: [] }))).toEqual([
      'data.transcript: call.transcript needs at least one segment',
    ]);
    expect(failure(event('call.ended', { transcript_mode: 'replace' }))).toEqual([
      'data.transcript_mode: transcript_mode needs a transcript',
    ]);
    expect(failure(event('call.ended', { sentiment_score: 0.5 }))).toEqual([
      'data.sentiment_score: sentiment_score needs a sentiment',
    ]);
  });

  it('refuses a body that is not JSON, and an empty event id', () => {
    expect(() => parseGenericEvent('{', 'e')).toThrow('The call event is not JSON');
    expect(() => parseGenericEvent(event('call.status', { status: 'busy' }), '  ')).toThrow(CallEventParseError);
  });
});
