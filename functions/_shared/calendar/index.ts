export * from './types.ts';
export { createCodeVerifier, codeChallengeS256, createPkcePair, isValidCodeVerifier } from './pkce.ts';
export {
  createOAuthState,
  OAUTH_STATE_AUDIENCE,
  OAUTH_STATE_TTL_SECONDS,
  OAUTH_STATE_TYPE,
  type OAuthStateClaims,
  OAuthStateError,
  type OAuthStateErrorReason,
  type OAuthStateInput,
  oauthStateSigningKey,
  verifyOAuthState,
} from './oauth-state.ts';
export { missingScopes, needsRefresh } from './oauth-token.ts';
export { type HttpOptions } from './http.ts';
export { retryAfterSeconds } from '../retry-after.ts';
export {
  createGoogleCalendar,
  GOOGLE_ACCOUNTS_BASE_URL,
  GOOGLE_API_BASE_URL,
  GOOGLE_OAUTH2_BASE_URL,
  GOOGLE_REQUIRED_SCOPES,
  GOOGLE_SCOPES,
  type GoogleCalendarClient,
  type GoogleCalendarOptions,
  type GoogleFreeBusy,
} from './google.ts';
export {
  createMicrosoftCalendar,
  type GraphCalendarViewEvent,
  MICROSOFT_GRAPH_BASE_URL,
  MICROSOFT_LOGIN_BASE_URL,
  MICROSOFT_SCOPES,
  type MicrosoftCalendarClient,
  type MicrosoftCalendarOptions,
} from './microsoft.ts';
export {
  type Keyring,
  keyringFromBytes,
  keyringFromEnv,
  needsReseal,
  open,
  openTokenSet,
  parseKeyring,
  seal,
  sealTokenSet,
  TokenCryptoError,
  type TokenCryptoErrorReason,
} from './token-crypto.ts';
export { formatSlot, freeSlots, type FreeSlotsInput, mergeIntervals } from './availability.ts';
export { formatInZone, instantFromWallTime, isValidTimeZone, offsetMinutes, wallTime, wallTimeReadings } from './zoned.ts';
export { calendarClientFromEnv, calendarRedirectUri, calendarRevokerFromEnv, type GrantRevoker, stateSecretFromEnv } from './config.ts';
