/**
 * The knowledge function over HTTP (through the gateway, real Deno) on its own
 * embedded stack with the Storage API: deleting a document removes its file,
 * its row and (by cascade) its chunks, for admins and up only; searching
 * answers an API key with knowledge.read in its org, or a user in theirs.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { createKnowledgeHandler } from '../../functions/knowledge/handler.ts';
import { signUserToken } from '../../scripts/local/keys.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { ingestUntilDone, registerFile } from '../support/knowledge.ts';
import { pageMarker, textPdf } from '../support/pdfs.ts';
import { supabaseClient } from '../support/supabase-client.ts';
import { freePort } from '../../scripts/local/free-port.ts';

type Role = 'owner' | 'admin' | 'member' | 'viewer';
const ROLES: Role[] = ['owner', 'admin', 'member', 'viewer'];

interface Org {
  id: string;
  users: Record<Role, string>;
  tokens: Record<Role, string>;
  clients: Record<Role, SupabaseClient>;
}

let stack: Stack;
let sql: Sql;
let org: Org;
let other: Org;

/** A port that was free a moment ago: startStack with apiPort 0 would tell the functions SUPABASE_URL port 0. */
async function createOrg(): Promise<Org> {
  const id = randomUUID();
  const users = Object.fromEntries(ROLES.map((role) => [role, randomUUID()])) as Record<Role, string>;
  await sql.begin(async (tx) => {
    for (const role of ROLES) {
      await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
               values (${users[role]}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                       ${`${role}-${users[role].slice(0, 8)}@knowledge.test`}, '{}', '{}')`;
    }
    await tx`insert into public.organizations (id, name, slug) values (${id}, 'Knowledge', ${`kb-${id.slice(0, 8)}`})`;
    for (const role of ROLES) {
      await tx`insert into public.memberships (org_id, user_id, role) values (${id}, ${users[role]}, ${role}::public.org_role)`;
    }
  });
  const tokens = {} as Record<Role, string>;
  const clients = {} as Record<Role, SupabaseClient>;
  for (const role of ROLES) {
    tokens[role] = await signUserToken({ id: users[role], email: `${role}@knowledge.test` }, { expiresInSeconds: 1800 });
    clients[role] = supabaseClient(stack.apiUrl!, stack.keys.anonKey, tokens[role]);
  }
  return { id, users, tokens, clients };
}

/** Ingests the document to its end (the scheduler is off here); it must end ready. */
async function ingestUntilReady(id: string): Promise<void> {
  expect(await ingestUntilDone({ apiUrl: stack.apiUrl!, serviceRoleKey: stack.keys.serviceRoleKey }, id)).toMatchObject({
    status: 'ready',
  });
}

/**
 * A PDF registered through create_upload_batch and uploaded by the member, ingested by calling the ingest
 * function until it is done, so it has chunks.
 */
async function ingestedDocument(target: Org): Promise<{ id: string; path: string }> {
  const bytes = await textPdf([pageMarker(1), pageMarker(2)]);
  const { id, storage_path: path } = await registerFile(sql, target.users.member, target.id, {
    name: 'manual.pdf',
    mime_type: 'application/pdf',
    size_bytes: bytes.byteLength,
  });
  const uploaded = await target.clients.member.storage.from('knowledge').upload(path, new Blob([bytes], { type: 'application/pdf' }));
  expect(uploaded.error).toBeNull();
  await ingestUntilReady(id);
  return { id, path };
}

const utf8 = (text: string) => new TextEncoder().encode(text);

const remove = (id: string, token?: string, method = 'DELETE') =>
  fetch(`${stack.apiUrl}/functions/v1/knowledge/documents/${id}`, {
    method,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });

async function counts(id: string, path: string) {
  const [row] = await sql<{ documents: number; chunks: number; objects: number }[]>`
    select (select count(*)::int from public.documents where id = ${id}) as documents,
           (select count(*)::int from public.document_chunks where document_id = ${id}) as chunks,
           (select count(*)::int from storage.objects where bucket_id = 'knowledge' and name = ${path}) as objects`;
  return row;
}

async function apiKey(target: Org, scopes: string[]): Promise<{ id: string; key: string }> {
  const claims = { role: 'authenticated', sub: target.users.owner, aud: 'authenticated', exp: Math.floor(Date.now() / 1000) + 600 };
  const [created] = await withUserScope(sql, claims, (tx) =>
    tx<{ id: string; key: string }[]>`select id, key from public.create_api_key(${target.id}::uuid, 'search', ${scopes})`);
  return created;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

beforeAll(async () => {
  stack = await startStack({ dbPort: 0, apiPort: await freePort(), scheduler: false });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createOrg();
  other = await createOrg();
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe('DELETE /knowledge/documents/:id', () => {
  it('needs a signed-in user (401), a known route and method (404, 405) and a UUID (422)', async () => {
    const anonymous = await remove(randomUUID());
    expect(anonymous.status).toBe(401);
    expect((await anonymous.json()).error.code).toBe('missing_authorization');
    const anonKey = await remove(randomUUID(), stack.keys.anonKey);
    expect(anonKey.status).toBe(401);
    expect((await anonKey.json()).error.code).toBe('user_required');
    expect((await remove(randomUUID(), org.tokens.owner, 'PUT')).status).toBe(405);
    const invalid = await remove('nope', org.tokens.owner);
    expect(invalid.status).toBe(422);
    expect((await invalid.json()).error.code).toBe('invalid_request');
    const elsewhere = await fetch(`${stack.apiUrl}/functions/v1/knowledge/other`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${org.tokens.owner}` },
    });
    expect(elsewhere.status).toBe(404);
  });

  it('refuses members and viewers (403) and hides the document from another org (404), changing nothing', async () => {
    const { id, path } = await ingestedDocument(org);
    const before = await counts(id, path);
    expect(before.documents).toBe(1);
    expect(before.objects).toBe(1);
    expect(before.chunks).toBeGreaterThan(0);

    for (const role of ['member', 'viewer'] as const) {
      const response = await remove(id, org.tokens[role]);
      expect(response.status).toBe(403);
      expect(await response.json()).toMatchObject({
        error: { code: 'forbidden', message: 'Only admins and owners may delete documents.' },
      });
    }
    const stranger = await remove(id, other.tokens.owner);
    expect(stranger.status).toBe(404);
    expect((await stranger.json()).error).toMatchObject({ code: 'not_found', message: 'The document was not found.' });
    expect((await remove(randomUUID(), org.tokens.owner)).status).toBe(404);

    expect(await counts(id, path)).toEqual(before);
  });

  it('lets an admin delete: the file, the row and its chunks go; the audit log names the admin; a repeat is 404', async () => {
    const { id, path } = await ingestedDocument(org);
    const response = await remove(id, org.tokens.admin);
    expect(response.status).toBe(204);
    expect(await response.text()).toBe('');
    expect(await counts(id, path)).toEqual({ documents: 0, chunks: 0, objects: 0 });
    const download = await org.clients.owner.storage.from('knowledge').download(path);
    expect(download.data).toBeNull();

    const [audit] = await sql<{ actor_user_id: string }[]>`
      select actor_user_id from public.audit_log
      where table_name = 'documents' and action = 'delete' and record_id = ${id}`;
    expect(audit.actor_user_id).toBe(org.users.admin);

    expect((await remove(id, org.tokens.admin)).status).toBe(404);
  });

  it('keeps a document being deleted out of ingestion: a step after its file went neither fails nor finishes it', async () => {
    // Registered and uploaded, so queued; the scheduler is off, so no step has run yet.
    const bytes = await textPdf([pageMarker(1)]);
    const { id, storage_path: path } = await registerFile(sql, org.users.member, org.id, {
      name: 'leaving.pdf',
      mime_type: 'application/pdf',
      size_bytes: bytes.byteLength,
    });
    const uploaded = await org.clients.member.storage.from('knowledge').upload(path, new Blob([bytes], { type: 'application/pdf' }));
    expect(uploaded.error).toBeNull();
    // A delete stopped after its first two steps: the document is marked and its file removed.
    await sql.begin(async (tx) => {
      await tx`select set_config('role', 'service_role', true)`;
      await tx`select private.begin_document_deletion(${id}::uuid)`;
    });
    const removed = await supabaseClient(stack.apiUrl!, stack.keys.serviceRoleKey).storage.from('knowledge').remove([path]);
    expect(removed.error).toBeNull();

    const step = await fetch(`${stack.apiUrl}/functions/v1/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.keys.serviceRoleKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ document_id: id }),
    });
    expect(step.status).toBeLessThan(300);
    expect(await step.json()).not.toMatchObject({ status: 'failed' });
    const [document] = await sql<{ status: string; failure_reason: string | null; deletion_started_at: Date | null }[]>`
      select status, failure_reason, deletion_started_at from public.documents where id = ${id}`;
    expect(document).toMatchObject({ status: 'queued', failure_reason: null, deletion_started_at: expect.any(Date) });
    const [{ events }] = await sql<{ events: number }[]>`
      select count(*)::int as events from public.events
      where type in ('document.failed', 'document.ready') and payload ->> 'document_id' = ${id}`;
    expect(events).toBe(0);

    // Deleting again finishes the job.
    expect((await remove(id, org.tokens.admin)).status).toBe(204);
    expect(await counts(id, path)).toEqual({ documents: 0, chunks: 0, objects: 0 });
  });

  it('lets an owner delete a document whose file is already gone (a retried delete)', async () => {
    const { id, path } = await ingestedDocument(org);
    // Users may not delete a document's file on its own; the first try of a delete removed it as the service role.
    const byOwner = await org.clients.owner.storage.from('knowledge').remove([path]);
    expect(byOwner.data).toEqual([]);
    expect(await counts(id, path)).toEqual({ documents: 1, chunks: expect.any(Number), objects: 1 });
    const removed = await supabaseClient(stack.apiUrl!, stack.keys.serviceRoleKey).storage.from('knowledge').remove([path]);
    expect(removed.error).toBeNull();
    expect((await remove(id, org.tokens.owner)).status).toBe(204);
    expect(await counts(id, path)).toEqual({ documents: 0, chunks: 0, objects: 0 });
  });
});

describe('POST /knowledge/search', () => {
  let keys: { reader: string; chatOnly: string; otherOrg: string; revoked: string };
  let botId: string;

  const search = (body: unknown, headers: Record<string, string>) =>
    fetch(`${stack.apiUrl}/functions/v1/knowledge/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const orgOf = async (documentId: string) =>
    (await sql<{ org_id: string }[]>`select org_id from public.documents where id = ${documentId}`)[0]?.org_id;

  beforeAll(async () => {
    await ingestedDocument(org);
    const revoked = await apiKey(org, ['knowledge.read']);
    await withUserScope(
      sql,
      { role: 'authenticated', sub: org.users.owner, aud: 'authenticated', exp: Math.floor(Date.now() / 1000) + 600 },
      (tx) => tx`select public.revoke_api_key(${revoked.id}::uuid)`,
    );
    keys = {
      reader: (await apiKey(org, ['knowledge.read'])).key,
      chatOnly: (await apiKey(org, ['chat.write'])).key,
      otherOrg: (await apiKey(other, ['knowledge.read'])).key,
      revoked: revoked.key,
    };
    [{ id: botId }] = await sql<{ id: string }[]>`
      insert into public.bots (org_id, name, slug, system_prompt, language, model, channels, enabled, escalation_action)
      values (${org.id}, 'Search bot', ${`search-${org.id.slice(0, 8)}`}, 'You answer.', 'en', 'offline', ${['api']}, true,
              'notify'::public.bot_escalation_action)
      returning id`;
  });

  it('finds the page that holds the answer for a key with knowledge.read, cites it, and meters the query to the key', async () => {
    const response = await search({ query: 'Which page records the zq2x14 tariff?', match_count: 3 }, bearer(keys.reader));
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body).toMatchObject({ object: 'list', usage: { embedding_tokens: expect.any(Number) } });
    expect(body.data.length).toBeGreaterThan(0);
    // Earlier tests left a copy of the same manual in the org: either copy answers. Its two short pages
    // make one chunk, cited with both pages.
    expect(body.data[0]).toMatchObject({ document_name: 'manual.pdf', page_start: 1, page_end: 2 });
    expect(await orgOf(body.data[0].document_id)).toBe(org.id);
    expect(body.data[0].content).toContain('zq2x14');
    expect(typeof body.data[0].score).toBe('number');

    const [usage] = await sql<{ kind: string; api_key_id: string | null; tokens_in: number }[]>`
      select kind, api_key_id, tokens_in from public.usage_events
      where org_id = ${org.id} and kind = 'embedding' and api_key_id is not null order by created_at desc limit 1`;
    expect(usage).toMatchObject({ kind: 'embedding', tokens_in: body.usage.embedding_tokens });
  });

  it('takes the key in x-api-key too, and searches a bot\'s sources with bot_id', async () => {
    const response = await search({ query: 'zq1x7 tariff', bot_id: botId }, { 'x-api-key': keys.reader });
    expect(response.status).toBe(200);
    expect((await response.json()).data[0]).toMatchObject({ document_name: 'manual.pdf', page_start: 1 });
  });

  it('lets a viewer search their org by org_id, and answers 404 for an org they are not in', async () => {
    const mine = await search({ query: 'zq1x7 tariff', org_id: org.id }, bearer(org.tokens.viewer));
    expect(mine.status).toBe(200);
    expect((await mine.json()).data[0]).toMatchObject({ document_name: 'manual.pdf', page_start: 1 });
    const theirs = await search({ query: 'zq1x7 tariff', org_id: org.id }, bearer(other.tokens.owner));
    expect(theirs.status).toBe(404);
    expect((await theirs.json()).error.code).toBe('not_found');
  });

  it('never returns another org\'s chunks: a key searches its own org only', async () => {
    const own = await search({ query: 'zq1x7 tariff' }, bearer(keys.otherOrg));
    expect(own.status).toBe(200);
    expect((await own.json()).data).toEqual([]);
    const named = await search({ query: 'zq1x7 tariff', org_id: org.id }, bearer(keys.otherOrg));
    expect(named.status).toBe(403);
    const bot = await search({ query: 'zq1x7 tariff', bot_id: botId }, bearer(keys.otherOrg));
    expect(bot.status).toBe(404);
  });

  it('holds a user\'s bot_id to the searched org: another org\'s bot or an unknown one is 404, embedding and metering nothing', async () => {
    const [{ id: otherBot }] = await sql<{ id: string }[]>`
      insert into public.bots (org_id, name, slug, system_prompt, language, model, channels, enabled, escalation_action)
      values (${other.id}, 'Other bot', ${`search-${other.id.slice(0, 8)}`}, 'You answer.', 'en', 'offline', ${['api']}, true,
              'notify'::public.bot_escalation_action)
      returning id`;
    const embeddingRows = async () =>
      (await sql<{ n: number }[]>`
        select count(*)::int as n from public.usage_events where org_id in (${org.id}, ${other.id}) and kind = 'embedding'`)[0].n;
    const before = await embeddingRows();
    // The member of both orgs sees the other bot, and used to search it and fail to meter it (500).
    await sql`insert into public.memberships (org_id, user_id, role) values (${other.id}, ${org.users.member}, 'member')`;
    try {
      for (const [token, bot] of [[org.tokens.member, otherBot], [org.tokens.owner, otherBot], [org.tokens.owner, randomUUID()]]) {
        const refused = await search({ query: 'zq1x7 tariff', org_id: org.id, bot_id: bot }, bearer(token));
        expect(refused.status).toBe(404);
        expect((await refused.json()).error).toMatchObject({ code: 'not_found', message: 'The bot was not found.' });
      }
    } finally {
      await sql`delete from public.memberships where org_id = ${other.id} and user_id = ${org.users.member}`;
    }
    expect(await embeddingRows()).toBe(before);

    const own = await search({ query: 'zq1x7 tariff', org_id: org.id, bot_id: botId }, bearer(org.tokens.owner));
    expect(own.status).toBe(200);
    const body = await own.json();
    expect(body.data[0]).toMatchObject({ document_name: 'manual.pdf', page_start: 1 });
    const metered = await sql<{ bot_id: string; user_id: string; tokens_in: number }[]>`
      select bot_id, user_id, tokens_in from public.usage_events
      where org_id = ${org.id} and kind = 'embedding' and bot_id = ${botId} and user_id = ${org.users.owner}`;
    expect(metered).toEqual([{ bot_id: botId, user_id: org.users.owner, tokens_in: body.usage.embedding_tokens }]);
  });

  it('refuses a query holding a NUL with 422 before embedding or metering it', async () => {
    const embeddingRows = async () =>
      (await sql<{ n: number }[]>`select count(*)::int as n from public.usage_events where org_id = ${org.id} and kind = 'embedding'`)[0].n;
    const before = await embeddingRows();
    const refused = await search({ query: 'zq1x7\u0000 tariff' }, bearer(keys.reader));
    expect(refused.status).toBe(422);
    expect((await refused.json()).error).toMatchObject({ code: 'invalid_request', message: expect.stringContaining('NUL') });
    expect(await embeddingRows()).toBe(before);
  });

  it('refuses callers without the right: no credentials, a revoked key, a key without knowledge.read', async () => {
    const none = await search({ query: 'x' }, {});
    expect(none.status).toBe(401);
    expect((await none.json()).error.code).toBe('missing_authorization');
    const revoked = await search({ query: 'x' }, bearer(keys.revoked));
    expect(revoked.status).toBe(401);
    expect((await revoked.json()).error.code).toBe('invalid_api_key');
    const chatOnly = await search({ query: 'x' }, bearer(keys.chatOnly));
    expect(chatOnly.status).toBe(403);
    expect((await chatOnly.json()).error).toMatchObject({ code: 'insufficient_scope' });
    expect((await search({ query: 'x', org_id: org.id }, bearer(stack.keys.anonKey))).status).toBe(401);
    expect((await fetch(`${stack.apiUrl}/functions/v1/knowledge/search`, { method: 'GET', headers: bearer(keys.reader) })).status)
      .toBe(405);
  });

  it('answers bad input with 400/422 and a JSON error, metering nothing', async () => {
    const [{ before }] = await sql<{ before: number }[]>`select count(*)::int as before from public.usage_events where org_id = ${org.id}`;
    const cases: Array<[unknown, number]> = [
      ['{not json', 400],
      [{}, 422],
      [{ query: '   ' }, 422],
      [{ query: 'x'.repeat(8001) }, 422],
      [{ query: 'x', match_count: 0 }, 422],
      [{ query: 'x', match_count: 51 }, 422],
      [{ query: 'x', collection_ids: ['not-a-uuid'] }, 422],
      [{ query: 'x', collection_ids: [] }, 422],
      [{ query: 'x', bot_id: botId, collection_ids: [randomUUID()] }, 422],
      [{ query: 'x', unexpected: true }, 422],
    ];
    for (const [body, status] of cases) {
      const response = await search(body, bearer(keys.reader));
      expect(response.status, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect((await response.json()).error).toMatchObject({ code: expect.any(String), message: expect.any(String) });
    }
    const user = await search({ query: 'x' }, bearer(org.tokens.viewer));
    expect(user.status).toBe(422);
    expect((await user.json()).error.message).toContain('org_id');
    const [{ after }] = await sql<{ after: number }[]>`select count(*)::int as after from public.usage_events where org_id = ${org.id}`;
    expect(after).toBe(before);
  });

  it('applies the key\'s rate limit: 429 with Retry-After once it is spent', async () => {
    const limited = await apiKey(org, ['knowledge.read']);
    await sql`update public.api_keys set rate_limit_per_minute = 1 where id = ${limited.id}`;
    expect((await search({ query: 'zq1x7' }, bearer(limited.key))).status).toBe(200);
    const refused = await search({ query: 'zq1x7' }, bearer(limited.key));
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await refused.json()).error.code).toBe('rate_limited');

    // A key without the scope is refused within its limit too: each 403 takes one request, once.
    const scopeless = await apiKey(org, ['chat.write']);
    await sql`update public.api_keys set rate_limit_per_minute = 2 where id = ${scopeless.id}`;
    const searched = await search({ query: 'zq1x7' }, bearer(scopeless.key));
    expect([searched.status, (await searched.json()).error.code]).toEqual([403, 'insufficient_scope']);
    const listed = await fetch(`${stack.apiUrl}/functions/v1/knowledge/documents`, { headers: bearer(scopeless.key) });
    expect([listed.status, (await listed.json()).error.code]).toEqual([403, 'insufficient_scope']);
    const spent = await search({ query: 'zq1x7' }, bearer(scopeless.key));
    expect([spent.status, (await spent.json()).error.code]).toEqual([429, 'rate_limited']);

    // So does a key holding the scope whose requests are refused: a bad body, another org, an unknown bot.
    const careless = await apiKey(org, ['knowledge.read']);
    await sql`update public.api_keys set rate_limit_per_minute = 3 where id = ${careless.id}`;
    expect((await search({ query: '' }, bearer(careless.key))).status).toBe(422);
    expect((await search({ query: 'zq1x7', org_id: other.id }, bearer(careless.key))).status).toBe(403);
    expect((await search({ query: 'zq1x7', bot_id: randomUUID() }, bearer(careless.key))).status).toBe(404);
    const careful = await search({ query: 'zq1x7' }, bearer(careless.key));
    expect([careful.status, (await careful.json()).error.code]).toEqual([429, 'rate_limited']);
  });
});

