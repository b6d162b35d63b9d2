import { describe, expect, it } from 'vitest';
import {
  formatInZone,
  formatSlot,
  freeSlots,
  instantFromWallTime,
  type Interval,
  mergeIntervals,
  offsetMinutes,
  wallTimeReadings,
} from '../../functions/_shared/calendar/index.ts';

const at = (iso: string) => new Date(iso);
const span = (start: string, end: string): Interval => ({ start: at(start), end: at(end) });
/** Slot starts as ISO strings in a zone, for readable expectations. */
const startsIn = (slots: Interval[], timeZone: string) => slots.map((slot) => formatInZone(slot.start, timeZone).slice(11, 16));

describe('freeSlots', () => {
  // Monday 2026-03-30, 09:00–12:00 Berlin (CEST, UTC+2).
  const morning = span('2026-03-30T07:00:00Z', '2026-03-30T10:00:00Z');

  it('cuts a free window into back-to-back slots of the duration', () => {
    const slots = freeSlots({ open: [morning], busy: [], durationMinutes: 30 });
    expect(startsIn(slots, 'Europe/Berlin')).toEqual(['09:00', '09:30', '10:00', '10:30', '11:00', '11:30']);
    expect(slots[0]).toEqual(span('2026-03-30T07:00:00Z', '2026-03-30T07:30:00Z'));
    expect(slots.at(-1)?.end).toEqual(morning.end);
    // A step shorter than the duration: overlapping candidates, all inside the window.
    expect(startsIn(freeSlots({ open: [morning], busy: [], durationMinutes: 60, stepMinutes: 30 }), 'Europe/Berlin')).toEqual([
      '09:00',
      '09:30',
      '10:00',
      '10:30',
      '11:00',
    ]);
  });

  it('leaves out slots overlapping busy times (merged), and keeps those that only touch them', () => {
    const busy = [
      span('2026-03-30T07:30:00Z', '2026-03-30T08:00:00Z'), // 09:30–10:00
      span('2026-03-30T08:45:00Z', '2026-03-30T09:10:00Z'), // 10:45–11:10
      span('2026-03-30T09:00:00Z', '2026-03-30T09:20:00Z'), // overlaps the one before
    ];
    const slots = freeSlots({ open: [morning], busy, durationMinutes: 30, stepMinutes: 15 });
    expect(startsIn(slots, 'Europe/Berlin')).toEqual(['09:00', '10:00', '10:15', '11:30']);
  });

  it('keeps a buffer around busy times', () => {
    const busy = [span('2026-03-30T08:00:00Z', '2026-03-30T08:30:00Z')]; // 10:00–10:30
    const slots = freeSlots({ open: [morning], busy, durationMinutes: 30, stepMinutes: 15, bufferMinutes: 15 });
    expect(startsIn(slots, 'Europe/Berlin')).toEqual(['09:00', '09:15', '10:45', '11:00', '11:15', '11:30']);
  });

  it('aligns starts to the step from each window start, not from the hour', () => {
    const windows = [span('2026-03-30T07:10:00Z', '2026-03-30T08:10:00Z'), span('2026-03-30T12:05:00Z', '2026-03-30T13:00:00Z')];
    const busy = [span('2026-03-30T07:20:00Z', '2026-03-30T07:25:00Z')];
    const slots = freeSlots({ open: windows, busy, durationMinutes: 20, stepMinutes: 20 });
    expect(slots.map((slot) => slot.start.toISOString().slice(11, 16))).toEqual(['07:30', '07:50', '12:05', '12:25']);
  });

  it('starts no earlier than notBefore, on the next aligned step', () => {
    const slots = freeSlots({ open: [morning], busy: [], durationMinutes: 30, notBefore: at('2026-03-30T08:05:00Z') });
    expect(startsIn(slots, 'Europe/Berlin')).toEqual(['10:30', '11:00', '11:30']);
    expect(freeSlots({ open: [morning], busy: [], durationMinutes: 30, notBefore: at('2026-03-30T10:00:00Z') })).toEqual([]);
  });

  it('keeps a window\'s start as the grid origin and clips with notBefore, on whole minutes', () => {
    // 09:00–12:00 Berlin asked from 09:23:17.456: the grid stays 09:00 + 30k, never 09:23:17, 09:53:17...
    const notBefore = at('2026-03-30T07:23:17.456Z');
    const slots = freeSlots({ open: [morning], busy: [], durationMinutes: 30, notBefore });
    expect(slots.map((slot) => formatSlot(slot, 'Europe/Berlin').start)).toEqual([
      '2026-03-30T09:30:00+02:00',
      '2026-03-30T10:00:00+02:00',
      '2026-03-30T10:30:00+02:00',
      '2026-03-30T11:00:00+02:00',
      '2026-03-30T11:30:00+02:00',
    ]);
    // A window opening at odd seconds (a closure ending at 10:10:30.5) gives starts on whole minutes.
    const afterClosure = freeSlots({ open: [span('2026-03-30T08:10:30.500Z', '2026-03-30T10:00:00Z')], busy: [], durationMinutes: 30 });
    expect(afterClosure.every((slot) => slot.start.getTime() % 60_000 === 0)).toBe(true);
    expect(startsIn(afterClosure, 'Europe/Berlin')).toEqual(['10:11', '10:41', '11:11']);
  });

  it('checks an exact time a caller chose as it is, seconds included (a bot booking 07:00:30-07:30:30)', () => {
    const chosen = span('2026-03-30T07:00:30Z', '2026-03-30T07:30:30Z');
    expect(freeSlots({ open: [chosen], busy: [], durationMinutes: 30, wholeMinutes: false }))
      .toEqual([{ start: chosen.start, end: chosen.end }]);
    // On whole minutes it would start at 07:01 and no longer fit.
    expect(freeSlots({ open: [chosen], busy: [], durationMinutes: 30 })).toEqual([]);
  });

  it('is right on the day Berlin springs forward (2026-03-29) and falls back (2026-10-25)', () => {
    // 01:00–04:00 local on 2026-03-29: 01:00 CET = 00:00Z; 04:00 CEST = 02:00Z. Two hours of time.
    const spring = freeSlots({ open: [span('2026-03-29T00:00:00Z', '2026-03-29T02:00:00Z')], busy: [], durationMinutes: 30 });
    expect(spring.map((slot) => formatSlot(slot, 'Europe/Berlin').start)).toEqual([
      '2026-03-29T01:00:00+01:00',
      '2026-03-29T01:30:00+01:00',
      '2026-03-29T03:00:00+02:00',
      '2026-03-29T03:30:00+02:00',
    ]);
    expect(formatSlot(spring[1] as Interval, 'Europe/Berlin')).toEqual({
      start: '2026-03-29T01:30:00+01:00',
      end: '2026-03-29T03:00:00+02:00',
    });

    // 01:00–04:00 local on 2026-10-25: 01:00 CEST = 23:00Z the day before; 04:00 CET = 03:00Z. Four hours.
    const autumn = freeSlots({
      open: [span('2026-10-24T23:00:00Z', '2026-10-25T03:00:00Z')],
      busy: [span('2026-10-25T00:30:00Z', '2026-10-25T01:00:00Z')], // the first 02:30–03:00 (CEST)
      durationMinutes: 30,
    });
    expect(autumn.map((slot) => formatSlot(slot, 'Europe/Berlin').start)).toEqual([
      '2026-10-25T01:00:00+02:00',
      '2026-10-25T01:30:00+02:00',
      '2026-10-25T02:00:00+02:00',
      '2026-10-25T02:00:00+01:00',
      '2026-10-25T02:30:00+01:00',
      '2026-10-25T03:00:00+01:00',
      '2026-10-25T03:30:00+01:00',
    ]);
    // A business day 09:00–17:00 on either change day is still 8 hours of slots.
    const day = (start: string, end: string) => freeSlots({ open: [span(start, end)], busy: [], durationMinutes: 60 }).length;
    expect(day('2026-03-29T07:00:00Z', '2026-03-29T15:00:00Z')).toBe(8);
    expect(day('2026-10-25T08:00:00Z', '2026-10-25T16:00:00Z')).toBe(8);
  });

  it('handles unsorted, overlapping and empty input, and refuses nonsense', () => {
    const windows = [span('2026-03-30T09:00:00Z', '2026-03-30T10:00:00Z'), span('2026-03-30T07:00:00Z', '2026-03-30T08:00:00Z')];
    const slots = freeSlots({
      open: [...windows, windows[1] as Interval, span('2026-03-30T12:00:00Z', '2026-03-30T12:00:00Z')],
      busy: [span('2026-03-30T09:00:00Z', '2026-03-30T08:00:00Z')],
      durationMinutes: 60,
    });
    expect(slots.map((slot) => slot.start.toISOString())).toEqual(['2026-03-30T07:00:00.000Z', '2026-03-30T09:00:00.000Z']);
    expect(freeSlots({ open: [], busy: [], durationMinutes: 30 })).toEqual([]);
    expect(() => freeSlots({ open: [morning], busy: [], durationMinutes: 0 })).toThrow(RangeError);
    expect(() => freeSlots({ open: [morning], busy: [], durationMinutes: 30, stepMinutes: -5 })).toThrow(RangeError);
    expect(() => freeSlots({ open: [morning], busy: [], durationMinutes: 30, bufferMinutes: -1 })).toThrow(RangeError);
    expect(freeSlots({ open: [morning], busy: [], durationMinutes: 15, maxSlots: 3 })).toHaveLength(3);
    expect(mergeIntervals([span('2026-03-30T08:00:00Z', '2026-03-30T09:00:00Z'), span('2026-03-30T09:00:00Z', '2026-03-30T10:00:00Z')])).toEqual([
      { start: Date.parse('2026-03-30T08:00:00Z'), end: Date.parse('2026-03-30T10:00:00Z') },
    ]);
  });

  it('answers 14 days of 15-minute slots against 600 busy intervals, never overlapping one', () => {
    const open: Interval[] = [];
    const busy: Interval[] = [];
    for (let day = 0; day < 14; day += 1) {
      const base = Date.parse('2026-04-01T07:00:00Z') + day * 86_400_000;
      open.push({ start: new Date(base), end: new Date(base + 8 * 3600_000) });
      for (let i = 0; i < 43; i += 1) {
        const start = base - 3600_000 + i * 50 * 60_000 + (i % 3) * 7 * 60_000;
        busy.push({ start: new Date(start), end: new Date(start + 20 * 60_000) });
      }
    }
    const slots = freeSlots({ open, busy, durationMinutes: 15, bufferMinutes: 5 });
    for (const slot of slots) {
      for (const interval of busy) {
        const clear =
          slot.end.getTime() + 5 * 60_000 <= interval.start.getTime() || slot.start.getTime() >= interval.end.getTime() + 5 * 60_000;
        expect(clear).toBe(true);
      }
    }
    expect(slots.length).toBeGreaterThan(0);
  });
});

