/**
 * PKCE (RFC 7636) for the authorization code flow: the verifier stays with us
 * (server-side, keyed by the state's jti), only its S256 challenge goes
 * through the browser, so a stolen code is useless without the verifier.
 * Both Google and Microsoft accept PKCE from confidential (web) clients too,
 * in addition to the client secret.
 */
import { base64url } from 'jose';

/** RFC 7636 §4.1: 43 to 128 characters of [A-Z] [a-z] [0-9] "-" "." "_" "~". */
const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/u;

export function isValidCodeVerifier(verifier: string): boolean {
  return VERIFIER.test(verifier);
}

/**
 * A fresh verifier: base64url of `bytes` random bytes (default 48 → 64
 * characters, 384 bits; the RFC asks for at least 256). base64url's alphabet
 * is a subset of the unreserved characters the RFC allows.
 */
export function createCodeVerifier(bytes = 48): string {
  if (!Number.isInteger(bytes) || bytes < 32 || bytes > 96) {
    throw new RangeError('A code verifier takes 32 to 96 random bytes (43 to 128 characters).');
  }
  return base64url.encode(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** `BASE64URL(SHA256(ASCII(verifier)))`, unpadded: the `code_challenge` for `code_challenge_method=S256`. */
export async function codeChallengeS256(verifier: string): Promise<string> {
  if (!isValidCodeVerifier(verifier)) {
    throw new RangeError('A code verifier is 43 to 128 characters of A-Z, a-z, 0-9, "-", ".", "_" and "~".');
  }
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url.encode(new Uint8Array(digest));
}

/** A verifier and its challenge, for the start of a flow. */
export async function createPkcePair(): Promise<{ codeVerifier: string; codeChallenge: string }> {
  const codeVerifier = createCodeVerifier();
  return { codeVerifier, codeChallenge: await codeChallengeS256(codeVerifier) };
}
