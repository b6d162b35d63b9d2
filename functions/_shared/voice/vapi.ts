/**
 * Vapi's server messages as call events, and the signature of Vapi's HMAC
 * credential.
 *
 * Shapes: the envelope `{ "message": { "type", "call", "timestamp", ... } }`
 * and the status values from Vapi's server events page
 * (https://docs.vapi.ai/server-url/events); the fields from Vapi's API
 * definition as its TypeScript server SDK carries it
 * (github.com/VapiAI/server-sdk-typescript, src/api/types):
 * ServerMessageStatusUpdate (status, endedReason), ServerMessageTranscript
 * (role user|assistant, transcriptType partial|final, transcript; type
 * 'transcript' or 'transcript[transcriptType="final"]'),
 * ServerMessageEndOfCallReport (endedReason, cost, artifact, analysis,
 * startedAt, endedAt), Call (id, type, createdAt, startedAt, endedAt,
 * customer.number, phoneNumber.number, cost, costBreakdown,
 * assistantOverrides.metadata), Artifact (messages, recordingUrl,
 * stereoRecordingUrl, recording.mono.combinedUrl, recording.stereoUrl,
 * performanceMetrics), UserMessage/BotMessage (role, message, time, endTime,
 * secondsFromStart), PerformanceMetrics and TurnLatency (model, voice and
 * transcriber latencies, per turn and averaged), CostBreakdown (transport,
 * stt, llm, tts, vapi, chat, total; USD), Analysis (summary,
 * successEvaluation).
 *
 * Vapi adds fields and values often, so the parse is loose: unknown fields
 * are ignored, and an enrichment field (a time, a cost, a URL) in a shape we
 * do not expect is left out rather than refusing the message; the raw event
 * keeps it. Only what an event cannot do without is required: the message
 * type, `call.id`, and the status or transcript of the messages that carry one.
 */
import { createHash, createHmac } from 'node:crypto';
import { z } from 'zod';
import { checkBody, parseJsonBody } from './body.ts';
import { isFresh, sameSignature, type SignatureCheck } from './signature.ts';
import {
  type CallCost,
  type CallDirection,
  type CallEvent,
  type CallStatus,
  E164,
  isTerminalStatus,
  type StageLatencies,
  type TerminalCallStatus,
  type TranscriptSegment,
} from './types.ts';

/** The headers to configure on Vapi's HMAC credential (its defaults are x-signature and x-timestamp). */
export const VAPI_SIGNATURE_HEADER = 'x-vapi-signature';
export const VAPI_TIMESTAMP_HEADER = 'x-vapi-timestamp';

/** Dropped, rather than refusing the message, when Vapi sends it in another shape. */
function lenient<T extends z.ZodType>(schema: T) {
  return schema.optional().catch(undefined);
}

const text = lenient(z.string());
// Below what calls.cost (numeric(12,4)) holds once rounded to 4 places: a larger cost would refuse the whole report.
const usd = lenient(z.number().nonnegative().lt(99_999_999.99995));
const ms = lenient(z.number().nonnegative());
// Recordings are fetched later to be copied into Storage: https only.
const url = lenient(z.url({ protocol: /^https$/u }));
/** ISO 8601 as Vapi sends times, or epoch milliseconds (a message's `timestamp`); normalized to ISO 8601 UTC. */
const time = z.unknown().transform(toIsoTime).optional();
const party = lenient(z.object({ number: text }));
const metadata = lenient(z.record(z.string(), z.unknown()));

const costBreakdown = z.object({
  transport: usd,
  stt: usd,
  llm: usd,
  tts: usd,
  vapi: usd,
  chat: usd,
  total: usd,
});

const call = z.object({
  id: z.string().min(1),
  type: text,
  createdAt: time,
  startedAt: time,
  endedAt: time,
  endedReason: text,
  customer: party,
  phoneNumber: party,
  cost: usd,
  costBreakdown: lenient(costBreakdown),
  // Older calls carry `metadata`; the API takes ours in assistantOverrides.metadata (see dialer.ts).
  metadata,
  assistantOverrides: lenient(z.object({ metadata })),
});

