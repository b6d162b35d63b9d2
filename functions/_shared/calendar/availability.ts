/**
 * Bookable slots, pure: open windows (business hours already turned into
 * instants by SQL, holidays removed) minus busy times (every connected
 * calendar's, and existing appointments), cut into slots of the asked
 * duration. Everything is instants, so daylight-saving changes need no care
 * here: a window that SQL made 09:00–17:00 Berlin time on 2026-03-29 is
 * 07:00Z–15:00Z, and its slots are 09:00, 09:30... on the local clock.
 *
 * Rules (what scheduling products such as Cal.com do):
 * - slots start at the window's start (rounded up to a whole minute) and
 *   every `stepMinutes` after it, so they line up with the business hours,
 *   not with midnight UTC. Give the windows unclipped (from their opening)
 *   and clip with `notBefore`: a window cut at "now" would put its slots at
 *   09:23:17, 09:53:17, ... (see scheduling/availability.ts);
 * - the grid restarts at every `origins` instant inside a window (each local
 *   midnight when no business hours are set, each opening when they are), so
 *   one long window (days without hours, overnight hours joined across
 *   midnight) gives every day the same slots whatever the window's start. A
 *   slot started on the grid before an origin is kept when it fits the
 *   window, even though it runs past the origin (23:45–00:10 and 00:00–00:25
 *   are both offered, as overlapping candidates are with a short step);
 * - a slot lies wholly inside one window;
 * - a slot overlaps no busy interval widened by `bufferMinutes` on both sides
 *   (touching is fine: a busy 10:00–10:30 leaves a 10:30 slot free);
 * - a slot starts no earlier than `notBefore` (now plus a minimum notice).
 * Runs in O(windows + busy + slots): busy intervals are merged once and
 * walked with a pointer; a conflict jumps straight past the busy interval.
 */
import type { Interval } from './types.ts';
import { formatInZone } from './zoned.ts';

export interface FreeSlotsInput {
  open: readonly Interval[];
  busy: readonly Interval[];
  durationMinutes: number;
  /** Default: the duration (back-to-back slots, as Cal.com's default slot interval). */
  stepMinutes?: number;
  /** Free time kept before and after every busy interval. Default 0. */
  bufferMinutes?: number;
  notBefore?: Date;
  /** Stop after this many slots (default 10,000), so a wide range cannot run away. */
  maxSlots?: number;
  /**
   * Default true: slots start on whole minutes. false keeps a window's own
   * start, for checking that one exact time a caller chose (09:00:30) is free.
   */
  wholeMinutes?: boolean;
  /** Instants where the grid restarts within a window (see the rules above). Default none. */
  origins?: readonly Date[];
}

const MINUTE = 60_000;

function positiveMinutes(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0 || value > 7 * 24 * 60) {
    throw new RangeError(`${name} must be a positive number of minutes, at most a week.`);
  }
  return value;
}

function valid(interval: Interval): boolean {
  const start = interval.start.getTime();
  const end = interval.end.getTime();
  return Number.isFinite(start) && Number.isFinite(end) && end > start;
}

/** Sorted, with overlapping and touching intervals joined; empty or invalid ones dropped. Times in ms. */
export function mergeIntervals(intervals: readonly Interval[], widenMs = 0): { start: number; end: number }[] {
  const sorted = intervals
    .filter(valid)
    .map((interval) => ({ start: interval.start.getTime() - widenMs, end: interval.end.getTime() + widenMs }))
    .sort((a, b) => a.start - b.start);
  const merged: { start: number; end: number }[] = [];
  for (const interval of sorted) {
    const last = merged[merged.length - 1];
    if (last && interval.start <= last.end) last.end = Math.max(last.end, interval.end);
    else merged.push({ ...interval });
  }
  return merged;
}

/** The smallest `origin + k·step` (k ≥ 0 integer) at or after `at`. */
function alignUp(at: number, origin: number, step: number): number {
  if (at <= origin) return origin;
  return origin + Math.ceil((at - origin) / step) * step;
}

export function freeSlots(input: FreeSlotsInput): Interval[] {
  const duration = positiveMinutes(input.durationMinutes, 'durationMinutes') * MINUTE;
  const step = positiveMinutes(input.stepMinutes ?? input.durationMinutes, 'stepMinutes') * MINUTE;
  const bufferMinutes = input.bufferMinutes ?? 0;
  if (!Number.isFinite(bufferMinutes) || bufferMinutes < 0) throw new RangeError('bufferMinutes must not be negative.');
  const maxSlots = input.maxSlots ?? 10_000;
  const notBefore = input.notBefore?.getTime() ?? -Infinity;

  const busy = mergeIntervals(input.busy, bufferMinutes * MINUTE);
  const windows = input.open
    .filter(valid)
    .map((window) => ({ start: window.start.getTime(), end: window.end.getTime() }))
    .sort((a, b) => a.start - b.start);

  const roundStart = (at: number) => (input.wholeMinutes === false ? at : Math.ceil(at / MINUTE) * MINUTE);
  const restarts = (input.origins ?? [])
    .map((origin) => origin.getTime())
    .filter(Number.isFinite)
    .map(roundStart)
    .sort((a, b) => a - b);

  const starts = new Set<number>();
  const slots: Interval[] = [];
  for (const window of windows) {
    // Busy intervals ending at or before the window's start never matter to it; find the first one that might.
    let index = firstEndingAfter(busy, window.start);
    // A window opening at odd seconds (a closure ending at 12:10:30) still gives slots on whole minutes.
    let origin = roundStart(window.start);
    let restart = firstAfter(restarts, origin);
    let at = alignUp(notBefore, origin, step);
    for (;;) {
      // Past the next origin: its grid takes over, from the origin itself (a slot from the grid before may end after it).
      while (restart < restarts.length && (restarts[restart] ?? Infinity) <= at && (restarts[restart] ?? Infinity) < window.end) {
        origin = restarts[restart] ?? origin;
        restart += 1;
        at = alignUp(notBefore, origin, step);
      }
      if (at + duration > window.end) break;
      while (index < busy.length && (busy[index]?.end ?? 0) <= at) index += 1;
      const blocker = busy[index];
      if (blocker && blocker.start < at + duration) {
        // Overlaps [at, at + duration): the next candidate is the first aligned start at or after its end.
        at = alignUp(blocker.end, origin, step);
        continue;
      }
      if (!starts.has(at)) {
        starts.add(at);
        slots.push({ start: new Date(at), end: new Date(at + duration) });
        if (slots.length >= maxSlots) return sortByStart(slots);
      }
      at += step;
    }
  }
  return sortByStart(slots);
}

/** The index of the first value after `at` in ascending `values`. */
function firstAfter(values: readonly number[], at: number): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((values[middle] ?? Infinity) <= at) low = middle + 1;
    else high = middle;
  }
  return low;
}

function firstEndingAfter(busy: readonly { start: number; end: number }[], at: number): number {
  let low = 0;
  let high = busy.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((busy[middle]?.end ?? 0) <= at) low = middle + 1;
    else high = middle;
  }
  return low;
}

function sortByStart(slots: Interval[]): Interval[] {
  return slots.sort((a, b) => a.start.getTime() - b.start.getTime());
}

/** A slot as ISO 8601 strings with the zone's offset at each end (`+01:00` before, `+02:00` after a spring change). */
export function formatSlot(interval: Interval, timeZone: string): { start: string; end: string } {
  return { start: formatInZone(interval.start, timeZone), end: formatInZone(interval.end, timeZone) };
}
