import postgres from 'postgres';
import { HttpError } from './errors.ts';

/**
 * Turns the SQLSTATEs our SQL functions raise on purpose into HTTP answers.
 *
 * Only the codes whose messages we write ourselves (`raise ... using errcode`)
 * or that Postgres words without data (check and input-syntax failures) pass
 * their message through. `detail` is never shown: for a check violation it
 * holds the whole failing row, which may include values the caller must not see.
 * 42501 and P0002 get fixed wording because Postgres itself also raises them
 * ("permission denied for table ..."), naming objects the client has no business knowing.
 */
export interface PostgresErrorMessages {
  forbidden?: string;
  notFound?: string;
}

export function isPostgresError(error: unknown): error is postgres.PostgresError {
  return error instanceof postgres.PostgresError;
}

const INVALID_ARGUMENT = new Set([
  '22023', // invalid_parameter_value: our own validation in SQL
  '23514', // check_violation: a table constraint
  '22P02', // invalid_text_representation: e.g. a malformed uuid
]);

/** The HttpError for a mapped Postgres error; anything else is returned unchanged (it becomes a logged 500). */
export function httpErrorFromPostgres(error: unknown, messages: PostgresErrorMessages = {}): unknown {
  if (!isPostgresError(error)) return error;
  if (error.code === '42501') {
    return new HttpError(403, 'forbidden', messages.forbidden ?? 'You are not allowed to do this.');
  }
  if (error.code === 'P0002') {
    return new HttpError(404, 'not_found', messages.notFound ?? 'Not found.');
  }
  if (INVALID_ARGUMENT.has(error.code)) {
    return new HttpError(422, 'invalid_request', error.message);
  }
  return error;
}

/** Runs `work`, rethrowing its Postgres errors as mapped by httpErrorFromPostgres. */
export async function mapPostgresErrors<T>(work: () => Promise<T>, messages: PostgresErrorMessages = {}): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw httpErrorFromPostgres(error, messages);
  }
}