// What every message we read carries besides its own fields.
const common = {
  timestamp: time,
  call,
  customer: party,
  phoneNumber: party,
  assistant: lenient(z.object({ metadata })),
};

const statusUpdate = z.object({
  type: z.literal('status-update'),
  status: z.string(),
  endedReason: text,
  ...common,
});

const FINAL_ONLY_TRANSCRIPT = 'transcript[transcriptType="final"]';
const transcriptMessage = z.object({
  type: z.enum(['transcript', FINAL_ONLY_TRANSCRIPT]),
  role: z.enum(['user', 'assistant']),
  transcriptType: lenient(z.enum(['partial', 'final'])),
  transcript: z.string(),
  ...common,
});

const turnLatency = z.object({ modelLatency: ms, voiceLatency: ms, transcriberLatency: ms });
const performanceMetrics = z.object({
  turnLatencies: lenient(z.array(turnLatency)),
  modelLatencyAverage: ms,
  voiceLatencyAverage: ms,
  transcriberLatencyAverage: ms,
});

const artifact = z.object({
  // Items are read one by one (spokenMessage): tool calls and results share the array.
  messages: lenient(z.array(z.unknown())),
  recordingUrl: url,
  stereoRecordingUrl: url,
  recording: lenient(z.object({ stereoUrl: url, mono: lenient(z.object({ combinedUrl: url })) })),
  performanceMetrics: lenient(performanceMetrics),
});

// 'bot' in Vapi's payloads; 'assistant' in the events page's example.
const spokenMessage = z.object({
  role: z.enum(['user', 'bot', 'assistant']),
  message: z.string(),
  time: lenient(z.number()),
  endTime: lenient(z.number()),
  secondsFromStart: lenient(z.number().nonnegative()),
});

const endOfCallReport = z.object({
  type: z.literal('end-of-call-report'),
  endedReason: text,
  cost: usd,
  costBreakdown: lenient(costBreakdown),
  artifact: lenient(artifact),
  analysis: lenient(z.object({ summary: text, successEvaluation: lenient(z.union([z.string(), z.number(), z.boolean()])) })),
  startedAt: time,
  endedAt: time,
  // Not in the published schema but in Vapi's reports; otherwise endedAt − startedAt.
  durationSeconds: lenient(z.number().nonnegative()),
  // Older reports carried these at the top level.
  summary: text,
  recordingUrl: url,
  ...common,
});

type CommonMessage = z.infer<z.ZodObject<typeof common>>;

const envelope = z.object({ message: z.object({ type: z.string() }) });

const WHAT = 'Vapi server message';

/**
 * The call event a Vapi server message stands for, or null for a message
 * that changes nothing we store: other message types (speech-update,
 * conversation-update, tool-calls...), partial transcripts and blank ones.
 * Throws CallEventParseError for a body that is not a server message or
 * lacks what its type needs. `receivedAt` dates messages without a timestamp.
 */
export function parseVapiEvent(rawBody: string, receivedAt: Date): CallEvent | null {
  const body = parseJsonBody(rawBody, WHAT);
  const { type } = checkBody(body, envelope, WHAT).message;
  const eventId = vapiEventId(rawBody);
  const received = receivedAt.toISOString();
  switch (type) {
    case 'status-update':
      return statusEvent(eventId, checkBody(body, z.object({ message: statusUpdate }), WHAT).message, received);
    case 'transcript':
    case FINAL_ONLY_TRANSCRIPT:
      return transcriptEvent(eventId, checkBody(body, z.object({ message: transcriptMessage }), WHAT).message, received);
    case 'end-of-call-report':
      return reportEvent(eventId, checkBody(body, z.object({ message: endOfCallReport }), WHAT).message, received);
    default:
      return null;
  }
}

