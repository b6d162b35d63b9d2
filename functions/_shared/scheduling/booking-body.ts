/**
 * What booking an appointment takes, checked with zod the same way wherever
 * a booking arrives (the calendar function's routes, the chat core's booking
 * step): instants with their offsets, the attendee, and times that make an
 * appointment. Rules that need the database (business hours, the contact's
 * format) stay in SQL.
 */
import { z } from 'zod';
import { hasNoNul, NUL_MESSAGE } from '../text/nul.ts';

const DAY = 86_400_000;

/** An instant with its offset (`2026-10-23T09:00:00+02:00` or `...Z`); a bare date or wall time is ambiguous. */
export const instant = (name: string) =>
  z.iso
    .datetime({ offset: true, error: `${name} must be an ISO 8601 date-time with an offset, e.g. 2026-10-23T09:00:00+02:00` })
    .transform((value) => new Date(value));

export const attendee = {
  attendee_name: z
    .string({ error: 'attendee_name must be a string' })
    .trim()
    .min(1, { error: 'attendee_name is required' })
    .max(200, { error: 'attendee_name has at most 200 characters' })
    .refine(hasNoNul, `attendee_name ${NUL_MESSAGE}`),
  attendee_email: z.string({ error: 'attendee_email must be a string' }).trim().max(320)
    .refine(hasNoNul, `attendee_email ${NUL_MESSAGE}`).nullish(),
  attendee_phone: z.string({ error: 'attendee_phone must be a string' }).trim().max(40)
    .refine(hasNoNul, `attendee_phone ${NUL_MESSAGE}`).nullish(),
  notes: z.string({ error: 'notes must be a string' }).max(2000, { error: 'notes have at most 2000 characters' })
    .refine(hasNoNul, `notes ${NUL_MESSAGE}`).nullish(),
};

/**
 * Whether both values came through as instants. zod 4 still runs an object's
 * refinements after a field's format check failed (those issues are
 * "continuable"), with that field untransformed.
 */
export const instants = (...values: unknown[]) => values.every((value) => value instanceof Date);

/** ends_at after starts_at, at most 24 hours later (as the appointments table allows). */
export function checkTimes(value: { starts_at: Date; ends_at: Date }, ctx: z.RefinementCtx): void {
  if (!instants(value.starts_at, value.ends_at)) return;
  const length = value.ends_at.getTime() - value.starts_at.getTime();
  if (length <= 0) ctx.addIssue({ code: 'custom', path: ['ends_at'], message: 'ends_at must be after starts_at' });
  else if (length > DAY) ctx.addIssue({ code: 'custom', path: ['ends_at'], message: 'an appointment lasts at most 24 hours' });
}

/** A booking as a bot makes it for its caller. */
export const bookingRequest = z
  .object({ starts_at: instant('starts_at'), ends_at: instant('ends_at'), ...attendee })
  .superRefine(checkTimes);
export type BookingRequest = z.infer<typeof bookingRequest>;
