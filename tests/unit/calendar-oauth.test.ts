import { createHash } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CalendarAuthError,
  type CalendarClient,
  calendarClientFromEnv,
  calendarRedirectUri,
  codeChallengeS256,
  createCodeVerifier,
  createGoogleCalendar,
  createMicrosoftCalendar,
  createOAuthState,
  createPkcePair,
  GOOGLE_REQUIRED_SCOPES,
  isValidCodeVerifier,
  missingScopes,
  needsRefresh,
  OAUTH_STATE_AUDIENCE,
  OAUTH_STATE_TYPE,
  oauthStateSigningKey,
  OAuthStateError,
  stateSecretFromEnv,
  verifyOAuthState,
} from '../../functions/_shared/calendar/index.ts';
import { redirectOriginsFromEnv } from '../../functions/_shared/calendar/config.ts';
import { HttpError } from '../../functions/_shared/errors.ts';
import { redirectTarget } from '../../functions/calendar/redirect.ts';
import { type CalendarStub, startCalendarStub } from '../support/calendar-stub.ts';

const SECRET = 'calendar-state-secret-for-tests-0123456789';
const ORG = '7e6d5c4b-3a29-4817-8f6e-5d4c3b2a1908';
const USER = '0b6f1c2e-3d4a-4b5c-8d6e-7f8091a2b3c4';
const REDIRECT = calendarRedirectUri('http://127.0.0.1:54321/');

