import type { JSONValue } from 'postgres';
import type { CallEvent } from '../_shared/voice/index.ts';

/**
 * A CallEvent as private.apply_call_event reads it: the same fields in
 * snake_case, absent ones left out (an absent field changes nothing there).
 */
export function toEventRow(event: CallEvent): JSONValue {
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
    started_at: event.startedAt,
    ended_at: event.endedAt,
    duration_seconds: event.durationSeconds,
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
