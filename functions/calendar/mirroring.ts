/**
 * The retry of mirroring (service role; pg_cron calls it every minute through
 * private.retry_appointment_mirroring when something is due): mirrors the due
 * pending and failed appointments a few at a time, each as a booking request
 * would (claimed one by one, the orgs in turn: private.claim_due_appointment_syncs;
 * one the provider throttles is given back uncounted, due after its
 * Retry-After, until 24 hours into its throttled run, when a throttle counts as
 * a failed attempt), then deletes the due unneeded events whose deletion failed
 * before (stray-events.ts; claimed one by one, the orgs in turn too:
 * private.claim_due_calendar_event_deletions), a few at a time (drain.ts: a
 * lease of 120 s starts when an item's work does). Answers
 * `{ mirrored, appointments: [{ id, sync_status }], event_deletions: [{ id, status }] }`.
 */
import { json } from '../_shared/http.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { claimDue, mirrorClaimed } from '../_shared/scheduling/mirror.ts';
import { claimDueStrayEvent, deleteStrayEvent, type StrayEventStatus } from '../_shared/scheduling/stray-events.ts';
import { drain } from './drain.ts';
import { mirrorDueBody, readOptionalBody } from './schemas.ts';

/** Appointments (and event deletions) per call at most; a concurrent or later call takes the others. */
const DEFAULT_LIMIT = 20;

export async function mirrorDue(ctx: RequestContext, req: Request): Promise<Response> {
  const body = await readOptionalBody(req, mirrorDueBody);
  const limit = body.limit ?? DEFAULT_LIMIT;
  const appointments: { id: string; sync_status: string }[] = [];
  await drain(limit, async () => (await claimDue(ctx, 1))[0], async (row) => {
    try {
      const mirrored = await mirrorClaimed(ctx, row);
      appointments.push({ id: mirrored.id, sync_status: mirrored.sync_status });
    } catch (error) {
      // Its lease runs out and a later call retries it.
      ctx.log(`mirroring appointment ${row.id} could not be recorded`, error);
      appointments.push({ id: row.id, sync_status: row.sync_status });
    }
  });
  const deletions: { id: string; status: StrayEventStatus }[] = [];
  await drain(limit, () => claimDueStrayEvent(ctx), async (stray) => {
    deletions.push({ id: stray.id, status: await deleteStrayEvent(ctx, stray) });
  });
  return json(
    { mirrored: appointments.length, appointments, event_deletions: deletions },
    200,
    { 'cache-control': 'no-store' },
  );
}
