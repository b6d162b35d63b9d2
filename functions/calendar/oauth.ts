/**
 * Connecting a calendar (admins, calendar.manage), OAuth 2.0 authorization
 * code with PKCE, completed by the user who started it:
 *
 * POST /calendar/oauth/start `{ org_id, provider, bot_id?, redirect_to? }` (JWT)
 *   → redirect_to checked against CALENDAR_REDIRECT_ORIGINS (redirect.ts; 422
 *   `invalid_request`), then begin_calendar_connection as the user stores a
 *   single-use state (10 minutes) with the PKCE verifier and returns its id;
 *   we sign that id (jose) into the provider's `state`; 200
 *   `{ authorization_url, expires_at }`.
 *
 * GET /calendar/oauth/callback?code&state (the provider's browser redirect; no JWT)
 *   → the state's signature and expiry (400 `invalid_state`), then the state
 *   used once in SQL (400 `state_used` / `state_expired`, 403 when the user
 *   lost calendar.manage), the code exchanged with the stored verifier (400
 *   `code_rejected`; 503 `provider_unavailable` with Retry-After when the
 *   provider throttles, 502 when it cannot be reached or fails: the code
 *   unredeemed, the state is given back and the same callback may be loaded
 *   again), the token set sealed (AES-GCM, CALENDAR_TOKEN_KEY) and parked as
 *   a connection request (private.store_calendar_pending_connection, 10
 *   minutes), NOT yet a connection: whoever consented in this browser need
 *   not be the user who started, and the state alone cannot tell (502
 *   `account_unknown` when the provider named no account). Tokens that are
 *   not parked (scopes unticked, account unknown, the store refused or
 *   failed) have their grant given back first, unless another connection or
 *   request holds the account or the provider named none
 *   (grant-revocation.ts). With a redirect_to, the browser is sent there (303) with
 *   `?calendar=pending&connection_request=<id>` or
 *   `?calendar=error&reason=<code>`; without one, JSON
 *   `{ connection_request, provider, account_email, expires_at }` or the
 *   error. The target comes from the signed state only, and was allow-listed
 *   at start, so the id reaches only our dashboard; a state that does not
 *   verify is always answered in JSON.
 *
 * POST /calendar/oauth/complete `{ connection_request }` (JWT)
 *   → private.complete_calendar_connection saves the connection of the
 *   account (the provider's account id, Google's ID-token `sub` or Graph's
 *   /me `id`, finds it whatever e-mail it now shows) only for the user who
 *   started, once, within 10 minutes; 200 `{ connection_id, provider,
 *   account_email }`. Unknown, expired, used, and someone else's requests are
 *   all 404 `not_found`, so ids cannot be probed, and someone else's attempt
 *   gives the request up (the consenting victim's dashboard cancels an
 *   injected connect); 403 when the user lost
 *   calendar.manage, 409 `calendar_in_use`.
 */
import type { JwtClaims, UserClaims } from '../_shared/auth.ts';
import { asServiceRole, withUserScope } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { json } from '../_shared/http.ts';
import { isPostgresError } from '../_shared/pg-errors.ts';
import { asServiceRoleActing } from '../_shared/service-role-acting.ts';
import {
  CalendarAuthError,
  type CalendarClient,
  type CalendarProvider,
  CalendarProviderError,
  CalendarRateLimitError,
  createOAuthState,
  createPkcePair,
  GOOGLE_REQUIRED_SCOPES,
  type Keyring,
  missingScopes,
  type OAuthStateClaims,
  OAuthStateError,
  sealTokenSet,
  type TokenSet,
  verifyOAuthState,
} from '../_shared/calendar/index.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { calendarHttpError, mapCalendarErrors } from './errors.ts';
import { redirectTarget } from './redirect.ts';
import { oauthCompleteBody, oauthStartBody, readBody } from './schemas.ts';
import { requireClient, requireKeyring, requireRedirectUri, requireStateSecret } from '../_shared/scheduling/settings.ts';
import { connectionKey, tokenContext } from '../_shared/scheduling/stored-tokens.ts';
import { revokeUnparkedGrant } from './grant-revocation.ts';

