/**
 * The calendar's SQLSTATEs as HTTP answers, on top of the shared mapping
 * (42501 → 403, P0002 and PT404 → 404, 22023/23514 → 422): a taken time is 409
 * `slot_taken` (the exclusion constraint, whatever the path) and a calendar
 * connected elsewhere is 409 `calendar_in_use`, so clients branch on a code.
 */
import { HttpError } from '../_shared/errors.ts';
import { httpErrorFromPostgres, isPostgresError, type PostgresErrorMessages } from '../_shared/pg-errors.ts';

export function calendarHttpError(error: unknown, messages: PostgresErrorMessages = {}): unknown {
  if (isPostgresError(error)) {
    if (error.code === '23P01') {
      return new HttpError(409, 'slot_taken', 'That time is already booked; choose another time or ask for the free slots.');
    }
    if (error.code === '23505') return new HttpError(409, 'calendar_in_use', error.message);
  }
  return httpErrorFromPostgres(error, messages);
}

/** Runs `work`, rethrowing its Postgres errors as mapped above. */
export async function mapCalendarErrors<T>(work: () => Promise<T>, messages: PostgresErrorMessages = {}): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw calendarHttpError(error, messages);
  }
}