describe('time zones', () => {
  it('knows the Berlin offset on both sides of each change', () => {
    expect(offsetMinutes(at('2026-03-29T00:59:59Z'), 'Europe/Berlin')).toBe(60);
    expect(offsetMinutes(at('2026-03-29T01:00:00Z'), 'Europe/Berlin')).toBe(120);
    expect(offsetMinutes(at('2026-10-25T00:59:59Z'), 'Europe/Berlin')).toBe(120);
    expect(offsetMinutes(at('2026-10-25T01:00:00Z'), 'Europe/Berlin')).toBe(60);
    expect(formatInZone(at('2026-07-01T12:00:00Z'), 'America/New_York')).toBe('2026-07-01T08:00:00-04:00');
    expect(formatInZone(at('2026-07-01T12:00:00Z'), 'Asia/Kolkata')).toBe('2026-07-01T17:30:00+05:30');
    expect(formatInZone(at('2026-07-01T12:00:00Z'), 'UTC')).toBe('2026-07-01T12:00:00+00:00');
    expect(() => formatSlot(span('2026-07-01T12:00:00Z', '2026-07-01T13:00:00Z'), 'Nowhere/Land')).toThrow(RangeError);
  });

  it('reads wall times back: gaps forward, repeats as their first occurrence', () => {
    expect(instantFromWallTime('2026-03-30T09:00:00', 'Europe/Berlin')).toEqual(at('2026-03-30T07:00:00Z'));
    expect(instantFromWallTime('2026-03-29T02:30:00', 'Europe/Berlin')).toEqual(at('2026-03-29T01:30:00Z'));
    expect(instantFromWallTime('2026-10-25T02:30:00.0000000', 'Europe/Berlin')).toEqual(at('2026-10-25T00:30:00Z'));
    expect(wallTimeReadings('2026-10-25T02:30:00', 'Europe/Berlin')).toEqual([at('2026-10-25T00:30:00Z'), at('2026-10-25T01:30:00Z')]);
    expect(wallTimeReadings('2026-03-29T02:30:00', 'Europe/Berlin')).toEqual([]);
    expect(() => instantFromWallTime('30.03.2026 09:00', 'Europe/Berlin')).toThrow(RangeError);
  });
});

