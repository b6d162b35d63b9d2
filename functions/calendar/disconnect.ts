/**
 * POST /calendar/connections/:id/disconnect (admins, calendar.manage, JWT).
 * disconnect_calendar as the user marks the connection revoked at once (so
 * nothing uses it from now on, whatever happens next; P0002 outside the
 * caller's orgs → 404), then the grant is revoked at the provider where it
 * offers that (Google; Microsoft has no per-token revocation, see
 * docs/calendar.md) and the row and its tokens are deleted. Google's
 * revocation ends the app's whole grant for the Google user, so it is left
 * alone while another connection (in any org) holds the same account: that
 * one would stop working too. A failed revocation is logged and does not
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

/** Whether another live connection, in any org, holds this one's provider account (a bare boolean from SQL). */
async function accountConnectedElsewhere(ctx: RequestContext, connectionId: string): Promise<boolean> {
  const [row] = await asServiceRole(ctx.sql, (tx) =>
    tx<{ shared: boolean }[]>`select private.calendar_account_connected_elsewhere(${connectionId}::uuid) as shared`);
  return row?.shared !== false;
}

/** Whether the provider confirmed the grant is gone; false when it offers no revocation, another connection keeps it, or it failed. */
async function revokeAtProvider(ctx: RequestContext, connectionId: string): Promise<boolean> {
  try {
    const stored = (await loadTokens(ctx.sql, [connectionId])).get(connectionId);
    if (!stored) return false;
    const client = optionalClient(ctx.settings, stored.provider);
    if (!client) return false;
    const tokens = await openTokenSet(stored.ciphertext, await requireKeyring(ctx.settings), tokenContext(stored));
    // Asked last, right before revoking, to keep a concurrent connect of the same account out of the window.
    if (await accountConnectedElsewhere(ctx, connectionId)) return false;
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
  const [row] = await mapCalendarErrors(
    () =>
      withUserScope(ctx.sql, claims, (tx) =>
        tx<{ connection_id: string; provider: CalendarProvider }[]>`
          select connection_id, provider from public.disconnect_calendar(${connectionId}::uuid)`),
    { forbidden: 'Only admins can disconnect calendars.', notFound: 'The calendar connection was not found.' },
  );
  const revoked = await revokeAtProvider(ctx, row.connection_id);
  await asServiceRole(ctx.sql, (tx) => tx`select private.delete_calendar_connection(${row.connection_id}::uuid)`);
  return json({ connection_id: row.connection_id, revoked_at_provider: revoked });
}
