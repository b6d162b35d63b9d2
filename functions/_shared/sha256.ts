import { toHex } from './bytes.ts';

/** A SHA-256 as 64 lower-case hex characters (the form documents.checksum_sha256 holds). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  // A copy when the view does not span a plain ArrayBuffer (WebCrypto takes no SharedArrayBuffer).
  const source = bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', source));
  return toHex(digest);
}