export async function oauthStart(ctx: RequestContext, req: Request, claims: UserClaims): Promise<Response> {
  const body = await readBody(req, oauthStartBody);
  // Refuse before the user goes through the consent screen for nothing.
  const client = requireClient(ctx.settings, body.provider);
  await requireKeyring(ctx.settings);
  const secret = requireStateSecret(ctx.settings);
  const redirectUri = requireRedirectUri(ctx.settings);
  const target = body.redirect_to ? redirectTarget(ctx.settings, body.redirect_to) : undefined;
  const { codeVerifier, codeChallenge } = await createPkcePair();
  const jti = await mapCalendarErrors(
    () =>
      withUserScope(ctx.sql, claims, async (tx) => {
        const [row] = await tx<{ jti: string }[]>`
          select public.begin_calendar_connection(${body.org_id}::uuid, ${body.provider}, ${codeVerifier},
                                                  ${body.bot_id ?? null}::uuid, ${body.redirect_to ?? null}) as jti`;
        return row.jti;
      }),
    { forbidden: 'Only admins can connect calendars.', notFound: 'The bot was not found in this organization.' },
  );
  const { state, expiresAt } = await createOAuthState({
    secret,
    orgId: body.org_id,
    userId: claims.sub,
    provider: body.provider,
    jti,
    ...(target ? { redirectAfter: target } : {}),
    now: ctx.settings.now(),
  });
  return json({
    authorization_url: client.authorizationUrl({ redirectUri, state, codeChallenge }),
    expires_at: expiresAt.toISOString(),
  });
}

interface ConsumedState {
  org_id: string;
  user_id: string;
  bot_id: string | null;
  provider: CalendarProvider;
  code_verifier: string;
  redirect_to: string | null;
  /** When this callback marked it used: its transaction's now(), as consume_calendar_oauth_state sets used_at (text keeps the microseconds). */
  used_at: string;
}

/** The state's row, used once (service role). */
async function consumeState(ctx: RequestContext, claims: OAuthStateClaims): Promise<ConsumedState> {
  let row: ConsumedState | undefined;
  try {
    [row] = await asServiceRole(ctx.sql, (tx) =>
      tx<ConsumedState[]>`
        select org_id, user_id, bot_id, provider, code_verifier, redirect_to, pg_catalog.now()::text as used_at
        from private.consume_calendar_oauth_state(${claims.jti}::uuid)`);
  } catch (error) {
    if (isPostgresError(error) && error.code === '22023') {
      // The SQL names which refusal it is in the detail (never shown to the caller).
      if (error.detail === 'state_used') {
        throw new HttpError(400, 'state_used', 'This sign-in link was already used; start connecting the calendar again.');
      }
      throw new HttpError(400, 'state_expired', 'This sign-in link has expired; start connecting the calendar again.');
    }
    if (isPostgresError(error) && error.code === 'P0002') {
      throw new HttpError(400, 'invalid_state', 'This sign-in link is unknown; start connecting the calendar again.');
    }
    throw calendarHttpError(error, {
      forbidden: 'You no longer have the calendar.manage permission in this organization.',
    });
  }
  // The signature already binds these; a mismatch means the row is not this state's.
  if (!row || row.org_id !== claims.orgId || row.user_id !== claims.userId || row.provider !== claims.provider) {
    throw new HttpError(400, 'invalid_state', 'The sign-in link does not match its record; start again.');
  }
  return row;
}

/**
 * Whether the provider left the code unredeemed, so that the same callback
 * may work later: it throttled us, was not reached, or failed (5xx). Were it
 * to have redeemed the code after all (an answer lost to a timeout), the
 * retry hears invalid_grant, and the provider revokes what it issued.
 */
function codeUnspent(error: unknown): boolean {
  return error instanceof CalendarRateLimitError || (error instanceof CalendarProviderError && error.retryable);
}

/**
 * The state made usable again by the callback that used it, while unexpired
 * (private.give_back_calendar_oauth_state). Never throws: false when it was
 * not given back, and the caller is told to start again.
 */
async function giveStateBack(ctx: RequestContext, jti: string, usedAt: string): Promise<boolean> {
  try {
    const [row] = await asServiceRole(ctx.sql, (tx) =>
      tx<{ given_back: boolean }[]>`
        select private.give_back_calendar_oauth_state(${jti}::uuid, ${usedAt}::timestamptz) as given_back`);
    return row?.given_back === true;
  } catch (error) {
    ctx.log('giving back the state of a calendar connect whose code exchange failed', error);
    return false;
  }
}

/**
 * The provider's answer to our code, as an HTTP error when it refused or
 * failed. When it did not redeem the code, the state is given back, so the
 * same callback may be loaded again; otherwise (invalid_grant: the code is
 * spent) it stays used.
 */
