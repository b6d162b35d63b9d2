/**
 * Instants shown in an IANA time zone, and wall times read back, with
 * Intl.DateTimeFormat alone (no tz database of our own: the runtime's ICU is
 * the one Deno and Node ship, updated with them). Offsets are computed per
 * instant, so they are right on both sides of a daylight-saving change.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (!format) {
    try {
      format = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
      });
    } catch (error) {
      throw new RangeError(`Unknown time zone ${JSON.stringify(timeZone)}.`, { cause: error });
    }
    if (formatters.size >= 500) formatters.clear();
    formatters.set(timeZone, format);
  }
  return format;
}

export function isValidTimeZone(timeZone: string): boolean {
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

interface WallParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

function wallParts(instant: Date, timeZone: string): WallParts {
  const parts: Record<string, number> = {};
  for (const part of formatter(timeZone).formatToParts(instant)) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  return {
    year: parts.year ?? NaN,
    month: parts.month ?? NaN,
    day: parts.day ?? NaN,
    // Some ICU versions still say 24 at midnight despite h23.
    hour: (parts.hour ?? NaN) % 24,
    minute: parts.minute ?? NaN,
    second: parts.second ?? NaN,
  };
}

/** The zone's offset from UTC at this instant, in minutes (Europe/Berlin: 60 in winter, 120 in summer). */
export function offsetMinutes(instant: Date, timeZone: string): number {
  const p = wallParts(instant, timeZone);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  const whole = Math.floor(instant.getTime() / 1000) * 1000;
  return Math.round((asUtc - whole) / 60_000);
}

const pad = (value: number, width = 2) => String(Math.abs(value)).padStart(width, '0');

/** `2026-03-29T01:30:00` as a clock in the zone shows the instant. */
export function wallTime(instant: Date, timeZone: string): string {
  const p = wallParts(instant, timeZone);
  return `${pad(p.year, 4)}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
}

/** ISO 8601 with the zone's offset at that instant: `2026-03-29T03:00:00+02:00`. */
export function formatInZone(instant: Date, timeZone: string): string {
  const offset = offsetMinutes(instant, timeZone);
  const sign = offset < 0 ? '-' : '+';
  return `${wallTime(instant, timeZone)}${sign}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`;
}

const WALL = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$/u;

/**
 * Every instant a wall time (no offset) stands for in a zone, earliest first:
 * one as a rule, two in the hour an autumn change repeats, none in the hour a
 * spring change skips.
 */
export function wallTimeReadings(wall: string, timeZone: string): Date[] {
  const match = WALL.exec(wall);
  if (!match) throw new RangeError(`Not a wall time: ${JSON.stringify(wall)}.`);
  const [, y, mo, d, h, mi, s, fraction] = match;
  const ms = fraction ? Math.floor(Number(`0.${fraction}`) * 1000) : 0;
  const asUtc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? 0), ms);
  // The offsets a day before and a day after: zones change at most once in between.
  const before = offsetMinutes(new Date(asUtc - 86_400_000), timeZone);
  const after = offsetMinutes(new Date(asUtc + 86_400_000), timeZone);
  const target = wallTime(new Date(asUtc - ms), 'UTC');
  const readings = [...new Set([asUtc - before * 60_000, asUtc - after * 60_000])]
    .filter((instant) => wallTime(new Date(instant), timeZone) === target)
    .sort((a, b) => a - b);
  return readings.map((instant) => new Date(instant));
}

/**
 * The instant a wall time (no offset, as Graph's dateTimeTimeZone carries it)
 * stands for in a zone. A time skipped by a spring-forward change is read
 * with the offset before the change (02:30 in Berlin on 2026-03-29 → 03:30
 * CEST); a repeated one in autumn, as its first occurrence.
 */
export function instantFromWallTime(wall: string, timeZone: string): Date {
  const [first] = wallTimeReadings(wall, timeZone);
  if (first) return first;
  const match = WALL.exec(wall);
  const asUtc = Date.UTC(
    Number(match?.[1]),
    Number(match?.[2]) - 1,
    Number(match?.[3]),
    Number(match?.[4]),
    Number(match?.[5]),
    Number(match?.[6] ?? 0),
  );
  return new Date(asUtc - offsetMinutes(new Date(asUtc - 86_400_000), timeZone) * 60_000);
}
