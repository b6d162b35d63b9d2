/**
 * POST /calendar/revocations (service role; pg_cron calls it every minute
 * through private.request_calendar_grant_revocations when one is due): the
 * grants of leavers' connections (revoked when their connector left the org,
 * tokens kept for this) are revoked at the provider as a disconnect does
 * (grant-revocation.ts), a few at a time (drain.ts, each claimed for 120 s),
 * and each connection is then deleted with its tokens
 * (private.finish_calendar_grant_revocation). Nothing to revoke (Microsoft,
 * another connection holding the account) deletes it at once; a refused or
 * unreachable provider is retried by a later pass (1, 4, 16, 64 minutes), and
 * the fifth failure deletes it anyway with the reason in its status_reason.
 * Answers `{ revocations: [{ connection_id, status, revoked_at_provider }] }`,
 * status being deleted, pending, given_up or gone (deleted meanwhile).
 */
import { asServiceRole } from '../_shared/db.ts';
import { json } from '../_shared/http.ts';
import type { CalendarProvider } from '../_shared/calendar/index.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { drain } from './drain.ts';
import { revokeGrant } from './grant-revocation.ts';
import { readOptionalBody, revokeDueBody } from './schemas.ts';
import { failureText } from '../_shared/errors.ts';

/** Revocations per call at most; a concurrent or later call takes the others. */
const DEFAULT_LIMIT = 20;
/** Seconds a claimed revocation is held: the token opening, the provider call and its timeout. */
const REVOCATION_LEASE_SECONDS = 120;

type RevocationStatus = 'deleted' | 'pending' | 'given_up' | 'gone';

interface ClaimedRevocation {
  connection_id: string;
  provider: CalendarProvider;
  account_subject: string | null;
  account_email: string;
  attempts: number;
}

interface RevocationResult {
  connection_id: string;
  status: RevocationStatus;
  revoked_at_provider: boolean;
}

async function claimNext(ctx: RequestContext): Promise<ClaimedRevocation | undefined> {
  const [row] = await asServiceRole(ctx.sql, (tx) =>
    tx<ClaimedRevocation[]>`
      select connection_id, provider, account_subject, account_email, attempts
      from private.claim_due_calendar_grant_revocations(1, ${REVOCATION_LEASE_SECONDS})`);
  return row;
}

/** Revokes and records the attempt; never throws (a claimed revocation not recorded is taken again once its lease runs out). */
async function revokeClaimed(ctx: RequestContext, claimed: ClaimedRevocation): Promise<RevocationResult> {
  const id = claimed.connection_id;
  let revoked = false;
  let failure: unknown;
  try {
    revoked = await revokeGrant(ctx, id, claimed);
  } catch (error) {
    failure = error;
  }
  const message = failure === undefined ? null : failureText(failure);
  try {
    const [row] = await asServiceRole(ctx.sql, (tx) =>
      tx<{ status: RevocationStatus | null }[]>`
        select private.finish_calendar_grant_revocation(${id}::uuid, ${message}) as status`);
    const status = row?.status ?? 'gone';
    if (status === 'pending') ctx.log(`revoking the grant of calendar connection ${id} failed (attempt ${claimed.attempts}); retried later`, failure);
    if (status === 'given_up') {
      ctx.log(`gave up revoking the grant of calendar connection ${id} after ${claimed.attempts} attempts; deleted it anyway`, failure);
    }
    return { connection_id: id, status, revoked_at_provider: revoked };
  } catch (error) {
    ctx.log(`the attempt to revoke the grant of calendar connection ${id} could not be recorded; a later pass takes it`, error);
    return { connection_id: id, status: 'pending', revoked_at_provider: revoked };
  }
}

export async function revokeDue(ctx: RequestContext, req: Request): Promise<Response> {
  const body = await readOptionalBody(req, revokeDueBody);
  const revocations: RevocationResult[] = [];
  await drain(body.limit ?? DEFAULT_LIMIT, () => claimNext(ctx), async (claimed) => {
    revocations.push(await revokeClaimed(ctx, claimed));
  });
  return json({ revocations }, 200, { 'cache-control': 'no-store' });
}
