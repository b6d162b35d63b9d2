/**
 * Our own call-event format, for voice providers other than Vapi (documented
 * for them in docs/call-events.md): signed as Standard Webhooks
 * (https://www.standardwebhooks.com) with the org's whsec_ secret, the body
 * `{ type, call_id, occurred_at, data }` with `data` mirroring CallEvent in
 * snake_case. Strict where Vapi's adapter is loose: it is our format, so a
 * misspelt or unknown field is refused with a message saying which, instead
 * of being silently ignored.
 */
import { z } from 'zod';
import { sign } from '../standard-webhooks.ts';
import { checkBody, parseJsonBody } from './body.ts';
import { isFresh, sameSignature, type SignatureCheck } from './signature.ts';
import {
  CALL_EVENT_TYPES,
  CALL_STATUSES,
  type CallEvent,
  CallEventParseError,
  E164,
  isTerminalStatus,
} from './types.ts';

export const WEBHOOK_ID_HEADER = 'webhook-id';
export const WEBHOOK_TIMESTAMP_HEADER = 'webhook-timestamp';
export const WEBHOOK_SIGNATURE_HEADER = 'webhook-signature';

/**
 * Checks a message's Standard Webhooks headers against the org's secret:
 * `webhook-timestamp` (seconds) within five minutes of `nowMs`, then any of
 * the space-separated `v1,<base64>` signatures in `webhook-signature` equal
 * to our HMAC-SHA256 of `${webhook-id}.${webhook-timestamp}.${body}` (so a
 * sender rotating its secret may send two). Throws when the secret itself is
 * malformed (not whsec_ and base64): that is our configuration, not the
 * sender's fault.
 */
export async function verifyGenericSignature(
  headers: Headers,
  rawBody: string,
  secret: string,
  nowMs: number = Date.now(),
): Promise<SignatureCheck> {
  const id = headers.get(WEBHOOK_ID_HEADER)?.trim();
  const timestamp = headers.get(WEBHOOK_TIMESTAMP_HEADER)?.trim();
  const signatures = headers.get(WEBHOOK_SIGNATURE_HEADER)?.trim();
  if (!id || !timestamp || !signatures) return { ok: false, reason: 'missing_signature' };
  // Signed as written: only a canonical integer is the same text as the number we sign with.
  const seconds = Number(timestamp);
  if (!/^[1-9]\d{0,11}$/u.test(timestamp) || !isFresh(seconds, nowMs)) {
    return { ok: false, reason: 'stale_timestamp' };
  }
  // No secret (headers only, as for an org without one): refused like a wrong signature, with no HMAC to compute.
  if (secret === '') return { ok: false, reason: 'bad_signature' };
  const expected = await sign(secret, id, seconds, rawBody);
  const matched = signatures.split(' ').some((candidate) => sameSignature(candidate, expected));
  return matched ? { ok: true } : { ok: false, reason: 'bad_signature' };
}

const time = z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time with a zone, e.g. 2026-01-31T09:30:00Z' });
const phoneNumber = z.string().regex(E164, 'must be an E.164 number, e.g. +14155550123');
const millis = z.number().int('must be whole milliseconds').nonnegative();
const decimal = z.string().regex(/^\d{1,12}(\.\d{1,10})?$/u, 'must be a decimal string, e.g. "0.0425"');
/** What calls.cost holds (numeric(12,4)): under 100,000,000 once rounded to 4 places, as the database checks too. */
const costAmount = z
  .string()
  .regex(/^\d{1,8}(\.\d{1,10})?$/u, { message: 'must be a decimal string below 100000000, e.g. "0.0425"', abort: true })
  .refine((value) => Number(value) < 99_999_999.99995, 'must be below 100000000 once rounded to 4 decimal places');
const uuid = z.guid('must be a UUID');

const segment = z
  .strictObject({
    speaker: z.enum(['user', 'assistant', 'system']),
    text: z.string().trim().min(1).max(10_000),
    start_ms: millis,
    end_ms: millis,
    stt_ms: millis.optional(),
    llm_ms: millis.optional(),
    tts_ms: millis.optional(),
  })
  .refine((value) => value.end_ms >= value.start_ms, { message: 'end_ms must not be before start_ms', path: ['end_ms'] });

const latencies = z.strictObject({ stt_ms: millis.optional(), llm_ms: millis.optional(), tts_ms: millis.optional() });