/**
 * Vapi's messages carry no id of their own, so the event id is derived from
 * the body: `vapi_` and the sha256 of the raw body in hex. A re-delivery of
 * the same message has the same body (the signature's timestamp is a header)
 * and so the same id, and is ignored as a duplicate. Two messages that differ
 * in any byte (every message has its own `timestamp`) get different ids.
 */
export function vapiEventId(rawBody: string): string {
  return `vapi_${createHash('sha256').update(rawBody).digest('hex')}`;
}

function statusEvent(eventId: string, message: z.infer<typeof statusUpdate>, received: string): CallEvent {
  const endedReason = message.endedReason ?? message.call.endedReason;
  const status = callStatus(message.status, endedReason);
  const ended = status !== undefined && isTerminalStatus(status);
  const occurredAt = message.timestamp ?? received;
  const facts = callFacts(message);
  // 'forwarding' is in_progress too, but the call started earlier: only 'in-progress' starts it.
  const type = message.status === 'in-progress' ? 'call.started' : ended ? 'call.ended' : 'call.status';
  return {
    eventId,
    provider: 'vapi',
    type,
    occurredAt,
    ...facts,
    status,
    endedReason: ended ? endedReason : undefined,
    // Only the times Vapi states. The message's own timestamp is its occurredAt, from which the database
    // dates a start or an end it applies; stated as a time, it would also overwrite the end-of-call report's
    // exact times (and the duration it states) whenever the update came late or was delivered again.
    startedAt: facts.startedAt,
    endedAt: facts.endedAt,
  };
}

/**
 * A final transcript as one segment to append. Vapi's live transcript says
 * only when it was sent, which is about when the utterance ended, so the
 * segment is placed there (start = end, ms from the call's start, or from its
 * creation before it was answered); the end-of-call report replaces these
 * with the exact timings. Without a time to place it by (no message
 * `timestamp`, a call stating neither start nor creation, or a message
 * dated before that) the segment is `untimed`: appended in arrival order
 * rather than keyed by a start time every such line would share (0), which
 * made them overwrite each other.
 */
function transcriptEvent(
  eventId: string,
  message: z.infer<typeof transcriptMessage>,
  received: string,
): CallEvent | null {
  const final = message.transcriptType === 'final' ||
    (message.transcriptType === undefined && message.type === FINAL_ONLY_TRANSCRIPT);
  const spoken = message.transcript.trim();
  if (!final || spoken === '') return null;
  const occurredAt = message.timestamp ?? received;
  const facts = callFacts(message);
  const reference = facts.startedAt ?? message.call.createdAt;
  const offset = message.timestamp === undefined || reference === undefined
    ? Number.NaN
    : Date.parse(message.timestamp) - Date.parse(reference);
  const timed = Number.isFinite(offset) && offset >= 0;
  const at = timed ? offset : 0;
  return {
    eventId,
    provider: 'vapi',
    type: 'call.transcript',
    occurredAt,
    ...facts,
    transcript: [{ speaker: message.role, text: spoken, startMs: at, endMs: at, ...(timed ? {} : { untimed: true }) }],
    transcriptMode: 'append',
  };
}

function reportEvent(eventId: string, message: z.infer<typeof endOfCallReport>, received: string): CallEvent {
  const facts = callFacts(message);
  const endedReason = message.endedReason ?? message.call.endedReason;
  const startedAt = message.startedAt ?? facts.startedAt;
  const endedAt = message.endedAt ?? facts.endedAt;
  const { artifact, analysis } = message;
  const metrics = artifact?.performanceMetrics;
  const transcript = artifact?.messages === undefined
    ? undefined
    : withTurnLatencies(segmentsOf(artifact.messages, startedAt), metrics?.turnLatencies ?? []);
  const summary = (analysis?.summary ?? message.summary)?.trim();
  return {
    eventId,
    provider: 'vapi',
    type: 'call.ended',
    occurredAt: message.timestamp ?? endedAt ?? received,
    ...facts,
    status: endedStatus(endedReason),
    endedReason,
    startedAt,
    endedAt,
    durationSeconds: message.durationSeconds ??
      (startedAt && endedAt ? Math.max(0, Date.parse(endedAt) - Date.parse(startedAt)) / 1000 : undefined),
    transcript,
    transcriptMode: transcript === undefined ? undefined : 'replace',
    recordingUrl: artifact?.recordingUrl ?? artifact?.recording?.mono?.combinedUrl ?? artifact?.recording?.stereoUrl ??
      artifact?.stereoRecordingUrl ?? message.recordingUrl,
    summary: summary || undefined,
    successEvaluation: analysis?.successEvaluation === undefined ? undefined : String(analysis.successEvaluation),
    cost: costOf(message.cost ?? message.call.cost, message.costBreakdown ?? message.call.costBreakdown),
    latencies: latenciesOf(metrics),
  };
}

