/**
 * The retry of mirroring (service role; pg_cron calls it every minute through
 * private.retry_appointment_mirroring when something is due): claims the due
 * pending and failed appointments at once (a concurrent call takes others)
 * and mirrors them a few at a time, each as a booking request would. Answers
 * `{ mirrored, appointments: [{ id, sync_status }] }`.
 */
import { json } from '../_shared/http.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { claimDue, type ClaimedRow, mirrorClaimed } from '../_shared/scheduling/mirror.ts';
import { mirrorDueBody, readOptionalBody } from './schemas.ts';

/** Appointments per call: all are claimed first, so all must be done well within the lease (120 s). */
const DEFAULT_LIMIT = 20;
/** At once: enough to hide the providers' latency, few enough not to trip their rate limits. */
const CONCURRENCY = 4;

export async function mirrorDue(ctx: RequestContext, req: Request): Promise<Response> {
  const body = await readOptionalBody(req, mirrorDueBody);
  const claimed = await claimDue(ctx, body.limit ?? DEFAULT_LIMIT);
  const results: { id: string; sync_status: string }[] = [];
  const queue = [...claimed];
  const worker = async () => {
    for (let row: ClaimedRow | undefined = queue.shift(); row; row = queue.shift()) {
      try {
        const mirrored = await mirrorClaimed(ctx, row);
        results.push({ id: mirrored.id, sync_status: mirrored.sync_status });
      } catch (error) {
        // Its lease runs out and a later call retries it.
        ctx.log(`mirroring appointment ${row.id} could not be recorded`, error);
        results.push({ id: row.id, sync_status: row.sync_status });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, claimed.length) }, worker));
  return json({ mirrored: results.length, appointments: results }, 200, { 'cache-control': 'no-store' });
}