describe('POST /knowledge/products/search', () => {
  let keys: { catalog: string; knowledgeOnly: string; otherOrg: string };
  let categories: { audio: string; headphones: string; otherOrgs: string };

  const searchProducts = (body: unknown, headers: Record<string, string>) =>
    fetch(`${stack.apiUrl}/functions/v1/knowledge/products/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const names = async (response: Response) => {
    expect(response.status).toBe(200);
    return ((await response.json()).data as { name: string }[]).map((product) => product.name);
  };

  beforeAll(async () => {
    keys = {
      catalog: (await apiKey(org, ['catalog.read'])).key,
      knowledgeOnly: (await apiKey(org, ['knowledge.read'])).key,
      otherOrg: (await apiKey(other, ['catalog.read'])).key,
    };
    const [audio] = await sql<{ id: string }[]>`
      insert into public.catalog_categories (org_id, name) values (${org.id}, 'Audio') returning id`;
    const [headphones] = await sql<{ id: string }[]>`
      insert into public.catalog_categories (org_id, parent_id, name) values (${org.id}, ${audio.id}, 'Headphones') returning id`;
    const [otherOrgs] = await sql<{ id: string }[]>`
      insert into public.catalog_categories (org_id, name) values (${other.id}, 'Audio') returning id`;
    categories = { audio: audio.id, headphones: headphones.id, otherOrgs: otherOrgs.id };
    await sql`
      insert into public.products (org_id, category_id, name, description, price, currency, stock, sku, active) values
        (${org.id}, ${headphones.id}, 'Wireless Headphones', 'Noise cancelling, 30 h battery', 199.00, 'EUR', 12, 'WH-1', true),
        (${org.id}, ${audio.id}, 'Bookshelf Speaker', 'A pair, wooden', 349.50, 'EUR', 3, 'BS-2', true),
        (${org.id}, null, 'Gift Card', 'Any amount', 25.00, 'EUR', null, null, true),
        (${org.id}, ${headphones.id}, 'Wired Headphones', 'Discontinued', 49.00, 'EUR', 0, 'WH-0', false),
        (${other.id}, ${otherOrgs.id}, 'Wireless Headphones Pro', 'Another org''s', 299.00, 'USD', 5, 'WH-9', true)`;
  });

  it('finds products by text with a typo for a key with catalog.read, with category, price and stock', async () => {
    const response = await searchProducts({ query: 'wireles headphones' }, bearer(keys.catalog));
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.data).toEqual([
      expect.objectContaining({
        name: 'Wireless Headphones',
        price: 199,
        currency: 'EUR',
        stock: 12,
        sku: 'WH-1',
        active: true,
        category_id: categories.headphones,
        category_name: 'Headphones',
        score: expect.any(Number),
      }),
    ]);
    expect(body).toMatchObject({ object: 'list', next_offset: null });
    expect(body.data[0]).not.toHaveProperty('org_id');
  });

  it('filters by category (with its subcategories or not), price range and active state, and pages', async () => {
    expect(await names(await searchProducts({ category_id: categories.audio }, bearer(keys.catalog))))
      .toEqual(['Bookshelf Speaker', 'Wireless Headphones']);
    expect(await names(await searchProducts({ category_id: categories.audio, include_subcategories: false }, bearer(keys.catalog))))
      .toEqual(['Bookshelf Speaker']);
    expect(await names(await searchProducts({ min_price: 20, max_price: 200 }, bearer(keys.catalog))))
      .toEqual(['Gift Card', 'Wireless Headphones']);
    expect(await names(await searchProducts({ query: 'headphones', active_only: false }, bearer(keys.catalog))))
      .toEqual(expect.arrayContaining(['Wired Headphones', 'Wireless Headphones']));
    const first = await (await searchProducts({ match_count: 2 }, bearer(keys.catalog))).json();
    expect(first.data).toHaveLength(2);
    expect(first.next_offset).toBe(2);
    const second = await (await searchProducts({ match_count: 2, offset: first.next_offset }, bearer(keys.catalog))).json();
    expect(second.data.map((p: { name: string }) => p.name)).toEqual(['Wireless Headphones']);
    expect(second.next_offset).toBeNull();
    // A last page that happens to be full says so too (it used to point at an empty page).
    const whole = await (await searchProducts({ match_count: 3 }, bearer(keys.catalog))).json();
    expect(whole.data).toHaveLength(3);
    expect(whole.next_offset).toBeNull();
    const tail = await (await searchProducts({ match_count: 1, offset: 2 }, bearer(keys.catalog))).json();
    expect(tail.data.map((p: { name: string }) => p.name)).toEqual(['Wireless Headphones']);
    expect(tail.next_offset).toBeNull();
  });

  it('lets a viewer search their org by org_id under RLS; an org they are not in is 404', async () => {
    expect(await names(await searchProducts({ query: 'speaker', org_id: org.id }, bearer(org.tokens.viewer))))
      .toEqual(['Bookshelf Speaker']);
    const outsider = await searchProducts({ query: 'speaker', org_id: org.id }, bearer(other.tokens.owner));
    expect(outsider.status).toBe(404);
  });

  it('never returns another org\'s products: a key searches its own org, another org\'s category is 404', async () => {
    expect(await names(await searchProducts({ query: 'headphones pro' }, bearer(keys.otherOrg)))).toEqual(['Wireless Headphones Pro']);
    expect(await names(await searchProducts({ query: 'wireless' }, bearer(keys.catalog)))).toEqual(['Wireless Headphones']);
    expect((await searchProducts({ org_id: other.id }, bearer(keys.catalog))).status).toBe(403);
    const foreign = await searchProducts({ category_id: categories.otherOrgs }, bearer(keys.catalog));
    expect(foreign.status).toBe(404);
    expect((await foreign.json()).error.code).toBe('not_found');
  });

  it('refuses a key without catalog.read (403) and bad input (400/422) with a JSON error', async () => {
    const scoped = await searchProducts({ query: 'x' }, bearer(keys.knowledgeOnly));
    expect(scoped.status).toBe(403);
    expect((await scoped.json()).error.code).toBe('insufficient_scope');
    const cases: Array<[unknown, number]> = [
      ['{not json', 400],
      [{ query: 'x'.repeat(201) }, 422],
      [{ min_price: -1 }, 422],
      [{ min_price: 10, max_price: 5 }, 422],
      [{ match_count: 51 }, 422],
      [{ offset: 10001 }, 422],
      [{ category_id: 'not-a-uuid' }, 422],
      [{ unexpected: true }, 422],
    ];
    for (const [body, status] of cases) {
      const response = await searchProducts(body, bearer(keys.catalog));
      expect(response.status, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect((await response.json()).error).toMatchObject({ code: expect.any(String), message: expect.any(String) });
    }
    expect((await searchProducts({}, bearer(org.tokens.viewer))).status).toBe(422);
  });

  it('takes from the key\'s one bucket: a knowledge search and a product search share its rate limit', async () => {
    const limited = await apiKey(org, ['catalog.read', 'knowledge.read']);
    await sql`update public.api_keys set rate_limit_per_minute = 1 where id = ${limited.id}`;
    const searched = await fetch(`${stack.apiUrl}/functions/v1/knowledge/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(limited.key) },
      body: JSON.stringify({ query: 'zq1x7' }),
    });
    expect(searched.status).toBe(200);
    const refused = await searchProducts({ query: 'speaker' }, bearer(limited.key));
    expect(refused.status).toBe(429);
    expect((await refused.json()).error.code).toBe('rate_limited');
  });
});