/**
 * A day's slots asked from different `from`s, with the open ranges and grid origins as the availability code gets
 * them from SQL (private.open_ranges read from the last private.slot_origins origin at or before `from`).
 */
describe('a day\'s slots do not depend on from', () => {
  const addDays = (date: string, days: number) => new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
  const wall = (date: string, time: string, zone: string) => instantFromWallTime(`${date}T${time}`, zone);
  /** Local midnights from three days before `from`'s day to `to`'s day: the origins when no hours are set (or all-day hours). */
  const midnights = (fromDay: string, toDay: string, zone: string) => {
    const origins: Date[] = [];
    for (let day = addDays(fromDay, -3); day <= toDay; day = addDays(day, 1)) origins.push(wall(day, '00:00', zone));
    return origins;
  };

  interface Case {
    zone: string;
    /** Business hours as instants over the whole span; none: open all the time. */
    hours?: Interval[];
    /** The grid's origins over the whole span (SQL returns those from three days before `from`; more do no harm). */
    origins: Date[];
    durationMinutes: number;
    to: Date;
  }

  /** Starts (local HH:MM) of the slots on `day`, asked from `from`. */
  function slotsOn(day: string, from: Date, c: Case): string[] {
    const readFrom = Math.max(...c.origins.map((origin) => origin.getTime()).filter((origin) => origin <= from.getTime()), -Infinity);
    const start = Number.isFinite(readFrom) ? readFrom : from.getTime();
    const open = (c.hours ?? [{ start: new Date(start), end: c.to }])
      .map((range) => ({ start: new Date(Math.max(range.start.getTime(), start)), end: new Date(Math.min(range.end.getTime(), c.to.getTime())) }))
      .filter((range) => range.end > range.start);
    const slots = freeSlots({ open, origins: c.origins, busy: [], durationMinutes: c.durationMinutes, notBefore: from });
    return slots.map((slot) => formatInZone(slot.start, c.zone)).filter((start) => start.startsWith(day)).map((start) => start.slice(11, 16));
  }

  function expectSameFromAnyDay(day: string, c: Case, first: string[]) {
    const fromDay = slotsOn(day, wall(day, '00:00', c.zone), c);
    expect(fromDay.slice(0, first.length)).toEqual(first);
    expect(slotsOn(day, wall(addDays(day, -1), '00:00', c.zone), c)).toEqual(fromDay);
    expect(slotsOn(day, wall(addDays(day, -7), '00:00', c.zone), c)).toEqual(fromDay);
  }

  it('Berlin, no hours, 25-minute slots: Tuesday starts at 00:00, 00:25 whether asked from Tuesday, Monday or a week before', () => {
    const zone = 'Europe/Berlin';
    expectSameFromAnyDay(
      '2026-11-24',
      { zone, origins: midnights('2026-11-17', '2026-11-25', zone), durationMinutes: 25, to: wall('2026-11-25', '12:00', zone) },
      ['00:00', '00:25', '00:50'],
    );
  });

  it('New York, no hours, 45-minute slots across the 23-hour 8 March 2026: 9 March starts at 00:00', () => {
    const zone = 'America/New_York';
    expectSameFromAnyDay(
      '2026-03-09',
      { zone, origins: midnights('2026-03-02', '2026-03-10', zone), durationMinutes: 45, to: wall('2026-03-10', '12:00', zone) },
      ['00:00', '00:45', '01:30'],
    );
  });

  it('Lord Howe, all-day hours, 60-minute slots across its 30-minute change on 4 October 2026: 5 October is on the hour', () => {
    const zone = 'Australia/Lord_Howe';
    const days: Interval[] = [];
    for (let day = '2026-09-27'; day <= '2026-10-06'; day = addDays(day, 1)) {
      days.push({ start: wall(day, '00:00', zone), end: wall(addDays(day, 1), '00:00', zone) });
    }
    // SQL joins the all-day rows into one range; the origins are each local midnight.
    const hours = [{ start: days[0]?.start ?? new Date(NaN), end: days.at(-1)?.end ?? new Date(NaN) }];
    const c = { zone, hours, origins: midnights('2026-09-28', '2026-10-06', zone), durationMinutes: 60, to: wall('2026-10-06', '12:00', zone) };
    expectSameFromAnyDay('2026-10-05', c, ['00:00', '01:00', '02:00']);
    // The change day itself: 00:00, 01:00, then 02:30 (02:00-02:30 does not exist), 03:30, ... 23.5 hours hold 23 slots.
    expect(slotsOn('2026-10-04', wall('2026-10-04', '00:00', zone), c).slice(0, 4)).toEqual(['00:00', '01:00', '02:30', '03:30']);
    expect(slotsOn('2026-10-04', wall('2026-10-03', '00:00', zone), c)).toEqual(slotsOn('2026-10-04', wall('2026-10-04', '00:00', zone), c));
  });

  it('London, overnight hours (Monday 22:00-24:00 + Tuesday 00:00-02:00), 45-minute slots: the grid runs on from 22:00', () => {
    const zone = 'Europe/London';
    // Each Monday's overnight range as SQL joins it, and the Monday openings (Tuesday 00:00 continues them).
    const mondays = ['2026-11-16', '2026-11-23'];
    const hours = mondays.map((monday) => ({ start: wall(monday, '22:00', zone), end: wall(addDays(monday, 1), '02:00', zone) }));
    const c = { zone, hours, origins: hours.map((range) => range.start), durationMinutes: 45, to: wall('2026-11-25', '00:00', zone) };
    expect(slotsOn('2026-11-23', wall('2026-11-23', '21:00', zone), c)).toEqual(['22:00', '22:45', '23:30']);
    expectSameFromAnyDay('2026-11-24', c, ['00:15', '01:00']);
    // Asked from Tuesday 00:30: the range is read from Monday 22:00, so 01:00 (never 00:45).
    expect(slotsOn('2026-11-24', wall('2026-11-24', '00:30', zone), c)).toEqual(['01:00']);
  });

  it('keeps a slot that runs past the next origin when it fits, and still starts the next day at its origin', () => {
    const zone = 'Europe/Berlin';
    const origins = midnights('2026-11-23', '2026-11-25', zone);
    const open = [{ start: wall('2026-11-23', '23:00', zone), end: wall('2026-11-24', '01:00', zone) }];
    const slots = freeSlots({ open, origins, busy: [], durationMinutes: 25 });
    expect(slots.map((slot) => formatInZone(slot.start, zone).slice(11, 16))).toEqual(['23:00', '23:25', '23:50', '00:00', '00:25']);
    // A busy time across the origin: the new day's grid resumes on its own steps after it.
    const busy = [{ start: wall('2026-11-23', '23:40', zone), end: wall('2026-11-24', '00:30', zone) }];
    const longer = [{ start: wall('2026-11-23', '23:00', zone), end: wall('2026-11-24', '01:30', zone) }];
    expect(freeSlots({ open: longer, origins, busy, durationMinutes: 25 }).map((slot) => formatInZone(slot.start, zone).slice(11, 16)))
      .toEqual(['23:00', '00:50']);
  });
});
