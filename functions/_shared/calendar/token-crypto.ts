/**
 * Envelope encryption of token sets at rest, for deployments that do not keep
 * them in Supabase Vault (the local stack, or a choice). Web Crypto only, so it
 * runs the same in Deno and Node.
 *
 * Each record gets its own random AES-256-GCM data key; the data key is
 * wrapped with a key-encryption key (KEK) from the environment using AES-KW
 * (RFC 3394, the JWE `A256KW` algorithm), which is itself integrity-checked.
 * The result is one ASCII string, safe for a text column:
 *
 *     v1.<kid>.<iv>.<wrapped data key>.<ciphertext and GCM tag>   (base64url parts)
 *
 * `kid` names the KEK: the first 8 hex digits of its SHA-256, so operators
 * never name keys and the same key always has the same kid. The version, the
 * kid and an optional caller context (the connection's unique key: scheduling/stored-tokens.ts) are the GCM
 * associated data: a sealed value copied onto another row, or with its header
 * edited, fails to open.
 *
 * Rotation: CALENDAR_TOKEN_KEY holds one or more base64 32-byte keys,
 * separated by commas or whitespace. The first seals; any opens. To rotate,
 * put the new key first and keep the old ones until every record has been
 * re-sealed (needsReseal tells which; a refresh re-seals anyway).
 */
import { base64url } from 'jose';
import { z } from 'zod';
import { toHex } from '../bytes.ts';
import { type EnvReader, processEnv } from '../env.ts';
import type { TokenSet } from './types.ts';

const VERSION = 'v1';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface Keyring {
  /** The first key seals; every key opens. */
  readonly keys: readonly { kid: string; key: CryptoKey }[];
}

/**
 * `malformed`: not a sealed value of ours. `unknown_key`: sealed with a KEK
 * that is not in the keyring (removed too early, or another environment's).
 * `tampered`: the wrapped key, the ciphertext, the header or the context do
 * not match (also: the wrong key under a colliding kid). `bad_key`: the
 * configured key is missing, not base64 or not 32 bytes.
 */
export type TokenCryptoErrorReason = 'malformed' | 'unknown_key' | 'tampered' | 'bad_key';

export class TokenCryptoError extends Error {
  readonly reason: TokenCryptoErrorReason;

  constructor(reason: TokenCryptoErrorReason, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'TokenCryptoError';
    this.reason = reason;
  }
}

function decodeStandardBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** A keyring from raw 32-byte keys, the sealing key first. */
export async function keyringFromBytes(rawKeys: readonly Uint8Array[]): Promise<Keyring> {
  if (rawKeys.length === 0) throw new TokenCryptoError('bad_key', 'No token encryption key is configured.');
  const keys: { kid: string; key: CryptoKey }[] = [];
  for (const raw of rawKeys) {
    if (raw.length !== 32) throw new TokenCryptoError('bad_key', 'A token encryption key must be 32 bytes.');
    const bytes = new Uint8Array(raw);
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    const kid = toHex(digest.slice(0, 4));
    if (keys.some((entry) => entry.kid === kid)) continue;
    const key = await crypto.subtle.importKey('raw', bytes, { name: 'AES-KW' }, false, ['wrapKey', 'unwrapKey']);
    keys.push({ kid, key });
  }
  return { keys };
}

/** A keyring from base64 keys separated by commas or whitespace (standard or URL-safe base64). */
export async function parseKeyring(text: string): Promise<Keyring> {
  const entries = text.split(/[\s,]+/u).filter(Boolean);
  const raw = entries.map((entry) => {
    try {
      return decodeStandardBase64(entry.replace(/-/gu, '+').replace(/_/gu, '/'));
    } catch (error) {
      throw new TokenCryptoError('bad_key', 'A token encryption key must be base64.', { cause: error });
    }
  });
  return keyringFromBytes(raw);
}

/** CALENDAR_TOKEN_KEY (see above); throws when it is not set. */
export async function keyringFromEnv(env: EnvReader = processEnv, name = 'CALENDAR_TOKEN_KEY'): Promise<Keyring> {
  const value = env(name)?.trim();
  if (!value) {
    throw new TokenCryptoError('bad_key', `${name} is not set: 32 random bytes, base64 (openssl rand -base64 32).`);
  }
  return parseKeyring(value);
}

function associatedData(kid: string, context: string | undefined): Uint8Array<ArrayBuffer> {
  return encoder.encode(`${VERSION}.${kid}.${context ?? ''}`);
}

