/**
 * POST /calendar/reseal (service role): finishing a CALENDAR_TOKEN_KEY
 * rotation. Token sets sealed with an older key of the keyring (the header's
 * kid is not the first key's: needsReseal) are opened and sealed again under
 * the first key, at most `limit` (default 100) per call: connections'
 * tokens, connection requests' (expired ones too, until purged) and dropped
 * grants' copies waiting for their revocation
 * (private.calendar_secrets_to_reseal). Each is sealed under its
 * connection's current context (stored-tokens.ts): a set sealed before
 * 20261123014000 under the legacy one moves to it, once it has shown it
 * names the row's account. Each is written only while it is still the
 * stored set (private.reseal_calendar_secret), so a refresh or reconnect
 * meanwhile keeps its own. Answers `{ resealed, failed: [{ kind, id, reason
 * }], remaining }`; `remaining` 0 means every stored set opens with the
 * first key alone and the old keys may go. A set that does not
 * open (`unknown_key`: its key is not in this worker's keyring; `tampered`)
 * is listed in `failed` and stays. With `retire_unknown_keys: true` a
 * connection's set under a key not in the keyring is marked here, and only
 * here, needs_reauth (reason `unknown_key: …`, calendar.connection_broken
 * once; private.mark_calendar_needs_reauth over the set read, so a reconnect
 * meanwhile stands). It is opt-in: a worker started before the key change
 * lacks the new key and would take every set already re-sealed for gone,
 * so the operator asks for it once the old key is retired and every worker
 * has the new keyring (a worker using a calendar only reports it missing:
 * session.ts). `org_id` takes only that org's sets; `remaining` still counts
 * every org's.
 */
import { asServiceRole } from '../_shared/db.ts';
import { json } from '../_shared/http.ts';
import { isPostgresError } from '../_shared/pg-errors.ts';
import { type CalendarProvider, type Keyring, needsReseal, seal, TokenCryptoError } from '../_shared/calendar/index.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { requireKeyring } from '../_shared/scheduling/settings.ts';
import { type ConnectionKey, openStoredPlaintext, tokenContext } from '../_shared/scheduling/stored-tokens.ts';
import { readOptionalBody, resealBody } from './schemas.ts';

const DEFAULT_LIMIT = 100;
/** Rows asked of the database at a time. */
const PAGE = 50;

type SecretKind = 'connection' | 'request' | 'dropped_grant';

interface SealedSecret {
  kind: SecretKind;
  id: string;
  org_id: string;
  provider: CalendarProvider;
  account_subject: string | null;
  other_subjects: string[];
  account_email: string;
  external_calendar_id: string | null;
  ciphertext: string;
}

interface Failure {
  kind: SecretKind;
  id: string;
  reason: string;
}

/**
 * The same plaintext sealed under the keyring's first key and the current
 * context (a set sealed before 20261123014000 moves to it); true when stored
 * over the set read.
 */
async function reseal(ctx: RequestContext, keyring: Keyring, secret: SealedSecret): Promise<boolean> {
  // As stored, like the session reads it (no normalisation: the row's values are what the set is bound to).
  const key: ConnectionKey = {
    orgId: secret.org_id,
    provider: secret.provider,
    accountSubject: secret.account_subject,
    otherSubjects: secret.other_subjects,
    accountEmail: secret.account_email,
    externalCalendarId: secret.external_calendar_id,
  };
  const ciphertext = await seal(await openStoredPlaintext(secret.ciphertext, keyring, key), keyring, tokenContext(key));
  const [row] = await asServiceRole(ctx.sql, (tx) =>
    tx<{ saved: boolean }[]>`
      select private.reseal_calendar_secret(${secret.kind}, ${secret.id}::uuid, ${secret.ciphertext}, ${ciphertext}) as saved`);
  return row.saved;
}

/** Its key is gone for good (the operator's keyring lacks it): only a reconnect brings the calendar back. */
async function markKeyGone(ctx: RequestContext, secret: SealedSecret, error: TokenCryptoError): Promise<void> {
  const reason = `unknown_key: ${error.message}`.slice(0, 500);
  try {
    await asServiceRole(ctx.sql, (tx) =>
      tx`select private.mark_calendar_needs_reauth(${secret.id}::uuid, ${reason}, ${secret.ciphertext})`);
  } catch (markError) {
    // Disconnected meanwhile: nothing left to mark.
    if (!(isPostgresError(markError) && markError.code === 'P0002')) throw markError;
  }
}

export async function resealTokens(ctx: RequestContext, req: Request): Promise<Response> {
  const body = await readOptionalBody(req, resealBody);
  const limit = body.limit ?? DEFAULT_LIMIT;
  const keyring = await requireKeyring(ctx.settings);
  const currentKid = keyring.keys[0].kid;
  let resealed = 0;
  let taken = 0;
  const failed: Failure[] = [];
  // Failed ones are left out of the next page, so they never hold the others up.
  const seen: string[] = [];
  while (taken < limit) {
    const page = await asServiceRole(ctx.sql, (tx) =>
      tx<SealedSecret[]>`
        select kind, id, org_id, provider, account_subject, other_subjects, account_email, external_calendar_id, ciphertext
        from private.calendar_secrets_to_reseal(${currentKid}, ${Math.min(PAGE, limit - taken)}, ${seen}::uuid[],
          ${body.org_id ?? null}::uuid)`);
    if (page.length === 0) break;
    for (const secret of page) {
      seen.push(secret.id);
      taken += 1;
      try {
        if (!needsReseal(secret.ciphertext, keyring)) continue;
        if (await reseal(ctx, keyring, secret)) resealed += 1;
      } catch (error) {
        if (!(error instanceof TokenCryptoError)) throw error;
        ctx.log(`re-sealing the calendar tokens of ${secret.kind} ${secret.id} failed (${error.reason})`, error);
        failed.push({ kind: secret.kind, id: secret.id, reason: error.reason });
        if (body.retire_unknown_keys && secret.kind === 'connection' && error.reason === 'unknown_key') {
          await markKeyGone(ctx, secret, error);
        }
      }
    }
  }
  const [{ remaining }] = await asServiceRole(ctx.sql, (tx) =>
    tx<{ remaining: number }[]>`select private.count_calendar_secrets_to_reseal(${currentKid})::int as remaining`);
  return json({ resealed, failed, remaining }, 200, { 'cache-control': 'no-store' });
}
