import { describe, expect, it } from 'vitest';
import { toEventRow } from '../../functions/call-events/event-row.ts';
import { recordingExtension } from '../../functions/call-dispatcher/recordings.ts';

describe('toEventRow', () => {
  it('writes the event in the snake_case private.apply_call_event reads, leaving absent fields out', () => {
    expect(toEventRow({
      eventId: 'evt_1',
      provider: 'generic',
      type: 'call.ended',
      providerCallId: 'c-1',
      occurredAt: '2026-11-23T10:00:00Z',
      endedReason: 'callee-hung-up',
      transcript: [{ speaker: 'user', text: 'Hi', startMs: 0, endMs: 900, sttMs: 120 }],
      transcriptMode: 'replace',
      cost: { amount: '0.0812', currency: 'EUR' },
      latencies: { llmMs: 420 },
      metadata: { callId: '4f7c2b9e-2d7b-4a51-9d7e-0f6f2c1b3a44' },
    })).toEqual({
      event_id: 'evt_1',
      provider: 'generic',
      type: 'call.ended',
      provider_call_id: 'c-1',
      occurred_at: '2026-11-23T10:00:00Z',
      ended_reason: 'callee-hung-up',
      transcript: [{ speaker: 'user', text: 'Hi', start_ms: 0, end_ms: 900, stt_ms: 120 }],
      transcript_mode: 'replace',
      cost: { amount: '0.0812', currency: 'EUR' },
      latencies: { llm_ms: 420 },
      metadata: { call_id: '4f7c2b9e-2d7b-4a51-9d7e-0f6f2c1b3a44' },
    });
  });

  it('leaves out a start or end more than a day before the event or 5 minutes after its arrival, and a longer duration', () => {
    const event = {
      eventId: 'evt_2',
      provider: 'generic' as const,
      type: 'call.ended' as const,
      providerCallId: 'c-2',
      occurredAt: '2026-11-23T10:00:00Z',
    };
    const arrival = Date.parse('2026-11-23T10:00:01Z');
    const implausible = toEventRow({
      ...event,
      startedAt: '1970-01-01T00:00:00Z',
      endedAt: '2026-11-23T10:06:00Z',
      durationSeconds: 1_795_000_000,
    }, arrival) as Record<string, unknown>;
    expect(implausible.started_at).toBeUndefined();
    expect(implausible.ended_at).toBeUndefined();
    expect(implausible.duration_seconds).toBeUndefined();
    expect(implausible.type).toBe('call.ended');

    const plausible = toEventRow({
      ...event,
      startedAt: '2026-11-23T09:50:00Z',
      endedAt: '2026-11-23T10:00:00Z',
      durationSeconds: 600,
    }, arrival) as Record<string, unknown>;
    expect([plausible.started_at, plausible.ended_at, plausible.duration_seconds])
      .toEqual(['2026-11-23T09:50:00Z', '2026-11-23T10:00:00Z', 600]);
  });
});

describe('recordingExtension', () => {
  it('follows the content type, else the URL, else says audio', () => {
    expect(recordingExtension('audio/wav', 'https://x.test/r')).toBe('wav');
    expect(recordingExtension('audio/mpeg; charset=binary', 'https://x.test/r')).toBe('mp3');
    expect(recordingExtension('application/octet-stream', 'https://x.test/r.ogg')).toBe('ogg');
    expect(recordingExtension(null, 'https://x.test/r.exe')).toBe('audio');
  });
});
