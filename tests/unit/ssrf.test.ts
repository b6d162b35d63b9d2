import { describe, expect, it } from 'vitest';
import { HttpError } from '../../functions/_shared/errors.ts';
import { assertPublicDestination, isAllowedAddress, resolvePublicDestination } from '../../functions/_shared/ssrf.ts';

const production = { allowLoopback: false };
const resolvingTo = (...addresses: string[]) => ({ allowLoopback: false, resolve: async () => addresses });

async function refusal(url: string, policy: Parameters<typeof assertPublicDestination>[1]): Promise<string> {
  const error = await assertPublicDestination(url, policy).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, url).toBeInstanceOf(HttpError);
  expect((error as HttpError).status).toBe(422);
  expect((error as HttpError).code).toBe('unsafe_url');
  return (error as HttpError).message;
}

describe('SSRF guard', () => {
  it('accepts an https URL whose every address is public', async () => {
    const url = await assertPublicDestination('https://hooks.example.com/in', resolvingTo('93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'));
    expect(url.hostname).toBe('hooks.example.com');
  });

  it('answers the addresses it approved, so a request can be pinned to them', async () => {
    let lookups = 0;
    const policy = {
      allowLoopback: false,
      resolve: async () => (++lookups, ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c']),
    };
    const approved = await resolvePublicDestination('https://hooks.example.com/in', policy);
    expect(approved.url.href).toBe('https://hooks.example.com/in');
    expect(approved.addresses).toEqual(['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c']);
    expect(lookups).toBe(1);
    // An IP literal is its own address, unbracketed, and costs no lookup.
    const literal = await resolvePublicDestination('https://[2606:4700::1111]:8443/x', policy);
    expect(literal.addresses).toEqual(['2606:4700::1111']);
    expect(lookups).toBe(1);
    await expect(resolvePublicDestination('https://hooks.example.com/', resolvingTo('93.184.215.14', '10.0.0.7')))
      .rejects.toMatchObject({ status: 422, code: 'unsafe_url' });
  });

  it('refuses private, loopback, link-local, metadata, CGNAT, multicast and reserved addresses', () => {
    for (const address of [
      '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '127.0.0.1', '0.0.0.0', '169.254.169.254',
      '100.64.0.1', '224.0.0.1', '255.255.255.255', '198.18.0.1',
      '::1', '::', 'fe80::1', 'fc00::1', 'fd00:ec2::254', 'ff02::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1',
      '64:ff9b::a9fe:a9fe', '2001:db8::1', 'not-an-ip',
    ]) {
      expect(isAllowedAddress(address, production), address).toBe(false);
    }
    for (const address of ['8.8.8.8', '172.32.0.1', '2606:4700::1111', '::ffff:8.8.8.8']) {
      expect(isAllowedAddress(address, production), address).toBe(true);
    }
  });

  it('checks after DNS resolution: a public-looking name that resolves privately is refused', async () => {
    const message = await refusal('https://innocent.example.com/', resolvingTo('93.184.215.14', '10.0.0.7'));
    expect(message).toMatch(/private or reserved/);
    expect(message, 'the internal address is not revealed').not.toMatch(/10\.0\.0\.7/);
    expect(await refusal('https://meta.example.com/', resolvingTo('169.254.169.254'))).toMatch(/private or reserved/);
  });

  it('refuses http, credentials, internal names, IP literals in private ranges and names that do not resolve', async () => {
    expect(await refusal('http://hooks.example.com/', resolvingTo('93.184.215.14'))).toMatch(/https/);
    expect(await refusal('https://user:pw@hooks.example.com/', resolvingTo('93.184.215.14'))).toMatch(/credentials/);
    expect(await refusal('https://localhost/', resolvingTo('127.0.0.1'))).toMatch(/internal/);
    expect(await refusal('https://metadata.google.internal/', resolvingTo('169.254.169.254'))).toMatch(/internal/);
    expect(await refusal('https://[::1]/', production)).toMatch(/private or reserved/);
    expect(await refusal('https://192.168.0.10/', production)).toMatch(/private or reserved/);
    expect(await refusal('not a url', production)).toMatch(/not valid/);
    const nowhere = {
      allowLoopback: false,
      resolve: async () => Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.example.com'), { code: 'ENOTFOUND' })),
    };
    expect(await refusal('https://nowhere.example.com/', nowhere)).toMatch(/does not resolve/);
  });

  it('admits http and loopback only when the local stack allows it, and still refuses private ranges', async () => {
    const local = { allowLoopback: true };
    await expect(assertPublicDestination('http://127.0.0.1:4000/hook', local)).resolves.toBeInstanceOf(URL);
    await expect(assertPublicDestination('http://localhost:4000/hook', { allowLoopback: true, resolve: async () => ['127.0.0.1'] })).resolves.toBeInstanceOf(URL);
    expect(await refusal('http://10.0.0.1/hook', local)).toMatch(/private or reserved/);
    expect(await refusal('http://169.254.169.254/latest/meta-data', local)).toMatch(/private or reserved/);
  });
});
