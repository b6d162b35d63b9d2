/**
 * POST /calendar/connections/:id/disconnect (admins, calendar.manage, JWT).
 * disconnect_calendar as the user marks the connection revoked at once (so
 * nothing uses it from now on, whatever happens next; P0002 outside the
 * caller's orgs → 404), then the grant is revoked at the provider where it
 * offers that (Google; Microsoft has no per-token revocation, see
 * docs/calendar.md) and the row and its tokens are deleted. Google's
 * revocation ends the app's whole grant for the Google user, so it is left
 * alone while another connection (in any org) holds the same account: that
 * one would stop working too. That is asked by the account (read before the
 * disconnect), not by the connection's id: a connect of the same account
 * meanwhile deletes the revoked row and makes a new one, which the gone id
 * would not find. A failed revocation is logged and does not
 * stop the disconnect: our copy of the tokens is gone either way, and the
 * user can still remove the app's access at the provider. Answers
 * `{ connection_id, revoked_at_provider }`.
 */
import type { UserClaims } from '../_shared/auth.ts';
import { asServiceRole, withUserScope } from '../_shared/db.ts';
import { type CalendarProvider, openTokenSet } from '../_shared/calendar/index.ts';
import { json } from '../_shared/http.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { mapCalendarErrors } from './errors.ts';
import { optionalClient, requireKeyring } from '../_shared/scheduling/settings.ts';
import { loadTokens, tokenContext } from '../_shared/scheduling/stored-tokens.ts';

/** The provider account a connection holds, as its row says. */
interface ConnectionAccount {
  provider: CalendarProvider;
  account_subject: string | null;
  account_email: string;
}

async function connectionAccount(ctx: RequestContext, connectionId: string): Promise<ConnectionAccount | undefined> {
  const [row] = await asServiceRole(ctx.sql, (tx) =>
    tx<ConnectionAccount[]>`
      select provider, account_subject, account_email from public.calendar_connections where id = ${connectionId}::uuid`);
  return row;
}

/** Whether a live connection other than this one, in any org, holds its provider account (a bare boolean from SQL). */
async function accountConnectedElsewhere(ctx: RequestContext, account: ConnectionAccount, connectionId: string): Promise<boolean> {
  const [row] = await asServiceRole(ctx.sql, (tx) =>
    tx<{ shared: boolean }[]>`
      select private.calendar_account_connected_elsewhere(${account.provider}, ${account.account_subject},
                                                          ${account.account_email}, ${connectionId}::uuid) as shared`);
  return row?.shared !== false;
}

/** Whether the provider confirmed the grant is gone; false when it offers no revocation, another connection keeps it, or it failed. */
async function revokeAtProvider(ctx: RequestContext, connectionId: string, account: ConnectionAccount | undefined): Promise<boolean> {
  try {
    const stored = (await loadTokens(ctx.sql, [connectionId])).get(connectionId);
    if (!stored) return false;
    const client = optionalClient(ctx.settings, stored.provider);
    if (!client) return false;
    const tokens = await openTokenSet(stored.ciphertext, await requireKeyring(ctx.settings), tokenContext(stored));
    // Asked last, right before revoking, to keep a concurrent connect of the same account out of the window.
    if (!account || (await accountConnectedElsewhere(ctx, account, connectionId))) return false;
    // Google: revoking the refresh token ends the whole grant, access tokens included.
    const { revoked } = await client.revoke(tokens.refreshToken ?? tokens.accessToken);
    return revoked;
  } catch (error) {
    ctx.log(`revoking calendar connection ${connectionId} at the provider failed; deleting it anyway`, error);
    return false;
  }
}

export async function disconnect(
  ctx: RequestContext,
  claims: UserClaims,
  connectionId: string,
): Promise<Response> {
  // Without the key the tokens cannot be revoked: say so before changing anything.
  await requireKeyring(ctx.settings);
  // Read first: the row can be gone by the time the revocation is decided.
  const account = await connectionAccount(ctx, connectionId);
  const [row] = await mapCalendarErrors(
    () =>
      withUserScope(ctx.sql, claims, (tx) =>
        tx<{ connection_id: string; provider: CalendarProvider }[]>`
          select connection_id, provider from public.disconnect_calendar(${connectionId}::uuid)`),
    { forbidden: 'Only admins can disconnect calendars.', notFound: 'The calendar connection was not found.' },
  );
  const revoked = await revokeAtProvider(ctx, row.connection_id, account);
  await asServiceRole(ctx.sql, (tx) => tx`select private.delete_calendar_connection(${row.connection_id}::uuid)`);
  return json({ connection_id: row.connection_id, revoked_at_provider: revoked });
}