const DIRECTIONS: Record<string, CallDirection> = {
  inboundPhoneCall: 'inbound',
  outboundPhoneCall: 'outbound',
  webCall: 'web',
  'vapi.websocketCall': 'web',
};

/** What every message says about the call itself. */
function callFacts(message: CommonMessage) {
  const direction = message.call.type === undefined ? undefined : DIRECTIONS[message.call.type];
  const customer = e164(message.customer?.number ?? message.call.customer?.number);
  const ours = e164(message.phoneNumber?.number ?? message.call.phoneNumber?.number);
  const sources = [message.call.assistantOverrides?.metadata, message.call.metadata, message.assistant?.metadata];
  const callId = firstUuid(sources, 'call_id');
  const botId = firstUuid(sources, 'bot_id');
  return {
    providerCallId: message.call.id,
    direction,
    from: direction === 'inbound' ? customer : direction === 'outbound' ? ours : undefined,
    to: direction === 'inbound' ? ours : direction === 'outbound' ? customer : undefined,
    startedAt: message.call.startedAt,
    endedAt: message.call.endedAt,
    metadata: callId || botId ? { callId, botId } : undefined,
  };
}

function callStatus(status: string, endedReason: string | undefined): CallStatus | undefined {
  switch (status) {
    case 'scheduled':
    case 'queued':
      return 'queued';
    case 'ringing':
      return 'ringing';
    case 'in-progress':
    case 'forwarding':
      return 'in_progress';
    case 'ended':
      return endedStatus(endedReason);
    default:
      // 'not-found', 'deletion-failed' and values Vapi adds later: not a lifecycle step we track.
      return undefined;
  }
}

/**
 * Our terminal status for Vapi's endedReason. Reasons from Vapi's list: one
 * that ended before anyone answered is no_answer (including voicemail: no
 * person answered), busy or canceled; an error on Vapi's, a model's, a
 * transcriber's, a voice's or the carrier's side is failed (their names say
 * error, failed, fault, ...); everything else (customer-ended-call,
 * assistant-ended-call, silence-timed-out, exceeded-max-duration, ...) is a
 * call that took place: ended. The reason itself is kept verbatim.
 */
function endedStatus(endedReason: string | undefined): TerminalCallStatus {
  if (endedReason === undefined) return 'ended';
  switch (endedReason) {
    case 'customer-did-not-answer':
    case 'voicemail':
      return 'no_answer';
    case 'customer-busy':
      return 'busy';
    case 'manually-canceled':
    case 'scheduled-call-deleted':
    case 'call-deleted':
    case 'call.ringing.sip-inbound-caller-hungup-before-call-connect':
      return 'canceled';
  }
  return FAILURE.test(endedReason) ? 'failed' : 'ended';
}

const FAILURE =
  /error|fail|fault|not-found|not-valid|misdialed|rejected|no-call-received|microphone-permission|join-timed-out/u;

