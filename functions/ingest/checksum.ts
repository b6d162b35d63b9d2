/** The reason a run fails with when the uploaded bytes are not the ones registered (their SHA-256: sha256Hex). */
export function checksumMismatch(registered: string, uploaded: string): string {
  return `The uploaded file does not match the checksum it was registered with (SHA-256 ${registered.slice(0, 12)}…, ` +
    `the file's ${uploaded.slice(0, 12)}…); upload the registered file again.`;
}
