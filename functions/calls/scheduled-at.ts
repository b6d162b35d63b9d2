/**
 * When a call or campaign may be scheduled: an RFC 3339 instant at most
 * MAX_SCHEDULE_DAYS ahead. A call queued further out holds a call minute of
 * the plan's quota until canceled, and past year 9999 its time no longer
 * prints as RFC 3339. private.create_outbound_call and
 * private.create_call_campaign refuse the same (22023).
 */
import { z } from 'zod';

export const MAX_SCHEDULE_DAYS = 366;
const DAY_MS = 24 * 60 * 60 * 1000;

export const scheduledAt = z.iso
  .datetime({ offset: true })
  .refine(
    (value) => Date.parse(value) <= Date.now() + MAX_SCHEDULE_DAYS * DAY_MS,
    `must be at most ${MAX_SCHEDULE_DAYS} days ahead`,
  );