/** The spoken messages of artifact.messages as segments; the system prompt and tool calls are not speech. */
function segmentsOf(messages: unknown[], startedAt: string | undefined): TranscriptSegment[] {
  const callStart = startedAt === undefined ? undefined : Date.parse(startedAt);
  const segments: TranscriptSegment[] = [];
  let previousEnd = 0;
  for (const item of messages) {
    const parsed = spokenMessage.safeParse(item);
    if (!parsed.success) continue;
    const { role, message, time: sentAt, endTime, secondsFromStart } = parsed.data;
    const spoken = message.trim();
    if (spoken === '') continue;
    // secondsFromStart is the documented offset; a message without it is placed by its clock time, else after the last.
    const startMs = secondsFromStart !== undefined
      ? Math.round(secondsFromStart * 1000)
      : sentAt !== undefined && callStart !== undefined
      ? Math.max(0, Math.round(sentAt - callStart))
      : previousEnd;
    // `duration`'s unit differs between Vapi's docs and payloads; time and endTime are both epoch ms.
    const lengthMs = sentAt !== undefined && endTime !== undefined && endTime >= sentAt ? endTime - sentAt : 0;
    const segment: TranscriptSegment = {
      speaker: role === 'user' ? 'user' : 'assistant',
      text: spoken,
      startMs,
      endMs: startMs + Math.round(lengthMs),
    };
    segments.push(segment);
    previousEnd = segment.endMs;
  }
  return segments;
}

type TurnLatency = z.infer<typeof turnLatency>;

/**
 * Vapi's per-turn latencies on the assistant's replies (an assistant segment
 * right after a user one), in order. The list does not say which segment a
 * turn belongs to, so they are attached only when the counts agree; else the
 * averages are all there is.
 */
function withTurnLatencies(segments: TranscriptSegment[], turns: TurnLatency[]): TranscriptSegment[] {
  const replies = segments.flatMap((segment, index) =>
    segment.speaker === 'assistant' && segments[index - 1]?.speaker === 'user' ? [index] : []
  );
  if (turns.length === 0 || turns.length !== replies.length) return segments;
  return segments.map((segment, index) => {
    const turn = turns[replies.indexOf(index)];
    if (turn === undefined) return segment;
    return {
      ...segment,
      sttMs: roundMs(turn.transcriberLatency),
      llmMs: roundMs(turn.modelLatency),
      ttsMs: roundMs(turn.voiceLatency),
    };
  });
}

function latenciesOf(metrics: z.infer<typeof performanceMetrics> | undefined): StageLatencies | undefined {
  if (metrics === undefined) return undefined;
  const turns = metrics.turnLatencies ?? [];
  const average = (reported: number | undefined, pick: (turn: TurnLatency) => number | undefined) => {
    if (reported !== undefined) return roundMs(reported);
    const values = turns.map(pick).filter((value) => value !== undefined);
    return values.length === 0 ? undefined : roundMs(values.reduce((sum, value) => sum + value, 0) / values.length);
  };
  const latencies = {
    sttMs: average(metrics.transcriberLatencyAverage, (turn) => turn.transcriberLatency),
    llmMs: average(metrics.modelLatencyAverage, (turn) => turn.modelLatency),
    ttsMs: average(metrics.voiceLatencyAverage, (turn) => turn.voiceLatency),
  };
  return Object.values(latencies).some((value) => value !== undefined) ? latencies : undefined;
}

const COST_PARTS = ['stt', 'llm', 'tts', 'vapi', 'transport', 'chat'] as const;

function costOf(amount: number | undefined, breakdown: z.infer<typeof costBreakdown> | undefined): CallCost | undefined {
  const total = amount ?? breakdown?.total;
  if (total === undefined) return undefined;
  const parts = COST_PARTS.flatMap((part) => {
    const value = breakdown?.[part];
    return value === undefined ? [] : [[part, decimal(value)] as const];
  });
  return {
    amount: decimal(total),
    currency: 'USD',
    breakdown: parts.length === 0 ? undefined : Object.fromEntries(parts),
  };
}

/** A dollar amount as a decimal string: ten places are finer than any price, and drop float noise (0.1 + 0.2). */
function decimal(value: number): string {
  return value.toFixed(10).replace(/\.?0+$/u, '');
}

