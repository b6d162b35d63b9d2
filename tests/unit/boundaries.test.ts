import { describe, expect, it } from 'vitest';
import { EmbeddingProviderError } from '../../functions/_shared/embeddings/index.ts';
import { retryAfterMs } from '../../functions/_shared/retry-after.ts';
import { availabilityQuery, botAvailabilityQuery } from '../../functions/calendar/schemas.ts';
import { MAX_DEFER_SECONDS, MIN_DEFER_SECONDS, throttleDeferSeconds } from '../../functions/ingest/defer.ts';

describe('availability range: 31 local days in any zone', () => {
  const base = { org_id: '7f6d0c1e-3b7a-4c2e-9f1a-2d5e8b9c0a11', duration_minutes: '30' };
  const issues = (from: string, to: string) => {
    const result = availabilityQuery.safeParse({ ...base, from, to });
    return result.success ? [] : result.error.issues.map((issue) => issue.message);
  };
  const hours = (from: string, to: string) => (Date.parse(to) - Date.parse(from)) / 3_600_000;

  it('takes October in Europe/Berlin, 31 local days but 745 real hours (fall-back change)', () => {
    const from = '2026-10-01T00:00:00+02:00';
    const to = '2026-11-01T00:00:00+01:00';
    expect(hours(from, to)).toBe(745);
    expect(issues(from, to)).toEqual([]);
    expect(botAvailabilityQuery.safeParse({ from, to, duration_minutes: '30' }).success).toBe(true);
  });

  it('takes 31 local days across the largest shift (Antarctica/Troll, 2 hours) and across a spring-forward change', () => {
    // Troll goes from +02:00 back to +00:00 on the last Sunday of October.
    expect(hours('2026-10-01T00:00:00+02:00', '2026-11-01T00:00:00+00:00')).toBe(746);
    expect(issues('2026-10-01T00:00:00+02:00', '2026-11-01T00:00:00+00:00')).toEqual([]);
    // March in Berlin: 743 hours.
    expect(issues('2026-03-01T00:00:00+01:00', '2026-04-01T00:00:00+02:00')).toEqual([]);
  });

  it('still refuses 32 days, with or without a change', () => {
    expect(issues('2026-10-01T00:00:00+02:00', '2026-11-02T00:00:00+01:00')).toEqual(['the range is at most 31 days']);
    expect(issues('2026-07-01T00:00:00Z', '2026-08-02T00:00:00Z')).toEqual(['the range is at most 31 days']);
    expect(issues('2026-07-01T00:00:00Z', '2026-08-01T02:00:01Z')).toEqual(['the range is at most 31 days']);
    expect(issues('2026-07-01T00:00:00Z', '2026-07-01T00:00:00Z')).toEqual(['to must be after from']);
  });
});

describe('throttleDeferSeconds: within private.defer_ingest\'s 30 to 900 seconds', () => {
  const throttled = (headers: Record<string, string>, status = 429) =>
    throttleDeferSeconds(new EmbeddingProviderError('throttled', { status, retryAfterMs: retryAfterMs(new Headers(headers)) }));

  it('caps a huge Retry-After, in seconds or as a date in 2100, so the integer cast in SQL never overflows', () => {
    expect(throttled({ 'retry-after': '99999999999' })).toBe(MAX_DEFER_SECONDS);
    expect(throttled({ 'retry-after': 'Fri, 01 Jan 2100 00:00:00 GMT' })).toBe(MAX_DEFER_SECONDS);
    expect(throttled({ 'retry-after-ms': '1e300' })).toBe(MAX_DEFER_SECONDS);
    expect(MAX_DEFER_SECONDS).toBe(900);
    expect(MAX_DEFER_SECONDS).toBeLessThan(2 ** 31);
  });

  it('raises a short one to 30, keeps one in range, and waits 60 when the provider did not say', () => {
    expect(throttled({ 'retry-after': '0' })).toBe(MIN_DEFER_SECONDS);
    expect(throttled({ 'retry-after': '5' })).toBe(30);
    expect(throttled({ 'retry-after': '120' })).toBe(120);
    expect(throttled({ 'retry-after-ms': '45500' })).toBe(46);
    expect(throttled({}, 503)).toBe(60);
  });

  it('is null for failures that are not throttling', () => {
    expect(throttled({}, 401)).toBeNull();
    expect(throttleDeferSeconds(new Error('network'))).toBeNull();
  });
});
