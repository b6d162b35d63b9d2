/**
 * POST /calendar/connections/:id/disconnect (admins, calendar.manage, JWT).
 * disconnect_calendar as the user marks the connection revoked at once (so
 * nothing uses it from now on, whatever happens next; PT404 outside the
 * caller's orgs → 404), then the grant is revoked at the provider
 * (grant-revocation.ts: where it offers that, and not while another
 * connection holds the same account; the account is read before the
 * disconnect) and the row and its tokens are deleted. A failed revocation is
 * logged and does not stop the disconnect: our copy of the tokens is gone
 * either way, and the user can still remove the app's access at the
 * provider. Answers `{ connection_id, revoked_at_provider }`.
 */
import type { UserClaims } from '../_shared/auth.ts';
import { withUserScope } from '../_shared/db.ts';
import type { CalendarProvider } from '../_shared/calendar/index.ts';
import { json } from '../_shared/http.ts';
import { asServiceRoleActing } from '../_shared/service-role-acting.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { mapCalendarErrors } from './errors.ts';
import { requireKeyring } from '../_shared/scheduling/settings.ts';
import { type ConnectionAccount, connectionAccount, revokeGrant } from './grant-revocation.ts';

/** Whether the provider confirmed the grant is gone; false when it offers no revocation, another connection keeps it, or it failed. */
async function revokeAtProvider(ctx: RequestContext, connectionId: string, account: ConnectionAccount | undefined): Promise<boolean> {
  try {
    return await revokeGrant(ctx, connectionId, account);
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
  // The admin's claims kept: the audit log names them as the delete's actor.
  await asServiceRoleActing(ctx.sql, claims, (tx) => tx`select private.delete_calendar_connection(${row.connection_id}::uuid)`);
  return json({ connection_id: row.connection_id, revoked_at_provider: revoked });
}
