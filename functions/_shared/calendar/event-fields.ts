/**
 * Checks and wording both providers' event and range code share, so a bad
 * input fails the same way (a TypeError or RangeError, before any request)
 * whichever calendar it was meant for.
 */
import type { CalendarAttendee, CalendarEventUpdate } from './types.ts';
import { isValidTimeZone } from './zoned.ts';

function isInstant(value: unknown): value is Date {
  return value instanceof Date && !Number.isNaN(value.getTime());
}

/** A move gives start, end and timeZone together, end after start, in a zone the runtime knows. */
export function checkEventTimes(changes: CalendarEventUpdate): void {
  const { start, end, timeZone } = changes;
  if (start === undefined && end === undefined) {
    if (timeZone !== undefined && !isValidTimeZone(timeZone)) throw new RangeError(`Unknown time zone ${JSON.stringify(timeZone)}.`);
    return;
  }
  if (!isInstant(start) || !isInstant(end) || timeZone === undefined) {
    throw new TypeError('An event time change gives start and end (valid dates) and timeZone together.');
  }
  if (end.getTime() <= start.getTime()) throw new RangeError('An event must end after it starts.');
  if (!isValidTimeZone(timeZone)) throw new RangeError(`Unknown time zone ${JSON.stringify(timeZone)}.`);
}

/** A query range: two valid dates, timeMax after timeMin. */
export function checkRange(timeMin: Date, timeMax: Date): void {
  if (!isInstant(timeMin) || !isInstant(timeMax) || timeMax.getTime() <= timeMin.getTime()) {
    throw new RangeError('A busy-time query needs timeMin before timeMax.');
  }
}

/** `Attendees: Ada Lovelace <ada@example.com>, Bob`: attendees named in the text rather than invited. */
export function attendeeNote(attendees: readonly CalendarAttendee[]): string {
  const names = attendees
    .map((attendee) => {
      if (attendee.name && attendee.email) return `${attendee.name} <${attendee.email}>`;
      return attendee.name ?? attendee.email ?? '';
    })
    .filter(Boolean);
  return names.length > 0 ? `Attendees: ${names.join(', ')}` : '';
}
