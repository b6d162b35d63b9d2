/**
 * Encrypted token sets as the database keeps them (private.calendar_tokens,
 * reached only through the service-role functions), and the AES-GCM context
 * each is sealed under.
 *
 * The context is the connection's unique key (org, provider, account e-mail,
 * calendar id), not its id: the callback seals the tokens BEFORE
 * save_calendar_connection creates the row (one call stores both), so the id
 * is not known yet. The key is as unique as the id (one row per calendar and
 * org), so a ciphertext copied to another connection still does not open.
 */
import { asServiceRole, type Sql } from '../db.ts';
import type { CalendarProvider } from '../calendar/index.ts';

export interface ConnectionKey {
  orgId: string;
  provider: CalendarProvider;
  /** As stored: trimmed and lower-cased (save_calendar_connection does the same). */
  accountEmail: string;
  /** Google: 'primary' when none was chosen; Microsoft: null = the default calendar. */
  externalCalendarId: string | null;
}

export interface StoredTokens extends ConnectionKey {
  connectionId: string;
  status: 'connected' | 'needs_reauth' | 'revoked';
  ciphertext: string;
}

/** What save_calendar_connection will store for this account: the same normalisation, so the context matches later. */
export function connectionKey(
  orgId: string,
  provider: CalendarProvider,
  accountEmail: string,
  externalCalendarId: string | null,
): ConnectionKey {
  const calendarId = externalCalendarId?.trim() || null;
  return {
    orgId,
    provider,
    accountEmail: accountEmail.trim().toLowerCase(),
    externalCalendarId: provider === 'google' ? calendarId ?? 'primary' : calendarId,
  };
}

/** The associated data a connection's token set is sealed with. */
export function tokenContext(key: ConnectionKey): string {
  return `${key.orgId}:${key.provider}:${key.accountEmail}:${key.externalCalendarId ?? ''}`;
}

interface TokenRow {
  connection_id: string;
  org_id: string;
  provider: CalendarProvider;
  external_calendar_id: string | null;
  status: StoredTokens['status'];
  ciphertext: string;
  account_email: string;
}

/** The token sets of these connections (revoked ones included), by id; unknown ids are left out. */
export async function loadTokens(sql: Sql, connectionIds: readonly string[]): Promise<Map<string, StoredTokens>> {
  const found = new Map<string, StoredTokens>();
  if (connectionIds.length === 0) return found;
  const rows = await asServiceRole(sql, (tx) =>
    tx<TokenRow[]>`
      select connection_id, org_id, provider, external_calendar_id, status, ciphertext, account_email
      from private.calendar_tokens_for(${[...new Set(connectionIds)]}::uuid[])`);
  for (const row of rows) {
    found.set(row.connection_id, {
      connectionId: row.connection_id,
      orgId: row.org_id,
      provider: row.provider,
      accountEmail: row.account_email,
      externalCalendarId: row.external_calendar_id,
      status: row.status,
      ciphertext: row.ciphertext,
    });
  }
  return found;
}