async function caught(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

async function stateError(promise: Promise<unknown>): Promise<OAuthStateError> {
  const error = await caught(promise);
  expect(error).toBeInstanceOf(OAuthStateError);
  return error as OAuthStateError;
}

describe('PKCE (RFC 7636)', () => {
  it('makes verifiers of 43 to 128 unreserved characters and the S256 challenge', async () => {
    const verifier = createCodeVerifier();
    expect(verifier).toMatch(/^[A-Za-z0-9\-._~]{64}$/);
    expect(createCodeVerifier(32)).toHaveLength(43);
    expect(createCodeVerifier(96)).toHaveLength(128);
    expect(() => createCodeVerifier(31)).toThrow(RangeError);
    expect(createCodeVerifier()).not.toBe(verifier);
    // RFC 7636 Appendix B.
    expect(await codeChallengeS256('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe(
      'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    );
    expect(isValidCodeVerifier('short')).toBe(false);
    await expect(codeChallengeS256('has spaces in it and is long enough to pass the length check')).rejects.toThrow(RangeError);
    const pair = await createPkcePair();
    expect(pair.codeChallenge).toBe(createHash('sha256').update(pair.codeVerifier).digest('base64url'));
  });
});

describe('OAuth state', () => {
  const now = new Date('2026-03-01T10:00:00Z');

  it('round-trips org, user, provider and redirect, with a fresh jti and a 10-minute expiry', async () => {
    const created = await createOAuthState({
      secret: SECRET,
      orgId: ORG,
      userId: USER,
      provider: 'google',
      redirectAfter: 'https://app.example.com/settings/calendar',
      now,
    });
    expect(created.expiresAt).toEqual(new Date('2026-03-01T10:10:00Z'));
    const claims = await verifyOAuthState(created.state, { secret: SECRET, now: new Date('2026-03-01T10:09:59Z') });
    expect(claims).toEqual({
      jti: created.jti,
      orgId: ORG,
      userId: USER,
      provider: 'google',
      redirectAfter: 'https://app.example.com/settings/calendar',
      expiresAt: created.expiresAt,
    });
    const other = await createOAuthState({ secret: SECRET, orgId: ORG, userId: USER, provider: 'microsoft', now });
    expect(other.jti).not.toBe(created.jti);
    // The jti of a row the database made for this flow.
    const rowId = '5b0a1f7e-8d6c-4f1e-9a2b-3c4d5e6f7a8b';
    const fromRow = await createOAuthState({ secret: SECRET, orgId: ORG, userId: USER, provider: 'google', jti: rowId, now });
    expect(fromRow.jti).toBe(rowId);
    expect((await verifyOAuthState(fromRow.state, { secret: SECRET, now })).jti).toBe(rowId);
    await expect(createOAuthState({ secret: SECRET, orgId: ORG, userId: USER, provider: 'google', jti: 'row-1' })).rejects.toThrow(RangeError);
    expect((await verifyOAuthState(other.state, { secret: SECRET, now })).redirectAfter).toBeUndefined();
  });

  it('refuses a tampered state: a changed claim, a changed signature, another secret', async () => {
    const { state } = await createOAuthState({ secret: SECRET, orgId: ORG, userId: USER, provider: 'google', now });
    const [header, payload, signature] = state.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, org_id: 'another-org' })).toString('base64url');
    expect((await stateError(verifyOAuthState(`${header}.${forged}.${signature}`, { secret: SECRET, now }))).reason).toBe(
      'tampered',
    );
    const flipped = `${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`;
    expect((await stateError(verifyOAuthState(`${header}.${payload}.${flipped}`, { secret: SECRET, now }))).reason).toBe(
      'tampered',
    );
    const wrongSecret = await stateError(verifyOAuthState(state, { secret: `${SECRET}-other`, now }));
    expect(wrongSecret.reason).toBe('tampered');
    expect((await stateError(verifyOAuthState('not.a.jwt', { secret: SECRET, now }))).reason).toBe('malformed');
    expect((await stateError(verifyOAuthState('', { secret: SECRET, now }))).reason).toBe('malformed');
  });

  it('refuses an expired state', async () => {
    const { state } = await createOAuthState({ secret: SECRET, orgId: ORG, userId: USER, provider: 'google', now });
    const error = await stateError(verifyOAuthState(state, { secret: SECRET, now: new Date('2026-03-01T10:10:01Z') }));
    expect(error.reason).toBe('expired');
    expect(error.message).toMatch(/expired/);
  });

  it('refuses a token signed with the same key for another audience, and a Supabase JWT signed with the raw secret', async () => {
    const key = await oauthStateSigningKey(SECRET);
    const iat = Math.floor(now.getTime() / 1000);
    const base = { org_id: ORG, user_id: USER, provider: 'google' };
    const otherAudience = await new SignJWT(base)
      .setProtectedHeader({ alg: 'HS256', typ: OAUTH_STATE_TYPE })
      .setJti(crypto.randomUUID())
      .setAudience('authenticated')
      .setIssuedAt(iat)
      .setExpirationTime(iat + 600)
      .sign(key);
    expect((await stateError(verifyOAuthState(otherAudience, { secret: SECRET, now }))).reason).toBe('wrong_audience');
    const otherType = await new SignJWT(base)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setJti(crypto.randomUUID())
      .setAudience(OAUTH_STATE_AUDIENCE)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 600)
      .sign(key);
    expect((await stateError(verifyOAuthState(otherType, { secret: SECRET, now }))).reason).toBe('wrong_audience');
    // A user's access token signed with the JWT secret itself (the fallback state secret) is not a state.
    const accessToken = await new SignJWT({ role: 'authenticated', sub: USER })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setAudience('authenticated')
      .setIssuedAt(iat)
      .setExpirationTime(iat + 3600)
      .sign(new TextEncoder().encode(SECRET));
    expect((await stateError(verifyOAuthState(accessToken, { secret: SECRET, now }))).reason).toBe('tampered');
  });

  it('checks its inputs: a short secret, a redirect that is not a path or http(s) URL', async () => {
    await expect(createOAuthState({ secret: 'short', orgId: ORG, userId: USER, provider: 'google' })).rejects.toThrow(RangeError);
    for (const redirectAfter of ['//evil.example', 'javascript:alert(1)', 'nope']) {
      await expect(
        createOAuthState({ secret: SECRET, orgId: ORG, userId: USER, provider: 'google', redirectAfter }),
      ).rejects.toThrow(RangeError);
    }
    await expect(
      createOAuthState({ secret: SECRET, orgId: ORG, userId: USER, provider: 'google', redirectAfter: '/calendar?ok=1' }),
    ).resolves.toBeTruthy();
  });

  it('reads its secret from CALENDAR_STATE_SECRET, else SUPABASE_JWT_SECRET', () => {
    const env = (values: Record<string, string>) => (name: string) => values[name];
    expect(stateSecretFromEnv(env({ CALENDAR_STATE_SECRET: 'a', SUPABASE_JWT_SECRET: 'b' }))).toBe('a');
    expect(stateSecretFromEnv(env({ SUPABASE_JWT_SECRET: 'b' }))).toBe('b');
    expect(stateSecretFromEnv(env({}))).toBeUndefined();
  });
});

