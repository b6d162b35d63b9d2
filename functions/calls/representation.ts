/**
 * What the API shows of a call: what it is, how it went and what it cost;
 * never the dispatcher's bookkeeping (leases, dial targets, errors), the
 * provider's raw payloads (cost breakdown) or the provider's recording URL
 * (our copy is `recording_path`, in the recordings bucket).
 */
import type { TransactionSql } from '../_shared/db.ts';

export interface CallRow {
  id: string;
  direction: string;
  status: string;
  ended_reason: string | null;
  from_number: string | null;
  to_number: string | null;
  bot_id: string | null;
  conversation_id: string | null;
  campaign_id: string | null;
  callee_time_zone: string | null;
  scheduled_at: Date | null;
  started_at: Date | null;
  ended_at: Date | null;
  duration_seconds: string | null;
  summary: string | null;
  sentiment: string;
  sentiment_score: string | null;
  cost: string | null;
  cost_currency: string;
  recording_path: string | null;
  provider: string | null;
  provider_call_id: string | null;
  stt_latency_ms: number | null;
  llm_latency_ms: number | null;
  tts_latency_ms: number | null;
  dial_attempts: number;
  created_at: Date;
  updated_at: Date;
  /** created_at to the microsecond (UTC), for the list's cursor. */
  created_at_exact: string;
}

/** The select list for CallRow, over a call aliased `c`. */
export function callColumns(tx: TransactionSql) {
  return tx`
    c.id, c.direction, c.status, c.ended_reason, c.from_number, c.to_number, c.bot_id, c.conversation_id, c.campaign_id,
    c.callee_time_zone, c.scheduled_at, c.started_at, c.ended_at, c.duration_seconds, c.summary, c.sentiment,
    c.sentiment_score, c.cost, c.cost_currency, c.recording_path, c.provider, c.provider_call_id,
    c.stt_latency_ms, c.llm_latency_ms, c.tts_latency_ms, c.dial_attempts, c.created_at, c.updated_at,
    to_char(c.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_at_exact`;
}

const numberOrNull = (value: string | null) => (value === null ? null : Number(value));
/** A timestamp as the API shows it (ISO 8601, UTC), or null. */
export const isoOrNull = (value: Date | null) => (value === null ? null : value.toISOString());

export function toApiCall(row: CallRow) {
  return {
    object: 'call',
    id: row.id,
    direction: row.direction,
    status: row.status,
    ended_reason: row.ended_reason,
    from_number: row.from_number,
    to_number: row.to_number,
    bot_id: row.bot_id,
    conversation_id: row.conversation_id,
    campaign_id: row.campaign_id,
    callee_time_zone: row.callee_time_zone,
    scheduled_at: isoOrNull(row.scheduled_at),
    started_at: isoOrNull(row.started_at),
    ended_at: isoOrNull(row.ended_at),
    duration_seconds: numberOrNull(row.duration_seconds),
    summary: row.summary,
    sentiment: row.sentiment,
    sentiment_score: numberOrNull(row.sentiment_score),
    cost: numberOrNull(row.cost),
    cost_currency: row.cost_currency,
    recording_path: row.recording_path,
    provider: row.provider,
    provider_call_id: row.provider_call_id,
    latency_ms: { stt: row.stt_latency_ms, llm: row.llm_latency_ms, tts: row.tts_latency_ms },
    dial_attempts: row.dial_attempts,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}
