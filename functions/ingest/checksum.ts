/**
 * The file's SHA-256, in the form create_upload_batch takes `checksum_sha256`
 * (64 lower-case hex characters), and the reason a run fails with when the
 * uploaded bytes are not the ones registered.
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  // A copy when the view does not span a plain ArrayBuffer (WebCrypto takes no SharedArrayBuffer).
  const source = bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', source));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

export function checksumMismatch(registered: string, uploaded: string): string {
  return `The uploaded file does not match the checksum it was registered with (SHA-256 ${registered.slice(0, 12)}…, ` +
    `the file's ${uploaded.slice(0, 12)}…); upload the registered file again.`;
}
