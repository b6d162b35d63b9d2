/**
 * What the call-event signature checks (vapi.ts, generic.ts) share: the
 * result, the replay window and a constant-time comparison.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * The outcome of checking a webhook's signature headers: `missing_signature`
 * (a header is absent), `stale_timestamp` (not a time, or outside the
 * tolerance), `bad_signature` (no signature matches the body and secret).
 * The endpoint answers 401 for any of them.
 */
export type SignatureCheck =
  | { ok: true }
  | { ok: false; reason: 'missing_signature' | 'bad_signature' | 'stale_timestamp' };

/** How far a signed timestamp may be from our clock, either way: a replay older than this is refused. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

export function isFresh(timestampSeconds: number, nowMs: number): boolean {
  return Math.abs(nowMs / 1000 - timestampSeconds) <= SIGNATURE_TOLERANCE_SECONDS;
}

/**
 * Whether two signatures are equal, in constant time: their digests are
 * compared, so neither the length nor how much of a forged signature matched
 * shows in the time taken.
 */
export function sameSignature(received: string, expected: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(received), digest(expected));
}