describe('POST /knowledge/documents (an API key pushes a file)', () => {
  let keys: { writer: string; writerId: string; reader: string; readOnly: string; otherOrg: string };
  let otherCollection: string;

  const push = (query: Record<string, string>, body: BodyInit | null, headers: Record<string, string>) =>
    fetch(`${stack.apiUrl}/functions/v1/knowledge/documents?${new URLSearchParams(query)}`, {
      method: 'POST',
      headers,
      body,
    });
  const documentCount = async () =>
    (await sql<{ n: number }[]>`select count(*)::int as n from public.documents where org_id = ${org.id}`)[0].n;

  beforeAll(async () => {
    const writer = await apiKey(org, ['knowledge.write']);
    keys = {
      writer: writer.key,
      writerId: writer.id,
      reader: (await apiKey(org, ['knowledge.read'])).key,
      readOnly: (await apiKey(org, ['knowledge.read'])).key,
      otherOrg: (await apiKey(other, ['knowledge.write'])).key,
    };
    [{ id: otherCollection }] = await sql<{ id: string }[]>`
      insert into public.collections (org_id, name) values (${other.id}, 'Theirs') returning id`;
  });

  it('registers and stores the file, queues it; once ingested it is searchable; the audit log names the key', async () => {
    const bytes = await textPdf([pageMarker(3), pageMarker(4)]);
    const response = await push({ name: 'Price list 2026.pdf' }, new Blob([bytes]), {
      ...bearer(keys.writer),
      'content-type': 'application/pdf',
    });
    expect(response.status).toBe(202);
    const document = await response.json();
    expect(document).toMatchObject({
      org_id: org.id,
      name: 'Price list 2026.pdf',
      mime_type: 'application/pdf',
      size_bytes: bytes.byteLength,
      checksum_sha256: createHash('sha256').update(bytes).digest('hex'),
      status: 'queued',
    });
    const stored = await org.clients.owner.storage.from('knowledge').download(document.storage_path);
    expect(new Uint8Array(await stored.data!.arrayBuffer())).toEqual(bytes);
    const [audit] = await sql<{ actor_api_key_id: string; actor_user_id: string | null }[]>`
      select actor_api_key_id, actor_user_id from public.audit_log
      where table_name = 'documents' and action = 'insert' and record_id = ${document.id}`;
    expect(audit).toEqual({ actor_api_key_id: keys.writerId, actor_user_id: null });

    await ingestUntilReady(document.id);
    const found = await fetch(`${stack.apiUrl}/functions/v1/knowledge/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(keys.reader) },
      body: JSON.stringify({ query: 'zq4x28 tariff' }),
    });
    const { data } = await found.json();
    const hit = (data as { document_id: string; page_start: number; page_end: number }[])
      .find((row) => row.document_id === document.id);
    expect(hit!.page_start).toBeLessThanOrEqual(2);
    expect(hit!.page_end).toBeGreaterThanOrEqual(2);
  });

  it('lets the key delete its org\'s documents, file and chunks, and answers 404 for another org\'s', async () => {
    const bytes = utf8('Opening hours: nine to five.');
    const created = await (await push({ name: 'hours.txt' }, new Blob([bytes]), {
      ...bearer(keys.writer),
      'content-type': 'text/plain; charset=utf-8',
    })).json();
    expect(created.mime_type).toBe('text/plain');
    expect((await remove(created.id, keys.otherOrg)).status).toBe(404);
    expect((await remove(created.id, keys.readOnly)).status).toBe(403);
    expect((await remove(created.id, keys.writer)).status).toBe(204);
    expect(await counts(created.id, created.storage_path)).toEqual({ documents: 0, chunks: 0, objects: 0 });
    const theirs = await ingestedDocument(other);
    expect((await remove(theirs.id, keys.writer)).status).toBe(404);
    expect(await counts(theirs.id, theirs.path)).toMatchObject({ documents: 1, objects: 1 });

    // A key deletes at its rate limit, as it calls every route.
    const limited = await apiKey(org, ['knowledge.write']);
    await sql`update public.api_keys set rate_limit_per_minute = 1 where id = ${limited.id}`;
    expect((await remove(randomUUID(), limited.key)).status).toBe(404);
    const refused = await remove(randomUUID(), limited.key);
    expect(refused.status).toBe(429);
    expect((await refused.json()).error.code).toBe('rate_limited');
  });

  it('registers a file once per Idempotency-Key: a retry replays the first answer, another file is 422', async () => {
    const before = await documentCount();
    const key = randomUUID();
    const send = (text: string, idempotencyKey: string = key) =>
      push({ name: 'menu.txt' }, new Blob([utf8(text)]), {
        ...bearer(keys.writer),
        'content-type': 'text/plain',
        'idempotency-key': idempotencyKey,
      });
    const first = await send('Soup of the day: lentils.');
    expect(first.status).toBe(202);
    const document = await first.json();
    const retry = await send('Soup of the day: lentils.');
    expect(retry.status).toBe(202);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(await retry.json()).toEqual(document);
    expect(await documentCount()).toBe(before + 1);
    const other = await send('Soup of the day: tomato.');
    expect(other.status).toBe(422);
    expect((await other.json()).error.code).toBe('idempotency_key_reused');
    expect((await send('x', 'has spaces')).status).toBe(422);
    expect(await documentCount()).toBe(before + 1);
  });

  it('takes the registration back when Storage refuses the file: 503, no document and no batch left', async () => {
    // The function's own handler in this process, with a Storage that fails (the wire stand-in cannot be told to).
    const failing = createKnowledgeHandler({
      sql: () => sql,
      env: (name) => ({ SUPABASE_URL: stack.apiUrl!, SUPABASE_JWT_SECRET: stack.keys.jwtSecret })[name],
      store: {
        upload: () => Promise.reject(new Error('Storage is down')),
        remove: () => Promise.resolve(),
      },
    });
    const batches = async () =>
      (await sql<{ n: number }[]>`select count(*)::int as n from public.upload_batches where org_id = ${org.id}`)[0].n;
    const [documentsBefore, batchesBefore] = [await documentCount(), await batches()];
    const response = await failing(
      new Request('http://localhost/knowledge/documents?name=hours.txt', {
        method: 'POST',
        headers: { ...bearer(keys.writer), 'content-type': 'text/plain' },
        body: 'Opening hours: nine to five.',
      }),
    );
    expect(response.status).toBe(503);
    expect((await response.json()).error.code).toBe('storage_unavailable');
    expect(response.headers.get('retry-after')).toBe('5');
    expect([await documentCount(), await batches()]).toEqual([documentsBefore, batchesBefore]);

    // With an Idempotency-Key the claim goes with the registration: the same request, sent again, is stored.
    const key = randomUUID();
    const refused = await failing(
      new Request('http://localhost/knowledge/documents?name=hours.txt', {
        method: 'POST',
        headers: { ...bearer(keys.writer), 'content-type': 'text/plain', 'idempotency-key': key },
        body: 'Opening hours: nine to five.',
      }),
    );
    expect(refused.status).toBe(503);
    const stored = await push({ name: 'hours.txt' }, new Blob([utf8('Opening hours: nine to five.')]), {
      ...bearer(keys.writer),
      'content-type': 'text/plain',
      'idempotency-key': key,
    });
    expect(stored.status).toBe(202);
    expect(stored.headers.get('idempotent-replayed')).toBeNull();
    expect(await documentCount()).toBe(documentsBefore + 1);

    // Storage down for the removal too: the claim is given up all the same, so the retry is stored at once (not
    // 409 for 10 minutes); the registration stays, `uploading`, lest a file no document names be left behind.
    const down = createKnowledgeHandler({
      sql: () => sql,
      env: (name) => ({ SUPABASE_URL: stack.apiUrl!, SUPABASE_JWT_SECRET: stack.keys.jwtSecret })[name],
      store: {
        upload: () => Promise.reject(new Error('Storage is down')),
        remove: () => Promise.reject(new Error('Storage is still down')),
      },
    });
    const downKey = randomUUID();
    const lost = await down(
      new Request('http://localhost/knowledge/documents?name=closing.txt', {
        method: 'POST',
        headers: { ...bearer(keys.writer), 'content-type': 'text/plain', 'idempotency-key': downKey },
        body: 'Closing time: six.',
      }),
    );
    expect(lost.status).toBe(503);
    expect((await lost.json()).error.code).toBe('storage_unavailable');
    const retried = await push({ name: 'closing.txt' }, new Blob([utf8('Closing time: six.')]), {
      ...bearer(keys.writer),
      'content-type': 'text/plain',
      'idempotency-key': downKey,
    });
    expect(retried.status).toBe(202);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
    const kept = await sql<{ status: string }[]>`
      select status from public.documents where org_id = ${org.id} and name = 'closing.txt' order by created_at`;
    expect(kept).toHaveLength(2);
    expect(kept[0].status).toBe('uploading');
    expect(kept[1].status).not.toBe('uploading');
  });

  it('answers 409 document_deleted when the document is deleted while its file is stored, and frees the Idempotency-Key', async () => {
    // A Storage that sees the document go first: refused as the object trigger refuses a file without its
    // document (42501), or stored just as the deletion marks the row.
    const racing = (upload: (path: string) => Promise<void>) =>
      createKnowledgeHandler({
        sql: () => sql,
        env: (name) => ({ SUPABASE_URL: stack.apiUrl!, SUPABASE_JWT_SECRET: stack.keys.jwtSecret })[name],
        store: { upload, remove: () => Promise.resolve() },
      });
    const refusedOnceGone = racing(async (path) => {
      await sql`delete from public.documents where storage_path = ${path}`;
      throw new Error('new row violates row-level security policy');
    });
    const storedAsMarked = racing(async (path) => {
      await sql`update public.documents set deletion_started_at = now() where storage_path = ${path}`;
    });
    for (const [handler, name] of [[refusedOnceGone, 'gone.txt'], [storedAsMarked, 'marked.txt']] as const) {
      const key = randomUUID();
      const request = () =>
        new Request(`http://localhost/knowledge/documents?name=${name}`, {
          method: 'POST',
          headers: { ...bearer(keys.writer), 'content-type': 'text/plain', 'idempotency-key': key },
          body: 'Closed on Sundays.',
        });
      const refused = await handler(request());
      expect(refused.status).toBe(409);
      expect((await refused.json()).error.code).toBe('document_deleted');
      // The claim is free: the same request is taken anew, not replayed or refused as in progress.
      const again = await push({ name }, new Blob([utf8('Closed on Sundays.')]), {
        ...bearer(keys.writer),
        'content-type': 'text/plain',
        'idempotency-key': key,
      });
      expect(again.status).toBe(202);
      expect(again.headers.get('idempotent-replayed')).toBeNull();
    }
  });

  it('refuses what it cannot take with 4xx and a JSON error, registering nothing', async () => {
    const before = await documentCount();
    const text = (name: string) => new Blob([utf8(`${name} text`)]);
    const cases: Array<[Record<string, string>, BodyInit | null, Record<string, string>, number, string]> = [
      [{ name: 'a.pdf' }, text('a'), { 'content-type': 'application/pdf' }, 401, 'missing_authorization'],
      [{ name: 'a.txt' }, text('a'), { ...bearer(keys.readOnly), 'content-type': 'text/plain' }, 403, 'insufficient_scope'],
      [{ name: 'a.txt' }, text('a'), { ...bearer(org.tokens.owner), 'content-type': 'text/plain' }, 403, 'forbidden'],
      [{ name: 'a.exe' }, text('a'), { ...bearer(keys.writer), 'content-type': 'application/octet-stream' }, 415,
        'unsupported_media_type'],
      [{ name: 'a.txt' }, text('a'), bearer(keys.writer), 415, 'unsupported_media_type'],
      [{}, text('a'), { ...bearer(keys.writer), 'content-type': 'text/plain' }, 422, 'invalid_request'],
      [{ name: 'a.txt', extra: '1' }, text('a'), { ...bearer(keys.writer), 'content-type': 'text/plain' }, 422,
        'invalid_request'],
      [{ name: 'a/b.txt' }, text('a'), { ...bearer(keys.writer), 'content-type': 'text/plain' }, 422, 'invalid_request'],
      [{ name: 'a.txt', collection_id: 'nope' }, text('a'), { ...bearer(keys.writer), 'content-type': 'text/plain' }, 422,
        'invalid_request'],
      [{ name: 'a.txt', collection_id: otherCollection }, text('a'), { ...bearer(keys.writer), 'content-type': 'text/plain' },
        422, 'invalid_request'],
      [{ name: 'empty.txt' }, null, { ...bearer(keys.writer), 'content-type': 'text/plain' }, 422, 'invalid_request'],
      [{ name: 'big.txt' }, new Blob([new Uint8Array(25 * 1024 * 1024 + 1).fill(0x61)]),
        { ...bearer(keys.writer), 'content-type': 'text/plain' }, 413, 'file_too_large'],
    ];
    for (const [query, body, headers, status, code] of cases) {
      const response = await push(query, body, headers);
      expect(response.status, `${JSON.stringify(query)} ${headers['content-type']}`).toBe(status);
      expect((await response.json()).error).toMatchObject({ code, message: expect.any(String) });
    }
    expect((await fetch(`${stack.apiUrl}/functions/v1/knowledge/documents`, { method: 'PUT', headers: bearer(keys.writer) })).status)
      .toBe(405);
    // Sent in pieces without a Content-Length: counted as it arrives, refused past 25 MB.
    const piece = new Uint8Array(1024 * 1024).fill(0x61);
    let sent = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 26) controller.enqueue(piece);
        else controller.close();
      },
    });
    const streamed = await fetch(`${stack.apiUrl}/functions/v1/knowledge/documents?name=big.txt`, {
      method: 'POST',
      headers: { ...bearer(keys.writer), 'content-type': 'text/plain' },
      body: endless,
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect((await streamed.json()).error.code).toBe('file_too_large');
    expect(await documentCount()).toBe(before);
  });
});
