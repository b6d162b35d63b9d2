import { mkdtempSync, rmSync } from 'node:fs';
import { SignJWT } from 'jose';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SupabaseClient } from '@supabase/supabase-js';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type FunctionsServer, startFunctionsServer } from '../../scripts/local/functions-server.ts';
import { localKeys, signUserToken } from '../../scripts/local/keys.ts';
import { ROOT_DIR } from '../../scripts/local/paths.ts';
import { createStorageApi } from '../../scripts/local/storage-api.ts';
import { supabaseClient } from '../support/supabase-client.ts';

const BUCKET = 'storage-api-test';
const ORG_A = '5e1f0a00-0000-4000-9000-00000000000a';
const ORG_B = '5e1f0a00-0000-4000-9000-00000000000b';
// Created and deleted: its id is in private.deleted_organizations.
const ORG_GONE = '5e1f0a00-0000-4000-9000-00000000000c';
const users = {
  admin: '5e1f0a00-0000-4000-8000-000000000001',
  member: '5e1f0a00-0000-4000-8000-000000000002',
  viewer: '5e1f0a00-0000-4000-8000-000000000003',
  outsider: '5e1f0a00-0000-4000-8000-000000000004',
};

const sql = postgres(inject('dbUrl'), { max: 2, onnotice: () => undefined });
const dataDir = mkdtempSync(join(tmpdir(), 'storage-api-'));
let gateway: FunctionsServer;
const clients = {} as Record<keyof typeof users, SupabaseClient>;
const tokens = {} as Record<keyof typeof users, string>;
let anonKey = '';

