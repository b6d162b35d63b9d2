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
 *
 * Then, the same way, the grants whose tokens were dropped: deleted orgs'
 * connections (20261123009800), connections deleted otherwise (a bot's
 * deletion) and connection requests never completed (20261123010300). Each
 * deletion copied the account and sealed tokens into
 * private.deleted_org_calendar_grants; the revocation (not while a live
 * connection or request elsewhere holds the account) ends by deleting that
 * copy (private.finish_deleted_org_calendar_grant), and the fifth failure
 * deletes it anyway. Answered alike, by the gone connection's (or
 * request's) id.
 */
import { asServiceRole } from '../_shared/db.ts';
import { json } from '../_shared/http.ts';
import type { CalendarProvider } from '../_shared/calendar/index.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { drain } from './drain.ts';
import { revokeGrant, revokeSealedGrant, type SealedGrant } from './grant-revocation.ts';
import { readOptionalBody, revokeDueBody } from './schemas.ts';
import { failureText } from '../_shared/errors.ts';

/** Revocations per call at most; a concurrent or later call takes the others. */
const DEFAULT_LIMIT = 20;
/** Seconds a claimed revocation is held: the token opening, the provider call and its timeout. */
const REVOCATION_LEASE_SECONDS = 120;

type RevocationStatus = 'deleted' | 'pending' | 'given_up' | 'gone';

/** What both claims answer: the connection (gone, for a dropped grant's copy) and its account. */
interface ClaimedAccount {
  connection_id: string;
  provider: CalendarProvider;
  account_subject: string | null;
  account_email: string;
  attempts: number;
}

/** A leaver's revoked connection (private.claim_due_calendar_grant_revocations). */
type ClaimedLeaver = ClaimedAccount & { kind: 'leaver' };

/** A dropped grant (a deleted org's or bot's connection, an uncompleted request), as private.claim_due_deleted_org_calendar_grants answers it, tokens sealed. */
interface DeletedOrgGrantRow extends ClaimedAccount {
  id: string;
  org_id: string;
  external_calendar_id: string | null;
  ciphertext: string;
}
type ClaimedDeletedOrg = DeletedOrgGrantRow & { kind: 'deleted_org' };

type ClaimedRevocation = ClaimedLeaver | ClaimedDeletedOrg;

interface RevocationResult {
  connection_id: string;
  status: RevocationStatus;
  revoked_at_provider: boolean;
}

/** The next due revocation: leavers' first, then dropped grants. */
async function claimNext(ctx: RequestContext): Promise<ClaimedRevocation | undefined> {
  const [leaver] = await asServiceRole(ctx.sql, (tx) =>
    tx<ClaimedAccount[]>`
      select connection_id, provider, account_subject, account_email, attempts
      from private.claim_due_calendar_grant_revocations(1, ${REVOCATION_LEASE_SECONDS})`);
  if (leaver) return { ...leaver, kind: 'leaver' };
  const [deletedOrg] = await asServiceRole(ctx.sql, (tx) =>
    tx<DeletedOrgGrantRow[]>`
      select id, connection_id, org_id, provider, account_subject, account_email, external_calendar_id, ciphertext, attempts
      from private.claim_due_deleted_org_calendar_grants(1, ${REVOCATION_LEASE_SECONDS})`);
  return deletedOrg && { ...deletedOrg, kind: 'deleted_org' };
}

/** Revokes at the provider: the connection's stored tokens, or a dropped grant's copy of them. */
function revokeAtProvider(ctx: RequestContext, claimed: ClaimedRevocation): Promise<boolean> {
  if (claimed.kind === 'leaver') return revokeGrant(ctx, claimed.connection_id, claimed);
  const sealed: SealedGrant = {
    orgId: claimed.org_id,
    provider: claimed.provider,
    accountEmail: claimed.account_email,
    externalCalendarId: claimed.external_calendar_id,
    ciphertext: claimed.ciphertext,
  };
  return revokeSealedGrant(ctx, sealed, claimed.connection_id, claimed);
}

/** Records the attempt (error null: done); the status, null when the revocation is gone. */
async function finish(ctx: RequestContext, claimed: ClaimedRevocation, error: string | null): Promise<RevocationStatus | null> {
  const [row] = await asServiceRole(ctx.sql, (tx) =>
    claimed.kind === 'leaver'
      ? tx<{ status: RevocationStatus | null }[]>`
          select private.finish_calendar_grant_revocation(${claimed.connection_id}::uuid, ${error}) as status`
      : tx<{ status: RevocationStatus | null }[]>`
          select private.finish_deleted_org_calendar_grant(${claimed.id}::uuid, ${error}) as status`);
  return row?.status ?? null;
}

/** Revokes and records the attempt; never throws (a claimed revocation not recorded is taken again once its lease runs out). */
async function revokeClaimed(ctx: RequestContext, claimed: ClaimedRevocation): Promise<RevocationResult> {
  const id = claimed.connection_id;
  const what = claimed.kind === 'leaver' ? `calendar connection ${id}` : `deleted calendar connection or request ${id} of org ${claimed.org_id}`;
  let revoked = false;
  let failure: unknown;
  try {
    revoked = await revokeAtProvider(ctx, claimed);
  } catch (error) {
    failure = error;
  }
  const message = failure === undefined ? null : failureText(failure);
  try {
    const status = (await finish(ctx, claimed, message)) ?? 'gone';
    if (status === 'pending') ctx.log(`revoking the grant of ${what} failed (attempt ${claimed.attempts}); retried later`, failure);
    if (status === 'given_up') ctx.log(`gave up revoking the grant of ${what} after ${claimed.attempts} attempts; deleted it anyway`, failure);
    return { connection_id: id, status, revoked_at_provider: revoked };
  } catch (error) {
    ctx.log(`the attempt to revoke the grant of ${what} could not be recorded; a later pass takes it`, error);
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