describe('where a connect may send the browser back (CALENDAR_REDIRECT_ORIGINS)', () => {
  const settings = (origins?: string) => ({
    env: (name: string) => (name === 'CALENDAR_REDIRECT_ORIGINS' ? origins : undefined),
    http: {},
    now: () => new Date(),
  });

  function refusal(origins: string | undefined, redirectTo: string): HttpError {
    try {
      redirectTarget(settings(origins), redirectTo);
    } catch (error) {
      expect(error).toBeInstanceOf(HttpError);
      return error as HttpError;
    }
    throw new Error(`${redirectTo} was accepted`);
  }

  it('reads origins separated by commas or spaces, and refuses an entry that is not an origin', () => {
    const env = (value?: string) => (name: string) => (name === 'CALENDAR_REDIRECT_ORIGINS' ? value : undefined);
    expect(redirectOriginsFromEnv(env())).toEqual([]);
    expect(redirectOriginsFromEnv(env(' https://App.Example.com/, http://127.0.0.1:3000  https://b.example:8443 '))).toEqual([
      'https://app.example.com',
      'http://127.0.0.1:3000',
      'https://b.example:8443',
    ]);
    for (const bad of ['https://app.example.com/settings', 'app.example.com', 'ftp://files.example', 'https://a.example?x=1']) {
      expect(() => redirectOriginsFromEnv(env(bad)), bad).toThrow(RangeError);
    }
  });

  it('resolves a path against the dashboard and allows https URLs on the listed origins only', () => {
    const origins = 'http://127.0.0.1:3000, https://app.example.com';
    expect(redirectTarget(settings(origins), '/settings/calendar?tab=1')).toBe('http://127.0.0.1:3000/settings/calendar?tab=1');
    expect(redirectTarget(settings(origins), 'https://app.example.com/calendar#top')).toBe('https://app.example.com/calendar#top');
    for (const redirectTo of [
      'https://evil.example/',
      'https://app.example.com.evil.example/',
      'https://me@app.example.com/',
      'http://127.0.0.1:3000/settings',
      '//evil.example/x',
      '/\\evil.example',
      'javascript:alert(1)',
      'settings',
      '/..//evil.example',
      '/.//evil.example',
      '/%2e%2e//evil.example',
      '//evil.example',
    ]) {
      expect(refusal(origins, redirectTo), redirectTo).toMatchObject({ status: 422, code: 'invalid_request' });
    }
    // A path that resolves to one starting with // would be read by a browser as another host.
    expect(redirectTarget(settings('https://app.example.com'), '/a/../settings')).toBe('https://app.example.com/settings');
    // Unset: no target at all (a path would land on the callback's own host, where no dashboard completes the connect).
    for (const redirectTo of ['/settings', '/..//evil.example', 'https://app.example.com/']) {
      expect(refusal(undefined, redirectTo), redirectTo).toMatchObject({ status: 422, message: expect.stringContaining('CALENDAR_REDIRECT_ORIGINS') });
    }
    expect(refusal('https://app.example.com/settings', '/settings')).toMatchObject({ status: 503, code: 'calendar_not_configured' });
  });
});

