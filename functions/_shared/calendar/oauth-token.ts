/**
 * What both providers' token endpoints share (RFC 6749 §5): the success body
 * `{ access_token, token_type, expires_in, refresh_token?, scope?, id_token? }`
 * and the error body `{ error, error_description? }` (Microsoft adds
 * `error_codes`: the AADSTS numbers, `trace_id`, `correlation_id`).
 */
import { z } from 'zod';
import type { HttpAnswer } from './http.ts';
import {
  CalendarAuthError,
  type CalendarProvider,
  CalendarProviderError,
  type TokenSet,
} from './types.ts';

const tokenResponse = z.object({
  access_token: z.string().min(1),
  token_type: z.string().min(1),
  // A number from both; some proxies of Microsoft's older endpoint send a string.
  expires_in: z.union([z.number().nonnegative(), z.string().regex(/^\d+$/u).transform(Number)]),
  refresh_token: z.string().min(1).optional(),
  scope: z.string().optional(),
  id_token: z.string().optional(),
});
export type TokenResponse = z.infer<typeof tokenResponse>;

const errorResponse = z.object({
  error: z.string().min(1),
  error_description: z.string().optional(),
  error_codes: z.array(z.number()).optional(),
});

/**
 * OAuth errors that mean the grant is gone and only the user can bring it
 * back. `invalid_grant` from both (revoked, expired, reused or wrong code,
 * wrong code_verifier); Microsoft's `interaction_required` and
 * `consent_required` (MFA or a new consent is needed: a background refresh
 * cannot satisfy either).
 */
const REAUTH_ERRORS = new Set(['invalid_grant', 'interaction_required', 'consent_required']);

/** The token endpoint's success body as a TokenSet; `previousRefreshToken` stands in when no new one came. */
export function tokenSetFrom(
  provider: CalendarProvider,
  answer: HttpAnswer,
  what: string,
  options: { now: Date; previousRefreshToken?: string },
): { tokens: TokenSet; idToken?: string } {
  const parsed = tokenResponse.safeParse(answer.body);
  if (!parsed.success) {
    throw new CalendarProviderError(provider, `${what} answered ${answer.status} without a usable token.`, {
      status: answer.status,
      retryable: false,
    });
  }
  const body = parsed.data;
  const refreshToken = body.refresh_token ?? options.previousRefreshToken;
  const tokens: TokenSet = {
    accessToken: body.access_token,
    expiresAt: new Date(options.now.getTime() + body.expires_in * 1000),
    tokenType: body.token_type,
    ...(refreshToken === undefined ? {} : { refreshToken }),
    ...(body.scope === undefined ? {} : { scope: body.scope }),
  };
  return body.id_token === undefined ? { tokens } : { tokens, idToken: body.id_token };
}

/** A token endpoint's error answer as our error. */
export function tokenError(provider: CalendarProvider, answer: HttpAnswer, what: string): Error {
  const parsed = errorResponse.safeParse(answer.body);
  const status = answer.status;
  if (!parsed.success) {
    return new CalendarProviderError(provider, `${what} failed with ${status}.`, {
      status,
      retryable: status === 408 || status >= 500,
    });
  }
  const { error, error_description: description, error_codes: codes } = parsed.data;
  // Microsoft's description starts with the AADSTS code and ends with trace ids: the first line is enough.
  const detail = description ? `: ${description.split(/\r?\n/u)[0]}` : '';
  const providerCode = codes && codes.length > 0 ? `AADSTS${codes[0]}` : error;
  if (REAUTH_ERRORS.has(error)) {
    return new CalendarAuthError('invalid_grant', provider, `${what} refused the grant (${error})${detail}`, {
      providerCode,
    });
  }
  return new CalendarProviderError(provider, `${what} failed with ${status} ${error}${detail}`, {
    status,
    retryable: status >= 500 || error === 'temporarily_unavailable' || error === 'server_error',
    providerCode,
  });
}

/** Whether to refresh before use: the access token ends within `skewSeconds` (default 5 minutes). */
export function needsRefresh(tokens: Pick<TokenSet, 'expiresAt'>, now = new Date(), skewSeconds = 300): boolean {
  return tokens.expiresAt.getTime() - now.getTime() <= skewSeconds * 1000;
}

/** Scopes of `required` missing from a granted, space-separated scope string (case-insensitive). */
export function missingScopes(granted: string | undefined, required: readonly string[]): string[] {
  const have = new Set((granted ?? '').split(/\s+/u).filter(Boolean).map((scope) => scope.toLowerCase()));
  return required.filter((scope) => !have.has(scope.toLowerCase()));
}
