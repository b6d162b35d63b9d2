/**
 * Every input of the calendar function, checked with zod before anything is
 * read or written: a body or query that does not match is 400
 * `invalid_request` (naming the fields), as the chat function answers, so a
 * client never has to tell 400 from 422 for a malformed request. Rules that
 * need the database (business hours, a known bot, the attendee's contact
 * format) stay in SQL and come back as its SQLSTATEs.
 */
import { z } from 'zod';
import { CALENDAR_PROVIDERS, isValidTimeZone } from '../_shared/calendar/index.ts';
import { HttpError } from '../_shared/errors.ts';
import { readBodyText, readJson } from '../_shared/http.ts';
import { attendee, checkTimes, instant, instants } from '../_shared/scheduling/booking-body.ts';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
/** The widest availability window: a month, so one request stays well inside an edge function's CPU budget. */
export const MAX_RANGE_DAYS = 31;
/**
 * The largest daylight-saving shift of any zone (Antarctica/Troll moves by 2
 * hours): 31 local days holding a fall-back change are longer than 31 × 24
 * real hours (October in Europe/Berlin is 745), and must still pass.
 */
const MAX_DST_SHIFT = 2 * 60 * MINUTE;

const uuid = (name: string) => z.uuid({ error: `${name} must be a uuid` });

const timeZone = z
  .string({ error: 'time_zone must be a string' })
  .max(64)
  .refine(isValidTimeZone, { error: 'time_zone must be an IANA time zone, e.g. Europe/Berlin' });

const minutes = (name: string) =>
  z.coerce
    .number({ error: `${name} must be a number` })
    .int({ error: `${name} must be a whole number of minutes` })
    .min(5, { error: `${name} is at least 5` })
    .max(480, { error: `${name} is at most 480` });

const resource = z
  .string({ error: 'resource must be a string' })
  .trim()
  .min(1, { error: 'resource must not be empty' })
  .max(200, { error: 'resource has at most 200 characters' });

export const oauthStartBody = z.object({
  org_id: uuid('org_id'),
  provider: z.enum(CALENDAR_PROVIDERS, { error: 'provider must be google or microsoft' }),
  bot_id: uuid('bot_id').nullish(),
  redirect_to: z.string({ error: 'redirect_to must be a string' }).min(1).max(2048).nullish(),
});

export const oauthCompleteBody = z.object({ connection_request: uuid('connection_request') });

export const createAppointmentBody = z
  .object({
    org_id: uuid('org_id'),
    starts_at: instant('starts_at'),
    ends_at: instant('ends_at'),
    ...attendee,
    bot_id: uuid('bot_id').nullish(),
    resource: resource.optional(),
    time_zone: timeZone.nullish(),
    call_id: uuid('call_id').nullish(),
    conversation_id: uuid('conversation_id').nullish(),
  })
  .superRefine(checkTimes);
export type CreateAppointmentBody = z.infer<typeof createAppointmentBody>;

export const rescheduleBody = z
  .object({ starts_at: instant('starts_at'), ends_at: instant('ends_at') })
  .superRefine(checkTimes);

export const cancelBody = z.object({
  reason: z.string({ error: 'reason must be a string' }).max(500, { error: 'reason has at most 500 characters' }).nullish(),
});

/**
 * Strict: a bot's tool call is generated, and a misspelt or unsupported key
 * (`resource_id`, `room`) silently dropped would book something else than
 * asked (it once booked `room-2` on `default`), so unknown keys are a 400.
 */
export const botAppointmentBody = z
  .strictObject({
    starts_at: instant('starts_at'),
    ends_at: instant('ends_at'),
    ...attendee,
    conversation_id: uuid('conversation_id').nullish(),
    call_id: uuid('call_id').nullish(),
    resource: resource.default('default'),
  })
  .superRefine(checkTimes);
export type BotAppointmentBody = z.infer<typeof botAppointmentBody>;