async function exchange(
  ctx: RequestContext,
  claims: OAuthStateClaims,
  state: ConsumedState,
  client: CalendarClient,
  code: string,
): Promise<TokenSet> {
  const redirectUri = requireRedirectUri(ctx.settings);
  try {
    return await client.exchangeCode({ code, codeVerifier: state.code_verifier, redirectUri });
  } catch (error) {
    if (error instanceof CalendarAuthError) {
      throw new HttpError(400, 'code_rejected', 'The provider refused the sign-in code (expired or already used); start again.', {}, {
        cause: error,
      });
    }
    const again = codeUnspent(error) && await giveStateBack(ctx, claims.jti, state.used_at)
      ? 'try again'
      : 'start connecting the calendar again';
    if (error instanceof CalendarRateLimitError) {
      throw new HttpError(503, 'provider_unavailable', `The provider is throttling; ${again} in ${error.retryAfterSeconds} s.`, {
        'retry-after': String(error.retryAfterSeconds),
      });
    }
    throw new HttpError(502, 'provider_unavailable', `The provider did not complete the sign-in; ${again}.`, {}, {
      cause: error,
    });
  }
}

const PROVIDER_ERROR = /^[a-z_]{1,64}$/u;
/** What calendar_connections.account_subject holds (OpenID Connect Core §2: at most 255 ASCII characters). */
const ACCOUNT_SUBJECT = /^[\x21-\x7e]{1,255}$/u;

/**
 * Who connected: the provider's stable account id (Google's ID-token `sub`,
 * Graph's /me `id`), which identifies the connection, and the e-mail shown
 * for it. Without either the connection could not be told apart: 502.
 */
function connectedAccount(tokens: TokenSet): { email: string; subject: string } {
  const email = tokens.account?.email;
  const subject = tokens.account?.id;
  if (!email || !subject || !ACCOUNT_SUBJECT.test(subject)) {
    throw new HttpError(502, 'account_unknown', 'The provider did not say which account was connected; try again.');
  }
  return { email, subject };
}

interface ConnectionRequest {
  id: string;
  expiresAt: string;
  provider: CalendarProvider;
  accountEmail: string;
}

/** The callback's work: the code exchanged and the sealed tokens parked for the starting user to complete. */
async function requestConnection(ctx: RequestContext, url: URL, claims: OAuthStateClaims): Promise<ConnectionRequest> {
  const state = await consumeState(ctx, claims);
  const providerError = url.searchParams.get('error');
  if (providerError !== null) {
    const code = PROVIDER_ERROR.test(providerError) ? providerError : 'authorization_failed';
    throw new HttpError(400, code === 'access_denied' ? 'access_denied' : 'authorization_failed', `The provider answered ${code}: the calendar was not connected.`);
  }
  const code = url.searchParams.get('code');
  if (!code || code.length > 4096) throw new HttpError(400, 'missing_code', 'The provider sent no authorization code.');
  const client = requireClient(ctx.settings, state.provider);
  const keyring = await requireKeyring(ctx.settings);
  const tokens = await exchange(ctx, claims, state, client, code);
  try {
    return await park(ctx, state, tokens, keyring);
  } catch (error) {
    await giveBack(ctx, state.provider, tokens);
    throw error;
  }
}

/** The exchanged tokens checked and parked; throws when they are not (the caller gives the grant back). */
async function park(ctx: RequestContext, state: ConsumedState, tokens: TokenSet, keyring: Keyring): Promise<ConnectionRequest> {
  if (state.provider === 'google') {
    const missing = missingScopes(tokens.scope, GOOGLE_REQUIRED_SCOPES);
    if (missing.length > 0) {
      // Without them the calendar is useless: give the grant back rather than keep a half-working one.
      throw new HttpError(400, 'missing_scopes', `Allow access to the calendar when asked (missing: ${missing.join(', ')}).`);
    }
  }
  const { email, subject } = connectedAccount(tokens);
  // Sealed under the connection as complete_calendar_connection will save it: the account, the default calendar.
  const key = connectionKey(state.org_id, state.provider, subject, email, null);
  const ciphertext = await sealTokenSet(tokens, keyring, tokenContext(key));
  const scopes = (tokens.scope ?? '').split(/\s+/u).filter(Boolean).slice(0, 50);
  // The user who started the connect is the claims' subject, as on the completion that saves the connection.
  const actor: JwtClaims = {
    role: 'service_role',
    sub: state.user_id,
    exp: Math.floor(ctx.settings.now().getTime() / 1000) + 3600,
  };
  const stored = await mapCalendarErrors(() =>
    asServiceRoleActing(ctx.sql, actor, async (tx) => {
      const [row] = await tx<{ id: string; expires_at: Date }[]>`
        select id, expires_at from private.store_calendar_pending_connection(${state.org_id}::uuid, ${state.user_id}::uuid,
          ${state.bot_id}::uuid, ${state.provider}, ${key.accountEmail}, ${subject}, ${scopes}::text[], ${ciphertext},
          ${tokens.expiresAt.toISOString()}::timestamptz)`;
      return row;
    })
  );
  return { id: stored.id, expiresAt: stored.expires_at.toISOString(), provider: state.provider, accountEmail: key.accountEmail };
}

