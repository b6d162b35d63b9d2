/**
 * One request's access to connected calendars: tokens opened once, refreshed
 * once (shared by every concurrent caller in the request), busy times asked
 * once per calendar and window. Everything that can go wrong at a provider
 * ends as a CalendarUnavailable naming why, so availability can list the
 * calendar as missing and mirroring can record the error, instead of either
 * silently treating the calendar as free or failing the whole request.
 *
 * Token lifecycle (docs/calendar.md, "Use"):
 * - refreshed when it ends within 5 minutes, and once more when the provider
 *   refuses an access token we thought good (401); the new set is sealed and
 *   stored with private.update_calendar_tokens (which also heals needs_reauth),
 *   sealed under the connection's current context (stored-tokens.ts), so a
 *   set sealed before 20261123014000 moves to it then;
 * - a refused grant (invalid_grant, a missing scope) only the user can fix:
 *   private.mark_calendar_needs_reauth, which tells the org once
 *   (calendar.connection_broken).
 * Both name the stored set the request read, and act only while it is still
 * the stored one: a reconnect in the meantime keeps its tokens and its status.
 * Tokens sealed with a key this worker lacks (`unknown_key`) change nothing:
 * a worker started before a CALENDAR_TOKEN_KEY change, or a deploy missing a
 * key, is mended by the keyring, not by a reconnect of every calendar. Only
 * POST calendar/reseal, run with the full keyring, marks them (reseal.ts).
 */
import { asServiceRole, type Sql } from '../db.ts';
import {
  type BusyInterval,
  CalendarAuthError,
  type CalendarClient,
  CalendarProviderError,
  CalendarRateLimitError,
  type Keyring,
  needsRefresh,
  sealTokenSet,
  TokenCryptoError,
  type TokenSet,
} from '../calendar/index.ts';
import { isPostgresError } from '../pg-errors.ts';
import { type CalendarSettings, optionalClient } from './settings.ts';
import { loadTokens, openStoredTokens, type StoredTokens, tokenContext } from './stored-tokens.ts';

/**
 * Why a calendar could not be used: `needs_reauth` (an admin must connect it
 * again), `unreachable` (the provider failed or could not answer for it),
 * `rate_limited` (throttled longer than we wait within a request),
 * `key_missing` (sealed with a key this server does not have now: until the
 * keyring holds it again), `token_unreadable` (the stored tokens do not open),
 * `provider_not_configured` (the provider's OAuth app was removed here),
 * `disconnected` (gone meanwhile).
 */
export type MissingReason =
  | 'needs_reauth'
  | 'unreachable'
  | 'rate_limited'
  | 'key_missing'
  | 'token_unreadable'
  | 'provider_not_configured'
  | 'disconnected';

export class CalendarUnavailable extends Error {
  readonly reason: MissingReason;
  readonly retryAfterSeconds: number | undefined;