beforeAll(async () => {
  const keys = await localKeys();
  await sql.begin(async (tx) => {
    for (const [name, id] of Object.entries(users)) {
      await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
               values (${id}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                       ${`${name}@storage-api.test`}, '{}', '{}')`;
    }
    await tx`insert into public.organizations (id, name, slug) values (${ORG_A}, 'A', 'storage-api-a'), (${ORG_B}, 'B', 'storage-api-b')`;
    await tx`insert into public.memberships (org_id, user_id, role) values
      (${ORG_A}, ${users.admin}, 'owner'), (${ORG_A}, ${users.member}, 'member'),
      (${ORG_A}, ${users.viewer}, 'viewer'), (${ORG_B}, ${users.outsider}, 'owner')`;
    await tx`insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
             values (${BUCKET}, ${BUCKET}, false, 1024, array['text/plain', 'application/pdf'])`;
    await tx`insert into private.org_buckets (bucket_id) values (${BUCKET})`;
    await tx`insert into public.organizations (id, name, slug) values (${ORG_GONE}, 'Gone', 'storage-api-gone')`;
    await tx`delete from public.organizations where id = ${ORG_GONE}`;
    // Nothing of it to remove: the storage cleanup other tests wake leaves it alone.
    await tx`update private.deleted_organizations set storage_removed_at = now() where org_id = ${ORG_GONE}`;
  });
  anonKey = keys.anonKey;
  gateway = await startFunctionsServer({
    port: 0,
    rootDir: ROOT_DIR,
    env: { SUPABASE_JWT_SECRET: keys.jwtSecret },
    services: { '/storage/v1': createStorageApi({ sql, dataDir, env: (name) => (name === 'SUPABASE_JWT_SECRET' ? keys.jwtSecret : undefined) }) },
    log: () => undefined,
  });
  for (const [name, id] of Object.entries(users) as Array<[keyof typeof users, string]>) {
    const token = await signUserToken({ id, email: `${name}@storage-api.test` }, { expiresInSeconds: 600 });
    tokens[name] = token;
    clients[name] = supabaseClient(gateway.url, keys.anonKey, token);
  }
});

afterAll(async () => {
  await gateway?.stop();
  await sql.begin(async (tx) => {
    await tx`select set_config('storage.allow_delete_query', 'true', true)`;
    await tx`delete from storage.objects where bucket_id = ${BUCKET}`;
    await tx`delete from storage.buckets where id = ${BUCKET}`;
    await tx`delete from public.organizations where id in (${ORG_A}, ${ORG_B})`;
    await tx`delete from private.deleted_organizations where org_id = ${ORG_GONE}`;
    await tx`delete from auth.users where id in ${sql(Object.values(users))}`;
  });
  await sql.end();
  rmSync(dataDir, { recursive: true, force: true });
});

const file = (text: string, type = 'text/plain') => new Blob([text], { type });

describe('CORS for a browser\'s supabase-js storage', () => {
  const sent = ['authorization', 'apikey', 'x-upsert', 'cache-control', 'content-type', 'x-client-info', 'x-metadata'];
  const allowed = (response: Response) =>
    (response.headers.get('access-control-allow-headers') ?? '').split(',').map((name) => name.trim());

  it('answers the preflight of an upload allowing every header storage-js sends; the functions\' list stays theirs', async () => {
    const preflight = await fetch(`${gateway.url}/storage/v1/object/${BUCKET}/${ORG_A}/docs/cors.txt`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:5173',
        'access-control-request-method': 'POST',
        'access-control-request-headers': sent.join(','),
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    expect(allowed(preflight)).toEqual(expect.arrayContaining([...sent, 'content-encoding']));
    expect(preflight.headers.get('x-request-id')).toBeTruthy();

    const functionsPreflight = await fetch(`${gateway.url}/functions/v1/health`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST' },
    });
    expect(allowed(functionsPreflight)).not.toContain('x-upsert');
  });

  it('allows them on the answer too, which carries the gateway\'s origin rules', async () => {
    const response = await fetch(`${gateway.url}/storage/v1/object/${BUCKET}/${ORG_A}/docs/none.txt`, {
      headers: { origin: 'http://localhost:5173' },
    });
    expect(response.status).toBe(400);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(allowed(response)).toEqual(expect.arrayContaining(sent));
  });
});

describe('the local Storage API through supabase-js', () => {
  it('uploads, downloads and lists an org file as a member; the row carries size and type', async () => {
    const path = `${ORG_A}/docs/a.txt`;
    const uploaded = await clients.member.storage.from(BUCKET).upload(path, file('hello storage'));
    expect(uploaded.error).toBeNull();
    expect(uploaded.data?.path).toBe(path);

    const downloaded = await clients.viewer.storage.from(BUCKET).download(path);
    expect(downloaded.error).toBeNull();
    expect(await downloaded.data?.text()).toBe('hello storage');

    const listed = await clients.viewer.storage.from(BUCKET).list(`${ORG_A}/docs`);
    expect(listed.data?.map((entry) => entry.name)).toEqual(['a.txt']);

    const [row] = await sql`select metadata from storage.objects where bucket_id = ${BUCKET} and name = ${path}`;
    expect(row.metadata).toMatchObject({ size: 13, mimetype: 'text/plain' });
  });

  it('refuses what the policies refuse: a viewer uploading, another org reading', async () => {
    const refused = await clients.viewer.storage.from(BUCKET).upload(`${ORG_A}/docs/v.txt`, file('no'));
    expect(refused.error?.message).toMatch(/row-level security/);
    const hidden = await clients.outsider.storage.from(BUCKET).download(`${ORG_A}/docs/a.txt`);
    expect(hidden.data).toBeNull();
    const listed = await clients.outsider.storage.from(BUCKET).list(`${ORG_A}/docs`);
    expect(listed.data).toEqual([]);
  });

  it('applies the bucket limits: size and type, before anything is stored', async () => {
    const big = await clients.member.storage.from(BUCKET).upload(`${ORG_A}/docs/big.txt`, file('x'.repeat(2048)));
    expect(big.error?.message).toMatch(/maximum allowed size/);
    const image = await clients.member.storage.from(BUCKET).upload(`${ORG_A}/docs/a.png`, file('png', 'image/png'));
    expect(image.error?.message).toMatch(/not supported/);
    const [{ count }] = await sql`select count(*)::int as count from storage.objects where bucket_id = ${BUCKET} and name like '%big.txt' or name like '%a.png'`;
    expect(count).toBe(0);
  });

  it('replaces with upsert, and refuses a second upload without it', async () => {
    const path = `${ORG_A}/docs/b.txt`;
    expect((await clients.member.storage.from(BUCKET).upload(path, file('one'))).error).toBeNull();
    expect((await clients.member.storage.from(BUCKET).upload(path, file('two'))).error?.message).toMatch(/already exists/);
    expect((await clients.member.storage.from(BUCKET).upload(path, file('three'), { upsert: true })).error).toBeNull();
    expect(await (await clients.member.storage.from(BUCKET).download(path)).data?.text()).toBe('three');
  });

  it('removes only what the caller may delete: a member removes nothing, an owner removes the file', async () => {
    const path = `${ORG_A}/docs/a.txt`;
    const byMember = await clients.member.storage.from(BUCKET).remove([path]);
    expect(byMember.data).toEqual([]);
    expect((await clients.viewer.storage.from(BUCKET).download(path)).error).toBeNull();

    const byOwner = await clients.admin.storage.from(BUCKET).remove([path]);
    expect(byOwner.data?.map((row) => row.name)).toEqual([path]);
    expect((await clients.viewer.storage.from(BUCKET).download(path)).data).toBeNull();
  });

  it('signs URLs for a reader that download until they expire; tampered, expired or other paths are refused', async () => {
    const path = `${ORG_A}/docs/signed.txt`;
    expect((await clients.member.storage.from(BUCKET).upload(path, file('signed bytes'))).error).toBeNull();

    const signed = await clients.viewer.storage.from(BUCKET).createSignedUrl(path, 60, { download: 'mine.txt' });
    expect(signed.error).toBeNull();
    const url = signed.data!.signedUrl;
    expect(url.startsWith(`${gateway.url}/storage/v1/object/sign/${BUCKET}/${path}?token=`)).toBe(true);
    // No credential but the token.
    const fetched = await fetch(url);
    expect(fetched.status).toBe(200);
    expect(fetched.headers.get('content-disposition')).toBe('attachment; filename="mine.txt"');
    expect(await fetched.text()).toBe('signed bytes');

    // Someone who cannot read the object cannot sign it.
    const outsider = await clients.outsider.storage.from(BUCKET).createSignedUrl(path, 60);
    expect(outsider.data).toBeNull();
    expect(outsider.error?.message).toMatch(/not found/i);

    const token = new URL(url).searchParams.get('token')!;
    const tampered = `${token.slice(0, -4)}${token.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    const bad = await fetch(`${gateway.url}/storage/v1/object/sign/${BUCKET}/${path}?token=${tampered}`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'InvalidJWT' });

    // A valid token names one object only.
    const elsewhere = await fetch(`${gateway.url}/storage/v1/object/sign/${BUCKET}/${ORG_A}/docs/b.txt?token=${token}`);
    expect(elsewhere.status).toBe(400);

    const keys = await localKeys();
    const past = Math.floor(Date.now() / 1000) - 10;
    const expired = await new SignJWT({ url: `${BUCKET}/${path}` }).setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt(past - 60).setExpirationTime(past).sign(new TextEncoder().encode(keys.jwtSecret));
    const late = await fetch(`${gateway.url}/storage/v1/object/sign/${BUCKET}/${path}?token=${expired}`);
    expect(late.status).toBe(400);
    expect(await late.json()).toMatchObject({ error: 'InvalidJWT', message: 'jwt expired' });

    const many = await clients.viewer.storage.from(BUCKET).createSignedUrls([path, `${ORG_A}/docs/none.txt`], 60);
    expect(many.error).toBeNull();
    expect(many.data?.map((entry) => [entry.path, entry.signedUrl !== null])).toEqual([[path, true], [`${ORG_A}/docs/none.txt`, false]]);
    expect(await (await fetch(many.data![0].signedUrl!)).text()).toBe('signed bytes');
  });
});

describe('uploads nobody may make, answered alike', () => {
  /** The status and body of a raw upload, as storage-js sends it, with a user's token or the anon key alone. */
  async function upload(token: string, bucket: string, name: string, type: string) {
    const response = await fetch(`${gateway.url}/storage/v1/object/${bucket}/${name}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, apikey: anonKey, 'content-type': type },
      body: 'probe',
    });
    return { status: response.status, body: await response.json() };
  }
  const refused = {
    status: 403,
    body: { statusCode: '403', error: 'Unauthorized', message: 'new row violates row-level security policy' },
  };

  it('an org bucket: 403 under a deleted org\'s prefix as under a live or unknown org\'s, for anon and an outsider', async () => {
    const unknown = '5e1f0a00-0000-4000-9000-0000000000ff';
    for (const token of [anonKey, tokens.outsider]) {
      for (const org of [ORG_A, ORG_GONE, unknown]) {
        expect(await upload(token, BUCKET, `${org}/docs/probe.txt`, 'text/plain'), org).toEqual(refused);
      }
    }
    const [{ count }] = await sql`select count(*)::int as count from storage.objects where name like '%/docs/probe.txt'`;
    expect(count).toBe(0);
  });

  it('avatars: 403 in an existing user\'s folder as in a made-up one, for anon and another user', async () => {
    const unknown = '5e1f0a00-0000-4000-8000-0000000000ff';
    for (const token of [anonKey, tokens.outsider]) {
      for (const folder of [users.admin, unknown]) {
        expect(await upload(token, 'avatars', `${folder}/probe.png`, 'image/png'), folder).toEqual(refused);
      }
    }
    expect(await upload(tokens.outsider, 'avatars', `${users.outsider}/probe.png`, 'image/png')).toMatchObject({ status: 200 });
    await sql.begin(async (tx) => {
      await tx`select set_config('storage.allow_delete_query', 'true', true)`;
      await tx`delete from storage.objects where bucket_id = 'avatars' and name = ${`${users.outsider}/probe.png`}`;
    });
  });
});

describe('lists as hosted Storage does: folders as entries without an id, only where the caller reads', () => {
  it('an org bucket: a reader sees the folder under the org, an outsider nothing', async () => {
    const path = `${ORG_A}/listed/deeper/f.txt`;
    expect((await clients.member.storage.from(BUCKET).upload(path, file('folder'))).error).toBeNull();
    const listed = await clients.viewer.storage.from(BUCKET).list(`${ORG_A}/listed`);
    expect(listed.data).toEqual([expect.objectContaining({ name: 'deeper', id: null, metadata: null })]);
    expect((await clients.viewer.storage.from(BUCKET).list(`${ORG_A}/listed/deeper`)).data?.map((entry) => [entry.name, typeof entry.id]))
      .toEqual([['f.txt', 'string']]);
    expect((await clients.outsider.storage.from(BUCKET).list(`${ORG_A}/listed`)).data).toEqual([]);
  });

  it('avatars: their user and co-members list and download them; a user sharing no org finds no folder', async () => {
    const path = `${users.admin}/me.png`;
    const png = new Blob([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])], { type: 'image/png' });
    expect((await clients.admin.storage.from('avatars').upload(path, png, { upsert: true })).error).toBeNull();
    try {
      const folders = async (who: keyof typeof users) =>
        ((await clients[who].storage.from('avatars').list('', { limit: 1000 })).data ?? [])
          .filter((entry) => entry.id === null).map((entry) => entry.name);
      expect(await folders('member')).toContain(users.admin);
      expect(await folders('admin')).toContain(users.admin);
      expect(await folders('outsider')).toEqual([]);
      expect((await clients.member.storage.from('avatars').list(users.admin)).data?.map((entry) => entry.name)).toEqual(['me.png']);
      expect((await clients.member.storage.from('avatars').download(path)).error).toBeNull();
      expect((await clients.outsider.storage.from('avatars').list(users.admin)).data).toEqual([]);
      expect((await clients.outsider.storage.from('avatars').download(path)).data).toBeNull();
    } finally {
      await sql.begin(async (tx) => {
        await tx`select set_config('storage.allow_delete_query', 'true', true)`;
        await tx`delete from storage.objects where bucket_id = 'avatars' and name = ${path}`;
      });
    }
  });
});
