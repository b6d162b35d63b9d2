import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  keyringFromBytes,
  keyringFromEnv,
  needsReseal,
  open,
  openTokenSet,
  parseKeyring,
  seal,
  sealTokenSet,
  TokenCryptoError,
  type TokenSet,
} from '../../functions/_shared/calendar/index.ts';

const KEY_A = randomBytes(32).toString('base64');
const KEY_B = randomBytes(32).toString('base64');
const CONNECTION = '3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c';

const tokens: TokenSet = {
  accessToken: 'ya29.a0AfH6SMB-access',
  refreshToken: '1//0g-refresh',
  expiresAt: new Date('2026-03-30T09:00:00.000Z'),
  scope: 'https://www.googleapis.com/auth/calendar.events openid email',
  tokenType: 'Bearer',
  account: { id: '1234567890', email: 'ada@example.com' },
};

async function cryptoError(promise: Promise<unknown>): Promise<TokenCryptoError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(TokenCryptoError);
  return error as TokenCryptoError;
}

describe('token envelope encryption', () => {
  it('round-trips a token set, with a fresh data key and IV every time', async () => {
    const keyring = await parseKeyring(KEY_A);
    const sealed = await sealTokenSet(tokens, keyring, CONNECTION);
    expect(sealed).toMatch(/^v1\.[0-9a-f]{8}\.[\w-]{16}\.[\w-]{54}\.[\w-]+$/);
    expect(sealed).not.toContain('ya29');
    expect(await openTokenSet(sealed, keyring, CONNECTION)).toEqual(tokens);
    const again = await sealTokenSet(tokens, keyring, CONNECTION);
    expect(again).not.toBe(sealed);
    expect(again.split('.')[3]).not.toBe(sealed.split('.')[3]);
    const minimal: TokenSet = { accessToken: 'a', expiresAt: new Date(0), tokenType: 'Bearer' };
    expect(await openTokenSet(await sealTokenSet(minimal, keyring), keyring)).toEqual(minimal);
  });

  it('detects tampering with any part, and a value moved to another row (context)', async () => {
    const keyring = await parseKeyring(KEY_A);
    const sealed = await seal('{"secret":true}', keyring, CONNECTION);
    const parts = sealed.split('.');
    const flip = (part: string) => `${part[0] === 'A' ? 'B' : 'A'}${part.slice(1)}`;
    for (const index of [2, 3, 4]) {
      const changed = [...parts];
      changed[index] = flip(changed[index] ?? '');
      expect((await cryptoError(open(changed.join('.'), keyring, CONNECTION))).reason).toBe('tampered');
    }
    expect((await cryptoError(open(sealed, keyring, 'another-connection'))).reason).toBe('tampered');
    expect((await cryptoError(open(sealed, keyring))).reason).toBe('tampered');
    expect((await cryptoError(open('v2.abc', keyring))).reason).toBe('malformed');
    expect((await cryptoError(open(`${sealed}.extra`, keyring, CONNECTION))).reason).toBe('malformed');
    expect((await cryptoError(openTokenSet(await seal('not json', keyring), keyring))).reason).toBe('malformed');
  });

  it('rotates: seals with the first key, opens with any, and says what to re-seal', async () => {
    const old = await parseKeyring(KEY_A);
    const sealedOld = await sealTokenSet(tokens, old, CONNECTION);
    const rotated = await parseKeyring(`${KEY_B}, ${KEY_A}`);
    expect(rotated.keys).toHaveLength(2);
    expect(await openTokenSet(sealedOld, rotated, CONNECTION)).toEqual(tokens);
    expect(needsReseal(sealedOld, rotated)).toBe(true);
    const sealedNew = await sealTokenSet(tokens, rotated, CONNECTION);
    expect(needsReseal(sealedNew, rotated)).toBe(false);
    expect(sealedNew.split('.')[1]).toBe(rotated.keys[0]?.kid);
    // The old key retired: new values open, old ones name a key no longer configured.
    const retired = await parseKeyring(KEY_B);
    expect(await openTokenSet(sealedNew, retired, CONNECTION)).toEqual(tokens);
    expect((await cryptoError(openTokenSet(sealedOld, retired, CONNECTION))).reason).toBe('unknown_key');
  });

  it('names keys by fingerprint, accepts URL-safe base64, and refuses bad keys', async () => {
    const a = await parseKeyring(KEY_A);
    const same = await keyringFromBytes([Buffer.from(KEY_A, 'base64')]);
    expect(same.keys[0]?.kid).toBe(a.keys[0]?.kid);
    const urlSafe = await parseKeyring(Buffer.from(KEY_A, 'base64').toString('base64url'));
    expect(urlSafe.keys[0]?.kid).toBe(a.keys[0]?.kid);
    expect((await parseKeyring(`${KEY_A} ${KEY_A}`)).keys).toHaveLength(1);
    expect((await cryptoError(parseKeyring(randomBytes(16).toString('base64')))).reason).toBe('bad_key');
    expect((await cryptoError(parseKeyring('***'))).reason).toBe('bad_key');
    expect((await cryptoError(parseKeyring(''))).reason).toBe('bad_key');
    const env = (values: Record<string, string>) => (name: string) => values[name];
    expect((await cryptoError(keyringFromEnv(env({})))).message).toMatch(/CALENDAR_TOKEN_KEY is not set/);
    expect((await keyringFromEnv(env({ CALENDAR_TOKEN_KEY: ` ${KEY_A}\n` }))).keys[0]?.kid).toBe(a.keys[0]?.kid);
  });
});