function roundMs(value: number | undefined): number | undefined {
  return value === undefined ? undefined : Math.round(value);
}

function e164(value: string | undefined): string | undefined {
  return value !== undefined && E164.test(value) ? value : undefined;
}

function firstUuid(sources: (Record<string, unknown> | undefined)[], key: string): string | undefined {
  for (const source of sources) {
    const parsed = z.guid().safeParse(source?.[key]);
    if (parsed.success) return parsed.data.toLowerCase();
  }
  return undefined;
}

/** The furthest a Date reaches from the epoch, either way (ECMA-262: 100 million days). */
const MAX_DATE_MILLIS = 8.64e15;

/** A time as ISO 8601, or undefined for one that is not a time or lies beyond what a Date holds (as if absent). */
export function toIsoTime(value: unknown): string | undefined {
  let millis: number;
  if (typeof value === 'number' && Number.isFinite(value)) millis = value > 1e12 ? value : value * 1000;
  else if (typeof value === 'string' && value !== '') millis = Date.parse(value);
  else return undefined;
  return Number.isFinite(millis) && Math.abs(millis) <= MAX_DATE_MILLIS ? new Date(millis).toISOString() : undefined;
}

/**
 * Checks a Vapi message against the org's HMAC credential, configured with
 * algorithm SHA256, signature header x-vapi-signature, timestamp header
 * x-vapi-timestamp, payload format `{timestamp}.{body}`, hex encoding and no
 * prefix (a `sha256=` prefix is accepted too). The timestamp is what Vapi
 * put in the header, signed as sent; Vapi does not document its unit, so a
 * value over 10^12 is read as milliseconds, else seconds. It must be within
 * five minutes of `nowMs`, so a captured message cannot be replayed later;
 * within that window duplicates are caught by the event id. An empty secret
 * matches nothing.
 */
export function verifyVapiSignature(
  headers: Headers,
  rawBody: string,
  secret: string,
  nowMs: number = Date.now(),
): SignatureCheck {
  const signature = headers.get(VAPI_SIGNATURE_HEADER)?.trim();
  const timestamp = headers.get(VAPI_TIMESTAMP_HEADER)?.trim();
  if (!signature || !timestamp) return { ok: false, reason: 'missing_signature' };
  const value = /^\d{1,16}$/u.test(timestamp) ? Number(timestamp) : Number.NaN;
  if (Number.isNaN(value) || !isFresh(value > 1e12 ? value / 1000 : value, nowMs)) {
    return { ok: false, reason: 'stale_timestamp' };
  }
  if (secret === '') return { ok: false, reason: 'bad_signature' };
  const expected = createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex');
  const received = signature.replace(/^sha256=/iu, '').toLowerCase();
  return sameSignature(received, expected) ? { ok: true } : { ok: false, reason: 'bad_signature' };
}

// Keys whose values are credentials: Vapi's messages embed the phone number
// (with the Twilio or Vonage auth token) and the assistant (with server
// secrets, headers and provider credentials), and the call's live links
// (monitor.listenUrl streams its audio, monitor.controlUrl speaks into or
// ends it; transport and web-call URLs), which whoever reads the stored
// event must not get.
const SECRET_KEY =
  /secret|password|authtoken|auth_token|apikey|api_key|privatekey|private_key|accesstoken|access_token|refreshtoken|refresh_token|^token$|^authorization$|^headers$|^credentials$|^monitor$|^transport$|^webcallurl$|^listenurl$|^controlurl$/iu;

/**
 * The message as JSON with every credential replaced by "[redacted]", for
 * storing as the raw event: the phone number object Vapi embeds carries the
 * carrier's auth token (twilioAuthToken, twilioApiSecret, ...), and the
 * assistant object its servers' secrets and headers.
 */
export function redactVapiBody(rawBody: string): unknown {
  return redact(parseJsonBody(rawBody, WHAT));
}

function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [key, SECRET_KEY.test(key) ? '[redacted]' : redact(item)]),
  );
}
