import postgres from 'postgres';
import { HttpError } from './errors.ts';

/**
 * Turns the SQLSTATEs our SQL functions raise on purpose into HTTP answers.
 *
 * Only the codes whose messages we write ourselves (`raise ... using errcode`)
 * or that Postgres words without data (check and input-syntax failures) pass
 * their message through. `detail` is never shown: for a check violation it
 * holds the whole failing row, which may include values the caller must not see.
 * PT402 is a plan quota (402). 42501 and P0002 get fixed wording because Postgres itself also raises them
 * ("permission denied for table ..."), naming objects the client has no business knowing. PT404 is the
 * "not found" of public RPCs (PostgREST answers it 404, P0002 500), worded as P0002.
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
  if (error.code === 'P0002' || error.code === 'PT404') {
    return new HttpError(404, 'not_found', messages.notFound ?? 'Not found.');
  }
  if (INVALID_ARGUMENT.has(error.code)) {
    return new HttpError(422, 'invalid_request', error.message);
  }
  if (error.code === 'PT402') {
    // private.require_quota's refusal: its message is ours and names the plan and the limit.
    return new HttpError(402, 'quota_exceeded', error.message);
  }
  return error;
}

/**
 * Values Postgres refuses to take at all, whatever the statement: a client
 * sent them (a NUL in a text field, a number or string too large for its
 * column, an impossible date), so they are 422s, never 500s. Postgres's own
 * messages for these may quote the value, so fixed wording is shown.
 */
const UNACCEPTABLE_VALUE: Record<string, string> = {
  '22021': 'A text value contains a NUL character or an invalid byte sequence.',
  // untranslatable_character: jsonb refuses `\u0000` in a string or key.
  '22P05': 'A JSON value contains a NUL character (\\u0000) or a character the database cannot encode.',
  '22003': 'A number is out of range.',
  '22001': 'A value is too long.',
  '22007': 'A date or time is malformed.',
  '22008': 'A date or time is out of range.',
  '22009': 'A time zone offset is out of range.',
};

/** Conflicts between concurrent transactions: nothing wrong with the request, which can simply be sent again. */
const RETRYABLE = new Set(['40P01', '40001']);

/**
 * The answer for a Postgres error no endpoint mapped itself (the last resort
 * of createHandler): a value Postgres cannot take is the client's 422, a
 * deadlock or serialization failure a 503 to retry; anything else is left to
 * become a logged 500.
 */
export function httpErrorFromUnmappedPostgres(error: unknown): unknown {
  if (!isPostgresError(error)) return error;
  const message = UNACCEPTABLE_VALUE[error.code];
  // Logged (through its cause) as well: our own code writing a value too long is a bug to see, not just a 422.
  if (message) return new HttpError(422, 'invalid_request', message, {}, { cause: error });
  if (RETRYABLE.has(error.code)) {
    return new HttpError(503, 'conflict_retry', 'The request met a concurrent change; send it again.', {
      'retry-after': '1',
    }, { cause: error });
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
