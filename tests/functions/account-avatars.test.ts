/**
 * A deleted user's avatars leave Storage (migration 20261123010600), over
 * HTTP through the gateway, real Deno and the Storage API, on a stack of its
 * own with the scheduler off (the cleanup is called with the service-role
 * key, as pg_net would): users upload into their own avatars folder as
 * themselves; deleting one's account through the function removes theirs at
 * once; a user deleted in SQL (delete_user as the service role, or the
 * auth.users row, as the Auth admin API does) keeps theirs until the
 * scheduled cleanup removes them; nobody else's avatar goes, and a deleted
 * user's still-valid token stores nothing more.
 */
import { randomUUID } from 'node:crypto';
import type { SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asServiceRole, createSql, type Sql } from '../../functions/_shared/db.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { signUserToken } from '../../scripts/local/keys.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { supabaseClient } from '../support/supabase-client.ts';

let stack: Stack;
let sql: Sql;
let service: SupabaseClient;

beforeAll(async () => {
  stack = await startStack({
    dbPort: 0,
    // Known in advance: the functions reach Storage through SUPABASE_URL.
    apiPort: await freePort(),
    functions: true,
    scheduler: false,
  });
  sql = createSql(stack.dbUrl, { max: 2 });
  service = supabaseClient(stack.apiUrl!, stack.keys.anonKey, stack.keys.serviceRoleKey);
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

interface User {
  id: string;
  token: string;
  storage: SupabaseClient['storage'];
}

async function createUser(name: string): Promise<User> {
  const id = randomUUID();
  const email = `${name}-${id.slice(0, 8)}@account-avatars.test`;
  await sql`insert into auth.users (id, instance_id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
            values (${id}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated', ${email}, now(), '{}', '{}')`;
  const token = await signUserToken({ id, email }, { expiresInSeconds: 3600 });
  return { id, token, storage: supabaseClient(stack.apiUrl!, stack.keys.anonKey, token).storage };
}

const png = () => new Blob([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])], { type: 'image/png' });

/** Uploads an avatar as the user themselves (the policies on storage.objects decide) and points their profile at it. */
async function uploadAvatar(user: User, file: string): Promise<void> {
  const path = `${user.id}/${file}`;
  const { error } = await user.storage.from('avatars').upload(path, png());
  expect(error).toBeNull();
  await sql`update public.profiles set avatar_path = ${path} where user_id = ${user.id}`;
}

/** The user's avatars as Storage lists them to the service role. */
async function avatarsOf(userId: string): Promise<string[]> {
  const { data, error } = await service.storage.from('avatars').list(userId);
  expect(error).toBeNull();
  return (data ?? []).map((object) => object.name).sort();
}

async function queued(userId: string): Promise<boolean> {
  const [{ queued }] = await sql<{ queued: boolean }[]>`
    select exists (select 1 from private.avatar_removals where user_id = ${userId}) as queued`;
  return queued;
}

async function call(method: string, path: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${stack.apiUrl}/functions/v1/${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) as Record<string, unknown> : {} };
}

describe('deleting an account removes the user\'s avatars', () => {
  it('through the function: gone from Storage at once, another user\'s stays', async () => {
    const leaver = await createUser('leaver');
    const stayer = await createUser('stayer');
    await uploadAvatar(leaver, 'me.png');
    await uploadAvatar(leaver, 'previous.png');
    await uploadAvatar(stayer, 'me.png');
    expect(await avatarsOf(leaver.id)).toEqual(['me.png', 'previous.png']);

    const deleted = await call('DELETE', 'account', leaver.token);
    expect(deleted.status, JSON.stringify(deleted.body)).toBe(204);
    const [{ users }] = await sql<{ users: number }[]>`select count(*)::int as users from auth.users where id = ${leaver.id}`;
    expect(users).toBe(0);
    expect(await avatarsOf(leaver.id)).toEqual([]);
    expect((await service.storage.from('avatars').download(`${leaver.id}/me.png`)).error).not.toBeNull();
    expect(await queued(leaver.id)).toBe(false);

    expect(await avatarsOf(stayer.id)).toEqual(['me.png']);
    expect((await service.storage.from('avatars').download(`${stayer.id}/me.png`)).error).toBeNull();
  });

  it('deleted in SQL: kept until the scheduled cleanup removes them; the token left stores nothing', async () => {
    const byRpc = await createUser('by-delete-user');
    const byRow = await createUser('by-auth-row');
    const stayer = await createUser('cleanup-stayer');
    await uploadAvatar(byRpc, 'me.png');
    await uploadAvatar(byRow, 'me.png');
    await uploadAvatar(stayer, 'me.png');

    // As the service role (an admin tool), and the row itself, as the Auth admin API and the dashboard delete.
    await asServiceRole(sql, (tx) => tx`select private.delete_user(${byRpc.id}::uuid)`);
    await sql`delete from auth.users where id = ${byRow.id}`;
    expect(await queued(byRpc.id)).toBe(true);
    expect(await queued(byRow.id)).toBe(true);
    expect(await avatarsOf(byRpc.id)).toEqual(['me.png']);

    // The deleted user's token is still valid until it expires: Storage refuses it all the same.
    expect((await byRpc.storage.from('avatars').upload(`${byRpc.id}/late.png`, png())).error).not.toBeNull();

    expect((await call('POST', 'account/storage-cleanup', stayer.token)).status).toBe(403);
    const cleanup = await call('POST', 'account/storage-cleanup', stack.keys.serviceRoleKey);
    expect(cleanup.status, JSON.stringify(cleanup.body)).toBe(200);
    expect(cleanup.body.users).toEqual(expect.arrayContaining([
      { user_id: byRpc.id, files_removed: 1, files_remaining: 0 },
      { user_id: byRow.id, files_removed: 1, files_remaining: 0 },
    ]));
    expect(cleanup.body.pending).toBe(0);

    expect(await avatarsOf(byRpc.id)).toEqual([]);
    expect(await avatarsOf(byRow.id)).toEqual([]);
    expect(await queued(byRpc.id)).toBe(false);
    expect(await queued(byRow.id)).toBe(false);
    expect(await avatarsOf(stayer.id)).toEqual(['me.png']);
  });
});