/**
 * Tokens that were not parked are dropped: their grant is revoked first, as
 * a disconnect would (not while another connection or request holds the
 * account, which the provider's answer names; left alone when it names
 * none). Never throws: the connect's own error is what the caller hears.
 */
async function giveBack(ctx: RequestContext, provider: CalendarProvider, tokens: TokenSet): Promise<void> {
  const email = tokens.account?.email?.trim().toLowerCase();
  const account = email ? { provider, account_subject: tokens.account?.id ?? null, account_email: email } : undefined;
  try {
    await revokeUnparkedGrant(ctx, tokens.refreshToken ?? tokens.accessToken, account);
  } catch (error) {
    ctx.log('revoking the grant of a calendar connect that failed after the code exchange failed', error);
  }
}

/** `target` with these query parameters added; a path stays a path. */
function withQuery(target: string, params: Record<string, string>): string {
  const absolute = /^https?:\/\//iu.test(target);
  const url = new URL(target, 'https://placeholder.invalid');
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return absolute ? url.toString() : `${url.pathname}${url.search}${url.hash}`;
}

function redirect(location: string): Response {
  return new Response(null, {
    status: 303,
    headers: { location, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' },
  });
}

export async function oauthCallback(ctx: RequestContext, req: Request): Promise<Response> {
  const url = new URL(req.url);
  const stateParam = url.searchParams.get('state');
  let claims: OAuthStateClaims;
  try {
    if (!stateParam) throw new OAuthStateError('malformed', 'The provider sent no state.');
    claims = await verifyOAuthState(stateParam, { secret: requireStateSecret(ctx.settings), now: ctx.settings.now() });
  } catch (error) {
    if (!(error instanceof OAuthStateError)) throw error;
    const message = error.reason === 'expired'
      ? 'This sign-in link has expired; start connecting the calendar again.'
      : 'The sign-in link is not valid (changed, or not ours); start connecting the calendar again.';
    throw new HttpError(400, 'invalid_state', message);
  }
  const target = claims.redirectAfter;
  try {
    const request = await requestConnection(ctx, url, claims);
    if (target) return redirect(withQuery(target, { calendar: 'pending', connection_request: request.id }));
    return json({
      connection_request: request.id,
      provider: request.provider,
      account_email: request.accountEmail,
      expires_at: request.expiresAt,
    });
  } catch (error) {
    if (!target) throw error;
    if (!(error instanceof HttpError)) ctx.log('connecting a calendar failed', error);
    else if (error.cause !== undefined) ctx.log(`connecting a calendar failed (${error.code})`, error.cause);
    return redirect(withQuery(target, { calendar: 'error', reason: error instanceof HttpError ? error.code : 'internal_error' }));
  }
}

interface CompletedConnection {
  connection_id: string;
  provider: CalendarProvider;
  account_email: string;
}

/**
 * The connection request saved as a connection, for the user who started the
 * connect only; that user's repeat (a lost answer, React StrictMode, two
 * tabs) gets the same answer until the request would have expired.
 */
export async function oauthComplete(ctx: RequestContext, req: Request, claims: UserClaims): Promise<Response> {
  const body = await readBody(req, oauthCompleteBody);
  const [row] = await mapCalendarErrors(
    () =>
      asServiceRoleActing(ctx.sql, claims, (tx) =>
        tx<CompletedConnection[]>`
          select connection_id, provider, account_email
          from private.complete_calendar_connection(${body.connection_request}::uuid, ${claims.sub}::uuid)`),
    {
      forbidden: 'You no longer have the calendar.manage permission in this organization.',
      notFound: 'The bot was deleted meanwhile.',
    },
  );
  if (!row) {
    throw new HttpError(404, 'not_found', 'This connection request is unknown or expired; connect the calendar again.');
  }
  return json({ connection_id: row.connection_id, provider: row.provider, account_email: row.account_email });
}
