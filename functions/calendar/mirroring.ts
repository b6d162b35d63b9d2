/**
 * The retry of mirroring (service role; pg_cron calls it every minute through
 * private.retry_appointment_mirroring when something is due): mirrors the due
 * pending and failed appointments a few at a time, each as a booking request
 * would, then deletes the due unneeded events whose deletion failed before
 * (stray-events.ts). Each worker claims its next item only when it is free to
 * work on it, so a lease (120 s) starts when the work does: claimed all at
 * once, the last of a batch could wait behind slow providers until its lease
 * ran out and the next call took it too. Answers
 * `{ mirrored, appointments: [{ id, sync_status }], event_deletions: [{ id, status }] }`.
 */
import { json } from '../_shared/http.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { claimDue, mirrorClaimed } from '../_shared/scheduling/mirror.ts';
import { claimDueStrayEvent, deleteStrayEvent, type StrayEventStatus } from '../_shared/scheduling/stray-events.ts';
import { mirrorDueBody, readOptionalBody } from './schemas.ts';

/** Appointments (and event deletions) per call at most; a concurrent or later call takes the others. */
const DEFAULT_LIMIT = 20;
/** At once: enough to hide the providers' latency, few enough not to trip their rate limits. */
const CONCURRENCY = 4;

/** Runs `work` on up to `limit` items, CONCURRENCY at a time, each claimed when a worker is free. */
async function drain<T>(limit: number, claimNext: () => Promise<T | undefined>, work: (item: T) => Promise<void>): Promise<void> {
  let remaining = limit;
  const worker = async () => {
    while (remaining > 0) {
      remaining -= 1;
      const item = await claimNext();
      if (item === undefined) return;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, limit) }, worker));
}

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