describe('OAuth code flow with PKCE against the provider stand-in', () => {
  let stub: CalendarStub;
  beforeAll(async () => {
    stub = await startCalendarStub();
  });
  afterAll(async () => {
    await stub?.close();
  });
  beforeEach(() => stub.reset());

  const googleClient = () =>
    createGoogleCalendar({
      clientId: stub.google.clientId,
      clientSecret: stub.google.clientSecret,
      accountsBaseUrl: stub.google.accountsBaseUrl,
      oauth2BaseUrl: `${stub.google.oauth2BaseUrl}/`,
      apiBaseUrl: stub.google.apiBaseUrl,
    });
  const microsoftClient = () =>
    createMicrosoftCalendar({
      clientId: stub.microsoft.clientId,
      clientSecret: stub.microsoft.clientSecret,
      loginBaseUrl: stub.microsoft.loginBaseUrl,
      graphBaseUrl: stub.microsoft.graphBaseUrl,
    });

  /** Start (state + PKCE + URL), consent at the stand-in, callback (verify state, exchange). */
  async function connect(client: CalendarClient, email: string, verifierOverride?: string) {
    const { codeVerifier, codeChallenge } = await createPkcePair();
    const { state, jti } = await createOAuthState({ secret: SECRET, orgId: ORG, userId: USER, provider: client.provider });
    const url = client.authorizationUrl({ redirectUri: REDIRECT, state, codeChallenge, loginHint: email });
    const redirect = await stub.authorize(url, { email });
    expect(redirect.status).toBe(302);
    expect(redirect.location.startsWith(`${REDIRECT}?`)).toBe(true);
    const claims = await verifyOAuthState(redirect.state ?? '', { secret: SECRET });
    expect(claims.jti).toBe(jti);
    const tokens = await client.exchangeCode({
      code: redirect.code ?? '',
      codeVerifier: verifierOverride ?? codeVerifier,
      redirectUri: REDIRECT,
    });
    return { tokens, url: new URL(url), code: redirect.code ?? '', codeVerifier };
  }

  describe('Google', () => {
    it('asks for offline access, consent, the calendar scopes and S256', async () => {
      const url = new URL(
        googleClient().authorizationUrl({ redirectUri: REDIRECT, state: 's', codeChallenge: 'c', loginHint: 'a@b.c' }),
      );
      expect(`${url.origin}${url.pathname}`).toBe(`${stub.google.accountsBaseUrl}/o/oauth2/v2/auth`);
      expect(Object.fromEntries(url.searchParams)).toEqual({
        client_id: stub.google.clientId,
        redirect_uri: REDIRECT,
        response_type: 'code',
        scope:
          'https://www.googleapis.com/auth/calendar.freebusy https://www.googleapis.com/auth/calendar.events openid email',
        access_type: 'offline',
        prompt: 'consent',
        include_granted_scopes: 'true',
        state: 's',
        code_challenge: 'c',
        code_challenge_method: 'S256',
        login_hint: 'a@b.c',
      });
    });

    it('connects: code exchanged with the verifier for access and refresh tokens, the account from the ID token', async () => {
      const before = Date.now();
      const { tokens } = await connect(googleClient(), 'ada@example.com');
      expect(tokens).toMatchObject({
        accessToken: expect.stringMatching(/^ya29\./),
        refreshToken: expect.stringMatching(/^1\/\//),
        tokenType: 'Bearer',
        account: { id: expect.any(String), email: 'ada@example.com' },
      });
      expect(missingScopes(tokens.scope, GOOGLE_REQUIRED_SCOPES)).toEqual([]);
      expect(tokens.expiresAt.getTime()).toBeGreaterThanOrEqual(before + 3599_000 - 1000);
      expect(needsRefresh(tokens)).toBe(false);
      expect(needsRefresh(tokens, new Date(tokens.expiresAt.getTime() - 60_000))).toBe(true);
      const exchange = stub.requests.find((request) => request.path === '/token');
      expect(exchange).toMatchObject({
        host: 'oauth2.googleapis.com',
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: { grant_type: 'authorization_code', redirect_uri: REDIRECT, client_id: stub.google.clientId },
        status: 200,
      });
    });

    it('gets a refresh token on a second connect too (prompt=consent)', async () => {
      await connect(googleClient(), 'ada@example.com');
      const again = await connect(googleClient(), 'ada@example.com');
      expect(again.tokens.refreshToken).toBeDefined();
    });

    it('refuses a wrong code_verifier, a replayed code, and a code for another redirect URI', async () => {
      const wrong = await caught(connect(googleClient(), 'ada@example.com', createCodeVerifier()));
      expect(wrong).toBeInstanceOf(CalendarAuthError);
      expect(wrong).toMatchObject({ kind: 'invalid_grant', provider: 'google', providerCode: 'invalid_grant' });
      expect((wrong as Error).message).toMatch(/Invalid code verifier/);

      const { code, codeVerifier, tokens } = await connect(googleClient(), 'ada@example.com');
      const replay = await caught(googleClient().exchangeCode({ code, codeVerifier, redirectUri: REDIRECT }));
      expect(replay).toMatchObject({ kind: 'invalid_grant' });
      // A replayed code revokes what it issued (RFC 6749 §4.1.2).
      await expect(googleClient().refresh(tokens.refreshToken ?? '')).rejects.toMatchObject({ kind: 'invalid_grant' });

      const { codeVerifier: verifier, codeChallenge } = await createPkcePair();
      const url = googleClient().authorizationUrl({ redirectUri: REDIRECT, state: 'x', codeChallenge });
      const redirect = await stub.authorize(url);
      const mismatch = await caught(
        googleClient().exchangeCode({ code: redirect.code ?? '', codeVerifier: verifier, redirectUri: `${REDIRECT}/other` }),
      );
      expect(mismatch).toMatchObject({ name: 'CalendarProviderError', status: 400, providerCode: 'redirect_uri_mismatch' });
    });

    it('refreshes (keeping the refresh token Google does not resend), then fails with invalid_grant once revoked', async () => {
      const { tokens } = await connect(googleClient(), 'ada@example.com');
      const refreshed = await googleClient().refresh(tokens.refreshToken ?? '');
      expect(refreshed.accessToken).not.toBe(tokens.accessToken);
      expect(refreshed.refreshToken).toBe(tokens.refreshToken);
      expect(stub.requests.at(-1)?.body).toMatchObject({ grant_type: 'refresh_token', refresh_token: tokens.refreshToken });

      stub.revokeRefreshToken(tokens.refreshToken ?? '');
      const error = await caught(googleClient().refresh(tokens.refreshToken ?? ''));
      expect(error).toBeInstanceOf(CalendarAuthError);
      expect(error).toMatchObject({ kind: 'invalid_grant', needsReauth: true });
      expect((error as Error).message).toMatch(/expired or revoked/);
    });

    it('revokes at Google: the grant ends, the access token stops working, a second revoke is fine', async () => {
      const { tokens } = await connect(googleClient(), 'ada@example.com');
      expect(await googleClient().revoke(tokens.refreshToken ?? '')).toEqual({ revoked: true });
      const revoke = stub.requests.find((request) => request.path === '/revoke');
      expect(revoke).toMatchObject({ method: 'POST', body: { token: tokens.refreshToken }, status: 200 });
      expect(revoke?.query).toEqual({});
      await expect(googleClient().refresh(tokens.refreshToken ?? '')).rejects.toMatchObject({ kind: 'invalid_grant' });
      const now = new Date();
      await expect(
        googleClient().busyTimes(tokens.accessToken, { timeMin: now, timeMax: new Date(now.getTime() + 3600_000) }),
      ).rejects.toMatchObject({ name: 'CalendarAuthError', kind: 'unauthorized' });
      expect(await googleClient().revoke(tokens.refreshToken ?? '')).toEqual({ revoked: true });
    });

    it('reports a wrong client secret as a provider error, not as a broken connection', async () => {
      const client = createGoogleCalendar({
        clientId: stub.google.clientId,
        clientSecret: 'wrong',
        oauth2BaseUrl: stub.google.oauth2BaseUrl,
      });
      const error = await caught(client.refresh('1//whatever'));
      expect(error).toMatchObject({ name: 'CalendarProviderError', status: 401, providerCode: 'invalid_client', retryable: false });
    });

    it('shows which required scopes the user unticked', async () => {
      const client = googleClient();
      const { codeVerifier, codeChallenge } = await createPkcePair();
      const url = client.authorizationUrl({ redirectUri: REDIRECT, state: 's', codeChallenge });
      const redirect = await stub.authorize(url, {
        email: 'bob@example.com',
        grantScopes: ['openid', 'email', 'https://www.googleapis.com/auth/calendar.freebusy'],
      });
      const tokens = await client.exchangeCode({ code: redirect.code ?? '', codeVerifier, redirectUri: REDIRECT });
      expect(missingScopes(tokens.scope, GOOGLE_REQUIRED_SCOPES)).toEqual(['https://www.googleapis.com/auth/calendar.events']);
      const error = await caught(
        client.createEvent(tokens.accessToken, {
          summary: 'x',
          start: new Date('2026-04-01T08:00:00Z'),
          end: new Date('2026-04-01T08:30:00Z'),
          timeZone: 'UTC',
        }),
      );
      expect(error).toMatchObject({ name: 'CalendarAuthError', kind: 'insufficient_scope', needsReauth: true });
    });
  });

  describe('Microsoft', () => {
    it('asks for offline_access, User.Read, Calendars.ReadWrite with S256 and response_mode=query at the tenant', async () => {
      const client = createMicrosoftCalendar({
        clientId: stub.microsoft.clientId,
        clientSecret: stub.microsoft.clientSecret,
        tenant: 'organizations',
        loginBaseUrl: stub.microsoft.loginBaseUrl,
      });
      const url = new URL(client.authorizationUrl({ redirectUri: REDIRECT, state: 's', codeChallenge: 'c' }));
      expect(`${url.origin}${url.pathname}`).toBe(`${stub.microsoft.loginBaseUrl}/organizations/oauth2/v2.0/authorize`);
      expect(Object.fromEntries(url.searchParams)).toEqual({
        client_id: stub.microsoft.clientId,
        response_type: 'code',
        redirect_uri: REDIRECT,
        response_mode: 'query',
        scope: 'offline_access User.Read Calendars.ReadWrite',
        state: 's',
        code_challenge: 'c',
        code_challenge_method: 'S256',
      });
      expect(new URL(microsoftClient().authorizationUrl({ redirectUri: REDIRECT, state: 's', codeChallenge: 'c' })).pathname).toBe(
        '/login.microsoftonline.com/common/oauth2/v2.0/authorize',
      );
    });

    it('connects: tokens from the v2.0 token endpoint and the account from Graph /me', async () => {
      const { tokens } = await connect(microsoftClient(), 'grace@contoso.com');
      expect(tokens).toMatchObject({
        accessToken: expect.any(String),
        refreshToken: expect.stringMatching(/^1\.AQ/),
        tokenType: 'Bearer',
        scope: expect.stringContaining('Calendars.ReadWrite'),
        account: { id: expect.any(String), email: 'grace@contoso.com' },
      });
      const exchange = stub.requests.find((request) => request.path.endsWith('/token'));
      expect(exchange).toMatchObject({
        host: 'login.microsoftonline.com',
        path: '/common/oauth2/v2.0/token',
        body: {
          grant_type: 'authorization_code',
          scope: 'offline_access User.Read Calendars.ReadWrite',
          redirect_uri: REDIRECT,
          client_secret: stub.microsoft.clientSecret,
        },
      });
    });

    it('refuses a wrong code_verifier with AADSTS501481 as invalid_grant', async () => {
      const error = await caught(connect(microsoftClient(), 'grace@contoso.com', createCodeVerifier()));
      expect(error).toBeInstanceOf(CalendarAuthError);
      expect(error).toMatchObject({ kind: 'invalid_grant', providerCode: 'AADSTS501481' });
      expect((error as Error).message).toMatch(/Code_Verifier does not match/);
      expect((error as Error).message).not.toMatch(/Trace ID/);
    });

    it('refreshes with the rotated refresh token, then maps AADSTS70008, 50173 and 700082 to invalid_grant', async () => {
      const { tokens } = await connect(microsoftClient(), 'grace@contoso.com');
      const refreshed = await microsoftClient().refresh(tokens.refreshToken ?? '');
      expect(refreshed.refreshToken).toBeDefined();
      expect(refreshed.refreshToken).not.toBe(tokens.refreshToken);
      expect(stub.requests.at(-1)?.body).toMatchObject({ grant_type: 'refresh_token', scope: 'offline_access User.Read Calendars.ReadWrite' });

      for (const aadsts of [70008, 50173, 700082]) {
        const { tokens: fresh } = await connect(microsoftClient(), `user${aadsts}@contoso.com`);
        stub.revokeRefreshToken(fresh.refreshToken ?? '', { aadsts });
        const error = await caught(microsoftClient().refresh(fresh.refreshToken ?? ''));
        expect(error).toBeInstanceOf(CalendarAuthError);
        expect(error).toMatchObject({ kind: 'invalid_grant', providerCode: `AADSTS${aadsts}`, provider: 'microsoft' });
      }
    });

    it('has no per-token revocation: revoke() says so and calls nothing', async () => {
      const { tokens } = await connect(microsoftClient(), 'grace@contoso.com');
      const count = stub.requests.length;
      expect(await microsoftClient().revoke(tokens.refreshToken ?? '')).toEqual({ revoked: false });
      expect(stub.requests).toHaveLength(count);
    });
  });

  it('builds clients from the environment, and none when an app is not configured', () => {
    const env = (values: Record<string, string>) => (name: string) => values[name];
    expect(calendarClientFromEnv('google', env({}))).toBeNull();
    const google = calendarClientFromEnv(
      'google',
      env({
        CALENDAR_GOOGLE_CLIENT_ID: 'id',
        CALENDAR_GOOGLE_CLIENT_SECRET: 'secret',
        CALENDAR_GOOGLE_ACCOUNTS_URL: stub.google.accountsBaseUrl,
      }),
    );
    expect(google?.authorizationUrl({ redirectUri: REDIRECT, state: 's', codeChallenge: 'c' })).toMatch(
      new RegExp(`^${stub.google.accountsBaseUrl}/o/oauth2/v2/auth\\?client_id=id&`),
    );
    const microsoft = calendarClientFromEnv(
      'microsoft',
      env({ CALENDAR_MICROSOFT_CLIENT_ID: 'id', CALENDAR_MICROSOFT_CLIENT_SECRET: 's', CALENDAR_MICROSOFT_TENANT: 'consumers' }),
    );
    expect(microsoft?.authorizationUrl({ redirectUri: REDIRECT, state: 's', codeChallenge: 'c' })).toMatch(
      /^https:\/\/login\.microsoftonline\.com\/consumers\/oauth2\/v2\.0\/authorize\?/,
    );
    expect(REDIRECT).toBe('http://127.0.0.1:54321/functions/v1/calendar/oauth/callback');
  });
});
