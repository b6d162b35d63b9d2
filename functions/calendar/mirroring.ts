/**
 * The retry of mirroring (service role; pg_cron calls it every minute through
 * private.retry_appointment_mirroring when something is due): mirrors the due
 * pending and failed appointments a few at a time, each as a booking request
 * would. Each worker claims its next appointment only when it is free to
 * mirror it, so a lease (120 s) starts when the work does: claimed all at
 * once, the last of a batch could wait behind slow providers until its lease
 * ran out and the next call mirrored it too. Answers
 * `{ mirrored, appointments: [{ id, sync_status }] }`.
 */
import { json } from '../_shared/http.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { claimDue, mirrorClaimed } from '../_shared/scheduling/mirror.ts';
import { mirrorDueBody, readOptionalBody } from './schemas.ts';

/** Appointments per call at most; a concurrent or later call takes the others. */
const DEFAULT_LIMIT = 20;
/** At once: enough to hide the providers' latency, few enough not to trip their rate limits. */
const CONCURRENCY = 4;

export async function mirrorDue(ctx: RequestContext, req: Request): Promise<Response> {
  const body = await readOptionalBody(req, mirrorDueBody);
  let remaining = body.limit ?? DEFAULT_LIMIT;
  const results: { id: string; sync_status: string }[] = [];
  const worker = async () => {
    while (remaining > 0) {
      remaining -= 1;
      const [row] = await claimDue(ctx, 1);
      if (!row) return;
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
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, remaining) }, worker));
  return json({ mirrored: results.length, appointments: results }, 200, { 'cache-control': 'no-store' });
}