/** Encrypts `plaintext` under a fresh data key wrapped with the keyring's first key. */
export async function seal(plaintext: string, keyring: Keyring, context?: string): Promise<string> {
  const current = keyring.keys[0];
  if (!current) throw new TokenCryptoError('bad_key', 'The keyring is empty.');
  const dataKey = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt']);
  const wrapped = new Uint8Array(await crypto.subtle.wrapKey('raw', dataKey, current.key, 'AES-KW'));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ciphertext = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: associatedData(current.kid, context) },
      dataKey,
      encoder.encode(plaintext),
    ),
  );
  return [VERSION, current.kid, base64url.encode(iv), base64url.encode(wrapped), base64url.encode(ciphertext)].join('.');
}

interface SealedParts {
  kid: string;
  iv: Uint8Array<ArrayBuffer>;
  wrapped: Uint8Array<ArrayBuffer>;
  ciphertext: Uint8Array<ArrayBuffer>;
}

function split(sealed: string): SealedParts {
  const parts = typeof sealed === 'string' ? sealed.split('.') : [];
  const [version, kid, iv, wrapped, ciphertext] = parts;
  if (parts.length !== 5 || version !== VERSION || !kid || !/^[0-9a-f]{8}$/u.test(kid) || !iv || !wrapped || !ciphertext) {
    throw new TokenCryptoError('malformed', 'Not a sealed token value (v1.<kid>.<iv>.<key>.<data>).');
  }
  try {
    const bytes = (part: string) => new Uint8Array(base64url.decode(part));
    return { kid, iv: bytes(iv), wrapped: bytes(wrapped), ciphertext: bytes(ciphertext) };
  } catch (error) {
    throw new TokenCryptoError('malformed', 'A sealed token value has a part that is not base64url.', { cause: error });
  }
}

/** The plaintext of a value `seal` made with any key of the keyring and the same context. */
export async function open(sealed: string, keyring: Keyring, context?: string): Promise<string> {
  const parts = split(sealed);
  const kek = keyring.keys.find((entry) => entry.kid === parts.kid);
  if (!kek) throw new TokenCryptoError('unknown_key', `Sealed with key ${parts.kid}, which is not configured.`);
  if (parts.iv.length !== 12) throw new TokenCryptoError('tampered', 'The sealed value does not open.');
  let dataKey: CryptoKey;
  try {
    dataKey = await crypto.subtle.unwrapKey('raw', parts.wrapped, kek.key, 'AES-KW', { name: 'AES-GCM' }, false, [
      'decrypt',
    ]);
  } catch (error) {
    throw new TokenCryptoError('tampered', 'The sealed value does not open.', { cause: error });
  }
  try {
    const plaintext = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: parts.iv, additionalData: associatedData(parts.kid, context) },
      dataKey,
      parts.ciphertext,
    );
    return decoder.decode(plaintext);
  } catch (error) {
    throw new TokenCryptoError('tampered', 'The sealed value does not open.', { cause: error });
  }
}

/** Whether a sealed value was made with a key other than the current one (re-seal it during rotation). */
export function needsReseal(sealed: string, keyring: Keyring): boolean {
  return split(sealed).kid !== keyring.keys[0]?.kid;
}

const storedTokenSet = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1).optional(),
  expires_at: z.iso.datetime({ offset: true }),
  scope: z.string().optional(),
  token_type: z.string().min(1),
  account: z.object({ id: z.string(), email: z.string().optional() }).optional(),
});

/** A token set sealed as above; `context` (the connection's unique key) must be given again to open it. */
export function sealTokenSet(tokens: TokenSet, keyring: Keyring, context?: string): Promise<string> {
  const stored: z.input<typeof storedTokenSet> = {
    access_token: tokens.accessToken,
    refresh_token: tokens.refreshToken,
    expires_at: tokens.expiresAt.toISOString(),
    scope: tokens.scope,
    token_type: tokens.tokenType,
    account: tokens.account,
  };
  return seal(JSON.stringify(stored), keyring, context);
}

export async function openTokenSet(sealed: string, keyring: Keyring, context?: string): Promise<TokenSet> {
  const text = await open(sealed, keyring, context);
  let parsed: z.infer<typeof storedTokenSet>;
  try {
    parsed = storedTokenSet.parse(JSON.parse(text));
  } catch (error) {
    throw new TokenCryptoError('malformed', 'The sealed value is not a token set.', { cause: error });
  }
  return {
    accessToken: parsed.access_token,
    expiresAt: new Date(parsed.expires_at),
    tokenType: parsed.token_type,
    ...(parsed.refresh_token === undefined ? {} : { refreshToken: parsed.refresh_token }),
    ...(parsed.scope === undefined ? {} : { scope: parsed.scope }),
    ...(parsed.account === undefined ? {} : { account: parsed.account }),
  };
}