  constructor(reason: MissingReason, message: string, options: { cause?: unknown; retryAfterSeconds?: number } = {}) {
    super(message, { cause: options.cause });
    this.name = 'CalendarUnavailable';
    this.reason = reason;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export interface CalendarUse {
  client: CalendarClient;
  accessToken: string;
  stored: StoredTokens;
}

export interface SessionDeps {
  sql: () => Sql;
  settings: CalendarSettings;
  /** Asked only when a token is opened or sealed, so requests that need no tokens work without CALENDAR_TOKEN_KEY. */
  keyring: () => Promise<Keyring>;
  log: (message: string, error?: unknown) => void;
}

export class CalendarSession {
  readonly #deps: SessionDeps;
  readonly #stored = new Map<string, StoredTokens>();
  readonly #tokens = new Map<string, Promise<TokenSet>>();
  readonly #busy = new Map<string, Promise<BusyInterval[]>>();

  constructor(deps: SessionDeps) {
    this.#deps = deps;
  }

  /** Reads the token sets of these connections in one query (those not loaded yet). */
  async load(connectionIds: readonly string[]): Promise<void> {
    const wanted = connectionIds.filter((id) => !this.#stored.has(id));
    if (wanted.length === 0) return;
    for (const [id, stored] of await loadTokens(this.#deps.sql(), wanted)) this.#stored.set(id, stored);
  }

  /**
   * Runs `fn` with a fresh access token of the connection; a 401 refreshes
   * and runs it once more. Throws CalendarUnavailable for anything the
   * provider or the stored tokens make impossible.
   */
  async use<T>(connectionId: string, fn: (use: CalendarUse) => Promise<T>): Promise<T> {
    await this.load([connectionId]);
    const stored = this.#stored.get(connectionId);
    if (!stored || stored.status === 'revoked') {
      throw new CalendarUnavailable('disconnected', 'The calendar was disconnected.');
    }
    if (stored.status === 'needs_reauth') {
      throw new CalendarUnavailable('needs_reauth', 'The calendar must be connected again (the provider refused its grant).');
    }
    const client = optionalClient(this.#deps.settings, stored.provider);
    if (!client) {
      throw new CalendarUnavailable('provider_not_configured', `The ${stored.provider} app is not configured on this server.`);
    }
    try {
      let tokens = await this.#fresh(stored, client);
      try {
        return await fn({ client, accessToken: tokens.accessToken, stored });
      } catch (error) {
        if (!(error instanceof CalendarAuthError) || error.needsReauth) throw error;
        // The provider refused a token we thought good (revoked session, clock skew): refresh once and retry.
        tokens = await this.#fresh(stored, client, tokens);
        return await fn({ client, accessToken: tokens.accessToken, stored });
      }
    } catch (error) {
      throw await this.#unavailable(stored, error);
    }
  }

  /** The busy times of one calendar within [from, to), asked once per request; `timeZone` places zoneless all-day events. */
  busy(connectionId: string, from: Date, to: Date, timeZone?: string): Promise<BusyInterval[]> {
    const key = `${connectionId}:${from.getTime()}:${to.getTime()}:${timeZone ?? ''}`;
    let busy = this.#busy.get(key);
    if (!busy) {
      busy = this.use(connectionId, async ({ client, accessToken, stored }) => {
        const result = await client.busyTimes(accessToken, {
          timeMin: from,
          timeMax: to,
          ...(stored.externalCalendarId ? { calendarIds: [stored.externalCalendarId] } : {}),
          ...(timeZone ? { timeZone } : {}),
        });
        if (result.errors.length > 0) {
          // Google could not answer for the calendar: unknown, not free.
          const reasons = result.errors.map((error) => error.reason).join(', ');
          throw new CalendarUnavailable('unreachable', `The provider could not read the calendar (${reasons}).`);
        }
        return result.busy;
      });
      this.#busy.set(key, busy);
    }
    return busy;
  }

  /**
   * The connection's token set, refreshed when it ends soon; `stale` is a set
   * the provider refused, so a newer one is needed whatever its expiry says.
   * Concurrent callers share one open and one refresh.
   */
  #fresh(stored: StoredTokens, client: CalendarClient, stale?: TokenSet): Promise<TokenSet> {
    const id = stored.connectionId;
    const current = this.#tokens.get(id);
    if (current && !stale) return current;
    const next = (async () => {
      if (stale && current) {
        // Another caller may have refreshed since this one's token was refused: use that set.
        const latest = await current.catch(() => undefined);
        if (latest && latest !== stale) return latest;
      }
      const known = stale ?? await openStoredTokens(stored.ciphertext, await this.#deps.keyring(), stored);
      if (!stale && !needsRefresh(known, this.#deps.settings.now())) return known;
      return await this.#refresh(stored, client, known);
    })();
    this.#tokens.set(id, next);
    return next;
  }

  async #refresh(stored: StoredTokens, client: CalendarClient, tokens: TokenSet): Promise<TokenSet> {
    if (!tokens.refreshToken) {
      throw new CalendarAuthError('invalid_grant', stored.provider, 'The provider gave no refresh token; connect the calendar again.');
    }
    const refreshed = await client.refresh(tokens.refreshToken);
    // The account is known from the connect; a refresh does not repeat it.
    const kept: TokenSet = tokens.account && !refreshed.account ? { ...refreshed, account: tokens.account } : refreshed;
    const ciphertext = await sealTokenSet(kept, await this.#deps.keyring(), tokenContext(stored));
    let saved: boolean;
    try {
      // Stored only over the set this refresh started from: a reconnect meanwhile keeps its newer tokens.
      const [row] = await asServiceRole(this.#deps.sql(), (tx) =>
        tx<{ saved: boolean }[]>`
          select private.update_calendar_tokens(${stored.connectionId}::uuid, ${ciphertext},
            ${kept.expiresAt.toISOString()}::timestamptz, ${stored.ciphertext}) as saved`);
      saved = row.saved;
    } catch (error) {
      if (isPostgresError(error) && error.code === 'P0002') {
        throw new CalendarUnavailable('disconnected', 'The calendar was disconnected.', { cause: error });
      }
      throw error;
    }
    if (saved) {
      stored.ciphertext = ciphertext;
      stored.status = 'connected';
    }
    return kept;
  }

  async #unavailable(stored: StoredTokens, error: unknown): Promise<CalendarUnavailable> {
    if (error instanceof CalendarUnavailable) return error;
    const calendar = `${stored.provider} calendar ${stored.connectionId}`;
    if (error instanceof CalendarAuthError && error.needsReauth) {
      const reason = `${error.providerCode ?? error.kind}: ${error.message}`;
      stored.status = 'needs_reauth';
      try {
        await asServiceRole(this.#deps.sql(), (tx) =>
          tx`select private.mark_calendar_needs_reauth(${stored.connectionId}::uuid, ${reason.slice(0, 500)}, ${stored.ciphertext})`);
      } catch (markError) {
        this.#deps.log(`marking the ${calendar} needs_reauth failed`, markError);
      }
      return new CalendarUnavailable('needs_reauth', 'The calendar must be connected again (the provider refused its grant).', {
        cause: error,
      });
    }
    if (error instanceof TokenCryptoError && error.reason === 'unknown_key') {
      this.#deps.log(
        `CALENDAR_TOKEN_KEY lacks a key: the tokens of the ${calendar} cannot be opened by this worker ` +
          '(started before a key change, or deployed without the key); the calendar is unavailable until the key is back',
        error,
      );
      return new CalendarUnavailable('key_missing', 'The calendar\'s tokens were sealed with a key this server does not have now; try again later.', {
        cause: error,
      });
    }
    if (error instanceof CalendarRateLimitError) {
      return new CalendarUnavailable('rate_limited', `The provider is throttling; try again in ${error.retryAfterSeconds} s.`, {
        cause: error,
        retryAfterSeconds: error.retryAfterSeconds,
      });
    }
    if (error instanceof TokenCryptoError) {
      this.#deps.log(`the tokens of the ${calendar} do not open (${error.reason})`, error);
      return new CalendarUnavailable('token_unreadable', 'The stored tokens cannot be read with this server\'s key; connect the calendar again.', {
        cause: error,
      });
    }
    if (error instanceof CalendarProviderError || error instanceof CalendarAuthError) {
      this.#deps.log(`the ${calendar} could not be used`, error);
      return new CalendarUnavailable('unreachable', `The provider failed: ${error.message}`, { cause: error });
    }
    throw error;
  }
}
