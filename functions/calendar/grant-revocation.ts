/**
 * Revoking a connection's grant at the provider, the one way its callers do
 * it: a disconnect (disconnect.ts), the revocation pass over leavers'
 * connections and dropped grants (revocations.ts), and a connect that
 * failed after the code exchange (oauth.ts). Google's revocation ends the
 * app's whole grant for the Google user, so it is left alone while another
 * live connection (in any org) holds the same account: that one would stop
 * working too. So does an unexpired connection request of the account
 * (20261123010300): its completion would get dead tokens, and its deletion
 * queues the grant anyway. That is asked by the account, not by the
 * connection's id (a connect of the same account meanwhile deletes the
 * revoked row and makes a new one, which the gone id would not find), and
 * asked last, right before revoking, to keep such a connect out of the
 * window. Microsoft has no per-token revocation (see docs/calendar.md): its
 * client answers `revoked: false`.
 */
import { asServiceRole } from '../_shared/db.ts';
import { type CalendarProvider, calendarRevokerFromEnv } from '../_shared/calendar/index.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { requireKeyring } from '../_shared/scheduling/settings.ts';
import { type ConnectionKey, loadTokens, openStoredTokens } from '../_shared/scheduling/stored-tokens.ts';

/** The provider account a connection holds, as its row says. */
export interface ConnectionAccount {
  provider: CalendarProvider;
  account_subject: string | null;
  account_email: string;
}

/** The connection's account, read while its row is there. */
export async function connectionAccount(ctx: RequestContext, connectionId: string): Promise<ConnectionAccount | undefined> {
  const [row] = await asServiceRole(ctx.sql, (tx) =>
    tx<ConnectionAccount[]>`
      select provider, account_subject, account_email from public.calendar_connections where id = ${connectionId}::uuid`);
  return row;
}

/**
 * Whether a live connection or an unexpired connection request other than
 * this one (null: none), in any org, holds its provider account (a bare
 * boolean from SQL).
 */
async function accountConnectedElsewhere(ctx: RequestContext, account: ConnectionAccount, connectionId: string | null): Promise<boolean> {
  const [row] = await asServiceRole(ctx.sql, (tx) =>
    tx<{ shared: boolean }[]>`
      select private.calendar_account_connected_elsewhere(${account.provider}, ${account.account_subject},
                                                          ${account.account_email}, ${connectionId}::uuid) as shared`);
  return row?.shared !== false;
}

/**
 * Revokes a grant whose tokens were never parked (a connect that failed
 * after the code exchange, oauth.ts): whether the provider confirmed it;
 * false when it offers no revocation, the account is unknown (which other
 * connection it might hold cannot be asked) or held elsewhere. Throws as
 * revokeSealedGrant.
 */
export async function revokeUnparkedGrant(
  ctx: RequestContext,
  token: string,
  account: ConnectionAccount | undefined,
): Promise<boolean> {
  if (!account) return false;
  const revoke = calendarRevokerFromEnv(account.provider, ctx.settings.env, ctx.settings.http);
  if (!revoke || (await accountConnectedElsewhere(ctx, account, null))) return false;
  const { revoked } = await revoke(token);
  return revoked;
}

/**
 * A grant's sealed token set and the connection key it is sealed under (a
 * connection's, or a dropped grant's copy). Without accountSubject, the
 * subject is the account's that revokeSealedGrant is given: a dropped
 * grant's row names it (private.claim_due_deleted_org_calendar_grants).
 */
export type SealedGrant = Omit<ConnectionKey, 'accountSubject'> & { accountSubject?: string | null; ciphertext: string };

/**
 * Whether the provider confirmed the grant is gone: false when there is
 * nothing to revoke (no tokens, the provider offering no revocation, the
 * account unknown or held by another connection). Google's revocation needs
 * no OAuth app, so one removed from this deployment after the connect still
 * revokes. Throws when the provider refused or could not be reached, or
 * the tokens could not be opened.
 */
export async function revokeGrant(
  ctx: RequestContext,
  connectionId: string,
  account: ConnectionAccount | undefined,
): Promise<boolean> {
  const stored = (await loadTokens(ctx.sql, [connectionId])).get(connectionId);
  if (!stored) return false;
  return revokeSealedGrant(ctx, stored, connectionId, account);
}

/**
 * revokeGrant for tokens already in hand: those a deleted org's, a deleted
 * connection's or an uncompleted connection request's copy left in
 * private.deleted_org_calendar_grants (revocations.ts). connectionId
 * is the one the account check leaves out (it may be gone).
 */
export async function revokeSealedGrant(
  ctx: RequestContext,
  sealed: SealedGrant,
  connectionId: string,
  account: ConnectionAccount | undefined,
): Promise<boolean> {
  const revoke = calendarRevokerFromEnv(sealed.provider, ctx.settings.env, ctx.settings.http);
  if (!revoke) return false;
  const key: ConnectionKey = {
    ...sealed,
    accountSubject: sealed.accountSubject !== undefined ? sealed.accountSubject : account?.account_subject ?? null,
  };
  const tokens = await openStoredTokens(sealed.ciphertext, await requireKeyring(ctx.settings), key);
  if (!account || (await accountConnectedElsewhere(ctx, account, connectionId))) return false;
  // Google: revoking the refresh token ends the whole grant, access tokens included.
  const { revoked } = await revoke(tokens.refreshToken ?? tokens.accessToken);
  return revoked;
}
