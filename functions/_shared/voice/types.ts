/**
 * Call events, provider-neutral: what the voice adapters (vapi.ts, generic.ts)
 * make of a provider's webhook, and what the calls SQL takes. The SQL, not the
 * adapters, applies events in order; each event therefore carries the time it
 * happened and everything needed to apply it on its own, in any order, more
 * than once.
 */

/** Where a call came from: dialled in, dialled out by us, or a browser (no phone numbers). */
export type CallDirection = 'inbound' | 'outbound' | 'web';

/**
 * The lifecycle: queued > ringing > in_progress > one terminal status. `ended`
 * is a call that was answered and finished (for any reason, see endedReason);
 * the others never became a conversation, or broke: `failed` (an error on the
 * provider's or the network's side), `canceled` (called off by us or the
 * caller before it was answered), `no_answer` (nobody, or a voicemail,
 * answered), `busy`.
 */
export const CALL_STATUSES = [
  'queued',
  'ringing',
  'in_progress',
  'ended',
  'failed',
  'canceled',
  'no_answer',
  'busy',
] as const;
export type CallStatus = (typeof CALL_STATUSES)[number];

export const TERMINAL_CALL_STATUSES = ['ended', 'failed', 'canceled', 'no_answer', 'busy'] as const;
export type TerminalCallStatus = (typeof TERMINAL_CALL_STATUSES)[number];

export function isTerminalStatus(status: CallStatus): status is TerminalCallStatus {
  return (TERMINAL_CALL_STATUSES as readonly string[]).includes(status);
}

export type Speaker = 'user' | 'assistant' | 'system';

/** One utterance. Times are milliseconds from the start of the call. */
export interface TranscriptSegment {
  speaker: Speaker;
  text: string;
  startMs: number;
  endMs: number;
  /** This turn's speech-to-text, model (to first token) and text-to-speech latencies in ms, when the provider reports them. */
  sttMs?: number;
  llmMs?: number;
  ttsMs?: number;
  /**
   * The provider gave no time for it (startMs and endMs are then 0, a
   * placeholder): appended after the stored segments in arrival order, never
   * matched to one by (speaker, startMs), so such lines never overwrite
   * each other. A re-delivered identical event is a duplicate and writes nothing.
   */
  untimed?: boolean;
}

/**
 * What an event's transcript is. `append`: new segments (live, one utterance
 * at a time), each identified by (speaker, startMs): a segment already stored
 * under that key is replaced, not duplicated, so a re-delivery changes
 * nothing. `replace`: the whole transcript as the provider finally has it
 * (end of call), replacing every stored segment; once a call holds a
 * `replace` transcript, later `append` segments are ignored (they are live
 * copies of what it already contains).
 */
export type TranscriptMode = 'append' | 'replace';

export type Sentiment = 'positive' | 'neutral' | 'negative' | 'unknown';

/** A decimal string, so no fraction of a cent is lost to floating point on the way to a numeric column. */
export interface CallCost {
  amount: string;
  /** ISO 4217, upper case. */
  currency: string;
  /** Parts of the amount by component (e.g. stt, llm, tts, transport, provider fee), same currency. */
  breakdown?: Record<string, string>;
}

/** Averages over the call's turns, in milliseconds. */
export interface StageLatencies {
  sttMs?: number;
  llmMs?: number;
  ttsMs?: number;
}

export type CallProvider = 'vapi' | 'generic';

/**
 * `call.started`: answered (status in_progress) or, for providers that say
 * so, placed; `call.status`: any other status change; `call.transcript`:
 * transcript segments; `call.ended`: the call is over (a terminal status),
 * possibly with the final report: transcript, recording, summary, cost.
 */
export const CALL_EVENT_TYPES = ['call.started', 'call.status', 'call.transcript', 'call.ended'] as const;
export type CallEventType = (typeof CALL_EVENT_TYPES)[number];

/**
 * One event about one call. Absent fields say nothing (they never clear a
 * stored value); present ones are the provider's latest word as of
 * `occurredAt`.
 */
export interface CallEvent {
  /** Unique per provider: the key for ignoring duplicates. The generic format's webhook-id; for Vapi see vapiEventId. */
  eventId: string;
  provider: CallProvider;
  type: CallEventType;
  /** The provider's id of the call: with the org, finds our call (or creates it, for an inbound one). */
  providerCallId: string;
  /** ISO 8601: when it happened at the provider (not when we received it), the order events are applied in. */
  occurredAt: string;
  direction?: CallDirection;
  /** E.164 (`+` and up to 15 digits); anything else the provider sends (SIP URIs, "anonymous") is left out. */
  from?: string;
  to?: string;
  /** The status this event moves the call to; absent when the event is not a status change (or one we do not track). */
  status?: CallStatus;
  /** The provider's reason, verbatim (e.g. Vapi's 'customer-ended-call', 'silence-timed-out'): meaningful to people. */
  endedReason?: string;
  /** ISO 8601: answered. */
  startedAt?: string;
  /** ISO 8601. */
  endedAt?: string;
  /** Talk time in seconds, as the provider counts it, else endedAt − startedAt. */
  durationSeconds?: number;
  transcript?: TranscriptSegment[];
  /** Present exactly when `transcript` is. */
  transcriptMode?: TranscriptMode;
  /** Where the provider keeps the recording (https); copying it into Storage is a later step's job. */
  recordingUrl?: string;
  summary?: string;
  /** The provider's own verdict on whether the call met its goal (Vapi's analysis.successEvaluation), as text. */
  successEvaluation?: string;
  sentiment?: Sentiment;
  /** In [-1, 1]; only with `sentiment`. */
  sentimentScore?: number;
  cost?: CallCost;
  latencies?: StageLatencies;
  /** What we attached when we dialled the call (our call id), or the provider's assistant carries (our bot id). */
  metadata?: { callId?: string; botId?: string };
}

/**
 * A webhook body that is not a call event we can read (not JSON, missing the
 * call id, a status we cannot map...): the endpoint answers 400 with the
 * message. Never thrown for a valid message we merely do not store.
 */
export class CallEventParseError extends Error {
  /** One line per problem, `path: message`. */
  readonly issues: string[];

  constructor(message: string, issues: string[] = []) {
    super(issues.length > 0 ? `${message}: ${issues.join('; ')}` : message);
    this.name = 'CallEventParseError';
    this.issues = issues;
  }
}

/** E.164: a plus, a non-zero digit, 7 to 15 digits in all (the calls table's check). */
export const E164 = /^\+[1-9]\d{6,14}$/u;
