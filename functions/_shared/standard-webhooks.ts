/**
 * Signing per the Standard Webhooks spec (https://www.standardwebhooks.com):
 * `webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256>`,
 * each over `${webhook-id}.${webhook-timestamp}.${body}`, keyed with the
 * base64-decoded secret (the part after `whsec_`). One signature per live
 * secret, so a receiver holding either the old or the new secret during a
 * rotation accepts the message.
 *
 * Web Crypto only, so the same code runs in Deno (the dispatcher) and Node (tests).
 */

const SECRET_PREFIX = 'whsec_';
const encoder = new TextEncoder();

// Importing a key costs more than the HMAC itself; a dispatcher signs many
// messages for few endpoints, so keys are kept for the life of the isolate.
const MAX_CACHED_KEYS = 1000;
const keys = new Map<string, Promise<CryptoKey>>();

function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function encodeBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function signingKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    const raw = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = decodeBase64(raw);
    } catch {
      throw new Error('A webhook secret must be "whsec_" followed by base64.');
    }
    if (bytes.length === 0) throw new Error('A webhook secret must not be empty.');
    key = crypto.subtle.importKey('raw', bytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    if (keys.size >= MAX_CACHED_KEYS) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

/** One `v1,<base64>` signature of a message with one secret. */
export async function sign(secret: string, msgId: string, timestampSeconds: number, body: string): Promise<string> {
  const key = await signingKey(secret);
  const mac = await crypto.subtle.sign('HMAC', key, encoder.encode(`${msgId}.${timestampSeconds}.${body}`));
  return `v1,${encodeBase64(new Uint8Array(mac))}`;
}

/** The `webhook-signature` header value: one signature per secret, in the order given. */
export async function signatureHeader(
  secrets: readonly string[],
  msgId: string,
  timestampSeconds: number,
  body: string,
): Promise<string> {
  if (secrets.length === 0) throw new Error('No secret to sign the message with.');
  const signatures = await Promise.all(secrets.map((secret) => sign(secret, msgId, timestampSeconds, body)));
  return signatures.join(' ');
}