/** How many items a scheduled pass takes in one call. */
const passLimit = z
  .number({ error: 'limit must be a number' })
  .int({ error: 'limit must be a whole number' })
  .min(1, { error: 'limit is at least 1' })
  .max(50, { error: 'limit is at most 50' })
  .optional();

/**
 * The retry route's body (pg_cron sends `{}`): how many due appointments to
 * mirror in this call. Strict, as the bot's body: a misspelt key is a 400.
 */
export const mirrorDueBody = z.strictObject({ limit: passLimit });

/** The revocation pass's body (pg_cron sends `{}`): how many due grant revocations to take. Strict. */
export const revokeDueBody = z.strictObject({ limit: passLimit });

/**
 * The re-seal route's body: how many sealed token sets to look at in one call
 * (1 to 500), optionally one org's only, and whether a key missing from the
 * keyring is gone for good (`retire_unknown_keys`). Strict.
 */
export const resealBody = z.strictObject({
  limit: z
    .number({ error: 'limit must be a number' })
    .int({ error: 'limit must be a whole number' })
    .min(1, { error: 'limit is at least 1' })
    .max(500, { error: 'limit is at most 500' })
    .optional(),
  org_id: z.uuid({ error: 'org_id must be a uuid' }).optional(),
  retire_unknown_keys: z.boolean({ error: 'retire_unknown_keys must be true or false' }).optional(),
});

const availabilityFields = {
  from: instant('from'),
  to: instant('to'),
  duration_minutes: minutes('duration_minutes'),
  step_minutes: minutes('step_minutes').optional(),
  time_zone: timeZone.optional(),
  resource: resource.default('default'),
};

function checkRange(value: { from: Date; to: Date }, ctx: z.RefinementCtx): void {
  if (!instants(value.from, value.to)) return;
  const length = value.to.getTime() - value.from.getTime();
  if (length <= 0) ctx.addIssue({ code: 'custom', path: ['to'], message: 'to must be after from' });
  else if (length > MAX_RANGE_DAYS * DAY + MAX_DST_SHIFT) {
    ctx.addIssue({ code: 'custom', path: ['to'], message: `the range is at most ${MAX_RANGE_DAYS} days` });
  }
}

export const availabilityQuery = z
  .object({ org_id: uuid('org_id'), bot_id: uuid('bot_id').optional(), ...availabilityFields })
  .superRefine(checkRange);

/** The bot's route: the bot (and so the org) come from the path and the API key. */
export const botAvailabilityQuery = z.object(availabilityFields).superRefine(checkRange);
export type AvailabilityQuery = z.infer<typeof botAvailabilityQuery>;

function invalid(error: z.ZodError, what: string): HttpError {
  const issues = error.issues.slice(0, 5).map((issue) =>
    `${issue.path.length > 0 ? issue.path.join('.') : '(body)'}: ${issue.message}`
  );
  return new HttpError(400, 'invalid_request', `Invalid ${what}: ${issues.join('; ')}`);
}

/** The JSON body: 400 `invalid_json` when it is not JSON, 400 `invalid_request` when it does not match. */
export async function readBody<T>(req: Request, schema: z.ZodType<T>): Promise<T> {
  try {
    return await readJson(req, schema);
  } catch (error) {
    if (error instanceof HttpError && error.status === 422) throw new HttpError(400, error.code, error.message);
    throw error;
  }
}

/** An optional JSON body (DELETE may come without one): empty means `{}`. */
export async function readOptionalBody<T>(req: Request, schema: z.ZodType<T>): Promise<T> {
  const text = await readBodyText(req);
  if (text.trim() === '') return parseValue({}, schema, 'request body');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'invalid_json', 'The request body must be valid JSON.');
  }
  return parseValue(body, schema, 'request body');
}

/** The query string (each name once; the last wins). */
export function readQuery<T>(url: URL, schema: z.ZodType<T>): T {
  return parseValue(Object.fromEntries(url.searchParams), schema, 'query');
}

function parseValue<T>(value: unknown, schema: z.ZodType<T>, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(result.error, what);
  return result.data;
}
