/**
 * The context a connection's token set is sealed under (stored-tokens.ts,
 * 20261123014000): its unique key, account subject included, so one
 * account's ciphertext does not open as another account's connection of the
 * same org, e-mail and calendar; sets sealed before under the legacy
 * `org:provider:email:calendar` still open, but only as the account they name
 * (on a connection without a subject: as none of the context's other accounts).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { open, parseKeyring, seal, sealTokenSet, TokenCryptoError, type TokenSet } from '../../functions/_shared/calendar/index.ts';
import {
  connectionKey,
  legacyTokenContext,
  openStoredPlaintext,
  openStoredTokens,
  tokenContext,
} from '../../functions/_shared/scheduling/stored-tokens.ts';

const ORG = '5b0e7c2a-41d3-4e8f-9a6b-0c1d2e3f4a5b';
const ring = await parseKeyring(randomBytes(32).toString('base64'));

const tokensOf = (subject: string | undefined): TokenSet => ({
  accessToken: `stored-tokens-access-${subject ?? 'none'}`,
  refreshToken: `stored-tokens-refresh-${subject ?? 'none'}`,
  expiresAt: new Date('2026-12-01T09:00:00.000Z'),
  tokenType: 'Bearer',
  ...(subject === undefined ? {} : { account: { id: subject, email: 'shared@stored-tokens.example' } }),
});

// Two accounts of one address (it passed from A's holder to B's): two connections, one e-mail and calendar.
const keyA = connectionKey(ORG, 'google', '104857600000000000001', ' Shared@Stored-Tokens.example ', null);
const keyB = connectionKey(ORG, 'google', '104857600000000000002', 'shared@stored-tokens.example', 'primary');
/** A connection made before 20261123006500, never connected again: no subject. */
const keyOld = connectionKey(ORG, 'google', null, 'shared@stored-tokens.example', null);

async function refusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(TokenCryptoError);
  return (error as TokenCryptoError).reason;
}

describe('tokenContext', () => {
  it('binds the account subject: two accounts of one e-mail and calendar differ', () => {
    expect(keyA).toMatchObject({ accountEmail: 'shared@stored-tokens.example', externalCalendarId: 'primary' });
    expect(keyA.accountEmail).toBe(keyB.accountEmail);
    expect(keyA.externalCalendarId).toBe(keyB.externalCalendarId);
    expect(tokenContext(keyA)).not.toBe(tokenContext(keyB));
    expect(tokenContext(keyA)).not.toBe(tokenContext(keyOld));
    // The legacy context was the same for both: what let A's set open on B's row.
    expect(legacyTokenContext(keyA)).toBe(legacyTokenContext(keyB));
  });

  it('keeps its parts apart: no e-mail and calendar id run into each other', () => {
    const one = connectionKey(ORG, 'microsoft', null, 'a@b.example:c', 'd');
    const two = connectionKey(ORG, 'microsoft', null, 'a@b.example', 'c:d');
    expect(legacyTokenContext(one)).toBe(legacyTokenContext(two));
    expect(tokenContext(one)).not.toBe(tokenContext(two));
  });
});

describe('openStoredTokens', () => {
  it("opens a set under its own connection's key, and not A's under B's", async () => {
    const sealedA = await sealTokenSet(tokensOf(keyA.accountSubject ?? undefined), ring, tokenContext(keyA));
    expect((await openStoredTokens(sealedA, ring, keyA)).refreshToken).toBe('stored-tokens-refresh-104857600000000000001');
    expect(await refusal(openStoredTokens(sealedA, ring, keyB))).toBe('tampered');
    expect(await refusal(openStoredTokens(sealedA, ring, keyOld))).toBe('tampered');
    expect(await refusal(openStoredPlaintext(sealedA, ring, keyB))).toBe('tampered');
  });

  it('opens a legacy seal only as the account it names', async () => {
    const legacyA = await sealTokenSet(tokensOf('104857600000000000001'), ring, legacyTokenContext(keyA));
    expect((await openStoredTokens(legacyA, ring, keyA)).accessToken).toBe('stored-tokens-access-104857600000000000001');
    expect(JSON.parse(await openStoredPlaintext(legacyA, ring, keyA))).toMatchObject({ account: { id: '104857600000000000001' } });
    // The legacy context is B's too, but the sealed account is A's.
    expect(await refusal(openStoredTokens(legacyA, ring, keyB))).toBe('tampered');
    expect(await refusal(openStoredPlaintext(legacyA, ring, keyB))).toBe('tampered');
    // A legacy set naming no account opens on no connection with a subject.
    const anonymous = await sealTokenSet(tokensOf(undefined), ring, legacyTokenContext(keyA));
    expect(await refusal(openStoredTokens(anonymous, ring, keyA))).toBe('tampered');
    expect(await refusal(openStoredPlaintext(await seal('not json', ring, legacyTokenContext(keyA)), ring, keyA))).toBe('tampered');
  });

  it('opens a connection without a subject under its e-mail key, either context', async () => {
    const legacy = await sealTokenSet(tokensOf(undefined), ring, legacyTokenContext(keyOld));
    expect((await openStoredTokens(legacy, ring, keyOld)).accessToken).toBe('stored-tokens-access-none');
    const current = await sealTokenSet(tokensOf(undefined), ring, tokenContext(keyOld));
    expect((await openStoredTokens(current, ring, keyOld)).accessToken).toBe('stored-tokens-access-none');
    expect(await refusal(openStoredTokens(current, ring, keyA))).toBe('tampered');
  });

  it("refuses on a connection without a subject a legacy set naming another of the context's accounts", async () => {
    // A's address became the old connection's by a reconnect before 20261123014000: one legacy context, A's set sealed under it.
    const legacyA = await sealTokenSet(tokensOf('104857600000000000001'), ring, legacyTokenContext(keyA));
    expect(legacyTokenContext(keyA)).toBe(legacyTokenContext(keyOld));
    const keyOldBesideA = { ...keyOld, otherSubjects: ['104857600000000000001'] };
    expect(await refusal(openStoredTokens(legacyA, ring, keyOldBesideA))).toBe('tampered');
    expect(await refusal(openStoredPlaintext(legacyA, ring, keyOldBesideA))).toBe('tampered');
    // The old connection's own legacy set still opens beside A, naming its own account or none.
    const own = await sealTokenSet(tokensOf('104857600000000000009'), ring, legacyTokenContext(keyOld));
    expect((await openStoredTokens(own, ring, keyOldBesideA)).accessToken).toBe('stored-tokens-access-104857600000000000009');
    expect(JSON.parse(await openStoredPlaintext(own, ring, keyOldBesideA))).toMatchObject({ account: { id: '104857600000000000009' } });
    const anonymous = await sealTokenSet(tokensOf(undefined), ring, legacyTokenContext(keyOld));
    expect((await openStoredTokens(anonymous, ring, keyOldBesideA)).accessToken).toBe('stored-tokens-access-none');
  });

  it('passes other failures through without trying the legacy context', async () => {
    const otherRing = await parseKeyring(randomBytes(32).toString('base64'));
    const sealed = await sealTokenSet(tokensOf('104857600000000000001'), otherRing, tokenContext(keyA));
    expect(await refusal(openStoredTokens(sealed, ring, keyA))).toBe('unknown_key');
    expect(await refusal(openStoredTokens('not sealed', ring, keyA))).toBe('malformed');
    expect(await open(sealed, otherRing, tokenContext(keyA))).toContain('stored-tokens-access-104857600000000000001');
  });
});