const data = z.strictObject({
  direction: z.enum(['inbound', 'outbound', 'web']).optional(),
  from: phoneNumber.optional(),
  to: phoneNumber.optional(),
  status: z.enum(CALL_STATUSES).optional(),
  ended_reason: z.string().trim().min(1).max(200).optional(),
  started_at: time.optional(),
  ended_at: time.optional(),
  duration_seconds: z.number().nonnegative().optional(),
  transcript: z.array(segment).max(5_000).optional(),
  transcript_mode: z.enum(['append', 'replace']).optional(),
  recording_url: z.url({ protocol: /^https$/u, error: 'must be an https URL' }).max(2048).optional(),
  summary: z.string().trim().min(1).max(10_000).optional(),
  success_evaluation: z.string().max(1_000).optional(),
  sentiment: z.enum(['positive', 'neutral', 'negative', 'unknown']).optional(),
  sentiment_score: z.number().min(-1).max(1).optional(),
  cost: z
    .strictObject({
      amount: costAmount,
      currency: z.string().regex(/^[A-Z]{3}$/u, 'must be an ISO 4217 code in capitals, e.g. USD'),
      breakdown: z.record(z.string().min(1).max(50), decimal).optional(),
    })
    .optional(),
  latencies: latencies.optional(),
  metadata: z.strictObject({ call_id: uuid.optional(), bot_id: uuid.optional() }).optional(),
});

const genericBody = z
  .strictObject({
    type: z.enum(CALL_EVENT_TYPES),
    call_id: z.string().trim().min(1).max(255),
    occurred_at: time,
    data: data.default({}),
  })
  .superRefine((body, context) => {
    const problem = (message: string, field: string) =>
      context.addIssue({ code: 'custom', message, path: ['data', field] });
    const { status, transcript } = body.data;
    if (body.type === 'call.status' && status === undefined) problem('call.status needs a status', 'status');
    if (body.type === 'call.started' && status !== undefined && isTerminalStatus(status)) {
      problem('call.started cannot have a terminal status', 'status');
    }
    if (body.type === 'call.ended' && status !== undefined && !isTerminalStatus(status)) {
      problem('call.ended needs a terminal status (ended, failed, canceled, no_answer or busy)', 'status');
    }
    if (body.type === 'call.transcript' && (transcript === undefined || transcript.length === 0)) {
      problem('call.transcript needs at least one segment', 'transcript');
    }
    if (body.data.transcript_mode !== undefined && transcript === undefined) {
      problem('transcript_mode needs a transcript', 'transcript_mode');
    }
    if (body.data.sentiment_score !== undefined && body.data.sentiment === undefined) {
      problem('sentiment_score needs a sentiment', 'sentiment_score');
    }
  });

const WHAT = 'call event';

/**
 * The call event of a generic-format body; `eventId` is its webhook-id.
 * Throws CallEventParseError, with the fields at fault, for anything else.
 * Defaults: call.started is in_progress and started at occurred_at, call.ended
 * is ended at occurred_at, a transcript is appended (segments keyed by
 * speaker and start_ms) unless transcript_mode is 'replace'.
 */
export function parseGenericEvent(rawBody: string, eventId: string): CallEvent {
  const id = eventId.trim();
  if (id === '' || id.length > 255) throw new CallEventParseError('The webhook-id must be 1 to 255 characters');
  const body = checkBody(parseJsonBody(rawBody, WHAT), genericBody, WHAT);
  const { type, data } = body;
  const occurredAt = new Date(body.occurred_at).toISOString();
  const status = data.status ?? (type === 'call.started' ? 'in_progress' : type === 'call.ended' ? 'ended' : undefined);
  const iso = (value: string | undefined) => (value === undefined ? undefined : new Date(value).toISOString());
  const { metadata, cost } = data;
  return {
    eventId: id,
    provider: 'generic',
    type,
    providerCallId: body.call_id,
    occurredAt,
    direction: data.direction,
    from: data.from,
    to: data.to,
    status,
    endedReason: data.ended_reason,
    startedAt: iso(data.started_at) ?? (type === 'call.started' ? occurredAt : undefined),
    endedAt: iso(data.ended_at) ?? (type === 'call.ended' ? occurredAt : undefined),
    durationSeconds: data.duration_seconds,
    transcript: data.transcript?.map((item) => ({
      speaker: item.speaker,
      text: item.text,
      startMs: item.start_ms,
      endMs: item.end_ms,
      sttMs: item.stt_ms,
      llmMs: item.llm_ms,
      ttsMs: item.tts_ms,
    })),
    transcriptMode: data.transcript === undefined ? undefined : data.transcript_mode ?? 'append',
    recordingUrl: data.recording_url,
    summary: data.summary,
    successEvaluation: data.success_evaluation,
    sentiment: data.sentiment,
    sentimentScore: data.sentiment_score,
    cost: cost && { amount: cost.amount, currency: cost.currency, breakdown: cost.breakdown },
    latencies: data.latencies &&
      { sttMs: data.latencies.stt_ms, llmMs: data.latencies.llm_ms, ttsMs: data.latencies.tts_ms },
    metadata: metadata && { callId: metadata.call_id?.toLowerCase(), botId: metadata.bot_id?.toLowerCase() },
  };
}
