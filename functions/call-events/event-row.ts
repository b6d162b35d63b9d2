import type { JSONValue } from 'postgres';
import type { CallEvent } from '../_shared/voice/index.ts';

/** A stated start or end this long before the event is not the call's (a provider's 1970-01-01, say). */
const MAX_BEFORE_EVENT_MS = 24 * 60 * 60 * 1000;
/** The signature timestamp's tolerance: a clock this far ahead still signs events we accept. */
const MAX_AHEAD_OF_ARRIVAL_MS = 5 * 60 * 1000;
/** No duration is longer than the widest span between a kept start and a kept end. */
const MAX_DURATION_SECONDS = (MAX_BEFORE_EVENT_MS + MAX_AHEAD_OF_ARRIVAL_MS) / 1000;

/**
 * A stated time, or undefined when it is implausible: more than a day before the event's occurred_at, or
 * more than 5 minutes after the event arrived (receivedAtMs, when known). Dropped rather than refused, so
 * the rest of the event (its status, its transcript) still applies and the provider does not send it again
 * for ever; the call then takes its times from the events, as when the provider states none.
 */
function plausibleTime(at: string | undefined, occurredAt: string, receivedAtMs: number | undefined): string | undefined {
  if (at === undefined) return undefined;
  const ms = Date.parse(at);
  if (ms < Date.parse(occurredAt) - MAX_BEFORE_EVENT_MS) return undefined;
  if (receivedAtMs !== undefined && ms > receivedAtMs + MAX_AHEAD_OF_ARRIVAL_MS) return undefined;
  return at;
}

/**
 * A CallEvent as private.apply_call_event reads it: the same fields in
 * snake_case, absent ones left out (an absent field changes nothing there),
 * implausible start and end times and durations left out too.
 */
export function toEventRow(event: CallEvent, receivedAtMs?: number): JSONValue {
  const row: Record<string, unknown> = {
    event_id: event.eventId,
    provider: event.provider,
    type: event.type,
    provider_call_id: event.providerCallId,
    occurred_at: event.occurredAt,
    direction: event.direction,
    from: event.from,
    to: event.to,
    status: event.status,
    ended_reason: event.endedReason,
    started_at: plausibleTime(event.startedAt, event.occurredAt, receivedAtMs),
    ended_at: plausibleTime(event.endedAt, event.occurredAt, receivedAtMs),
    // Vapi's is endedAt − startedAt when it states none, so an implausible start makes it implausible too.
    duration_seconds: event.durationSeconds !== undefined && event.durationSeconds <= MAX_DURATION_SECONDS
      ? event.durationSeconds
      : undefined,
    transcript: event.transcript?.map((segment) => ({
      speaker: segment.speaker,
      text: segment.text,
      start_ms: segment.startMs,
      end_ms: segment.endMs,
      stt_ms: segment.sttMs,
      llm_ms: segment.llmMs,
      tts_ms: segment.ttsMs,
      untimed: segment.untimed || undefined,
    })),
    transcript_mode: event.transcriptMode,
    recording_url: event.recordingUrl,
    summary: event.summary,
    sentiment: event.sentiment,
    sentiment_score: event.sentimentScore,
    cost: event.cost,
    latencies: event.latencies && {
      stt_ms: event.latencies.sttMs,
      llm_ms: event.latencies.llmMs,
      tts_ms: event.latencies.ttsMs,
    },
    metadata: event.metadata && { call_id: event.metadata.callId, bot_id: event.metadata.botId },
  };
  // JSON.stringify drops undefined members, nested ones included.
  return JSON.parse(JSON.stringify(row)) as JSONValue;
}
