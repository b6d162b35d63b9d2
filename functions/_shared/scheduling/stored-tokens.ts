/**
 * Encrypted token sets as the database keeps them (private.calendar_tokens,
 * reached only through the service-role functions), and the AES-GCM context
 * each is sealed under.
 *
 * The context is the connection's unique key (20261123006500: org, provider,
 * account subject, calendar id; a connection made before it has no subject
 * and is keyed by its e-mail instead), not its id: the callback seals the
 * tokens BEFORE save_calendar_connection creates the row (one call stores
 * both), so the id is not known yet. The key is as unique as the id, so a
 * ciphertext copied to another connection does not open, not even to another
 * account's connection of the same e-mail and calendar (an address that
 * passed to someone else). It is a JSON array, so no part can run into the
 * next.
 *
 * Sets sealed before 20261123014000 are bound to `org:provider:email:calendar`
 * (legacyTokenContext), which two accounts of one e-mail share. They still
 * open, but only when the set names the connection's account (the sealed
 * `account.id`, the provider's subject since the callback requires it); on a
 * connection without a subject, only when it names none of the accounts
 * whose sets the org holds under the same old context (otherSubjects); each
 * is sealed under the new context when next refreshed (session.ts) or
 * re-sealed (POST calendar/reseal, which takes the sets of an older key: a
 * key rotation moves them all).
 */
import { z } from 'zod';
import { asServiceRole, type Sql } from '../db.ts';
import {
  type CalendarProvider,
  type Keyring,
  open,
  openTokenSet,
  TokenCryptoError,
  type TokenSet,
} from '../calendar/index.ts';

export interface ConnectionKey {
  orgId: string;
  provider: CalendarProvider;
  /** The provider's account id (calendar_connections.account_subject); null for a connection made before 20261123006500. */
  accountSubject: string | null;
  /** As stored: trimmed and lower-cased (save_calendar_connection does the same). */
  accountEmail: string;
  /** Google: 'primary' when none was chosen; Microsoft: null = the default calendar. */
  externalCalendarId: string | null;
  /**
   * Where accountSubject is null: the subjects of the org's other sets sealed
   * under the same legacy context (private.calendar_legacy_context_subjects),
   * which a legacy set of this key must not name. Empty or absent: none (a
   * key with a subject, or one built to seal rather than read from a row).
   */
  otherSubjects?: readonly string[];
}

export interface StoredTokens extends ConnectionKey {
  otherSubjects: readonly string[];
  connectionId: string;
  status: 'connected' | 'needs_reauth' | 'revoked';
  ciphertext: string;
}

/** What save_calendar_connection will store for this account: the same normalisation, so the context matches later. */
export function connectionKey(
  orgId: string,
  provider: CalendarProvider,
  accountSubject: string | null,
  accountEmail: string,
  externalCalendarId: string | null,
): ConnectionKey {
  const calendarId = externalCalendarId?.trim() || null;
  return {
    orgId,
    provider,
    accountSubject,
    accountEmail: accountEmail.trim().toLowerCase(),
    externalCalendarId: provider === 'google' ? calendarId ?? 'primary' : calendarId,
  };
}

/** The associated data a connection's token set is sealed with: its unique key (the e-mail only where it has no subject). */
export function tokenContext(key: ConnectionKey): string {
  const account = key.accountSubject === null ? ['email', key.accountEmail] : ['subject', key.accountSubject];
  return JSON.stringify(['v2', key.orgId, key.provider, ...account, key.externalCalendarId]);
}

/** The context of sets sealed before 20261123014000: without the subject, and ambiguous at its separators. */
export function legacyTokenContext(key: ConnectionKey): string {
  return `${key.orgId}:${key.provider}:${key.accountEmail}:${key.externalCalendarId ?? ''}`;
}

/**
 * Opens under the key's context, else under the legacy one, accepting that
 * only when the set names the key's account; a key with no subject has no
 * account to compare, so there it is refused when it names another
 * account's set of the same old context. A legacy set without an account on
 * a connection with a subject is refused too: every connect since
 * 20261123006500 seals one.
 */
async function openBound<T>(
  key: ConnectionKey,
  openUnder: (context: string) => Promise<T>,
  accountOf: (opened: T) => string | undefined,
): Promise<T> {
  try {
    return await openUnder(tokenContext(key));
  } catch (error) {
    if (!(error instanceof TokenCryptoError) || error.reason !== 'tampered') throw error;
    const opened = await openUnder(legacyTokenContext(key));
    const account = accountOf(opened);
    const foreign = key.accountSubject === null
      ? account !== undefined && (key.otherSubjects ?? []).includes(account)
      : account !== key.accountSubject;
    if (foreign) throw new TokenCryptoError('tampered', 'The sealed value belongs to another account than its connection.');
    return opened;
  }
}

/** A connection's (or its request's, or dropped grant's) token set, sealed under either context (see above). */
export function openStoredTokens(ciphertext: string, keyring: Keyring, key: ConnectionKey): Promise<TokenSet> {
  return openBound(key, (context) => openTokenSet(ciphertext, keyring, context), (tokens) => tokens.account?.id);
}

const sealedAccount = z.object({ account: z.object({ id: z.string() }).optional() });

/** openStoredTokens' plaintext as sealed, for re-sealing it unchanged. */
export function openStoredPlaintext(ciphertext: string, keyring: Keyring, key: ConnectionKey): Promise<string> {
  return openBound(key, (context) => open(ciphertext, keyring, context), (plaintext) => {
    try {
      return sealedAccount.parse(JSON.parse(plaintext)).account?.id;
    } catch {
      return undefined;
    }
  });
}

interface TokenRow {
  connection_id: string;
  org_id: string;
  provider: CalendarProvider;
  account_subject: string | null;
  other_subjects: string[];
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
      select connection_id, org_id, provider, account_subject, other_subjects, external_calendar_id, status, ciphertext,
        account_email
      from private.calendar_tokens_for(${[...new Set(connectionIds)]}::uuid[])`);
  for (const row of rows) {
    found.set(row.connection_id, {
      connectionId: row.connection_id,
      orgId: row.org_id,
      provider: row.provider,
      accountSubject: row.account_subject,
      otherSubjects: row.other_subjects,
      accountEmail: row.account_email,
      externalCalendarId: row.external_calendar_id,
      status: row.status,
      ciphertext: row.ciphertext,
    });
  }
  return found;
}
