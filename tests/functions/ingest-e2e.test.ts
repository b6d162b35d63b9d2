/**
 * The whole ingestion path with nobody calling the function: a member uploads
 * through supabase-js storage to the `knowledge` bucket → the storage.objects
 * trigger queues the document and calls private.request_ingest → pg_net (the
 * local scheduler drains it, as pg_net's worker does) → the ingest function →
 * each step queues the next through pg_net → ready. Its own stack, since the
 * scheduler and the Vault secrets would otherwise act on other files' data.
 */
import { randomUUID } from 'node:crypto';
import type { SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { signUserToken } from '../../scripts/local/keys.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { registerFile } from '../support/knowledge.ts';
import { pageMarker, textPdf } from '../support/pdfs.ts';
import { supabaseClient } from '../support/supabase-client.ts';
import { freePort } from '../../scripts/local/free-port.ts';

let stack: Stack;
let sql: Sql;
let orgId: string;
let memberId: string;
let member: SupabaseClient;

beforeAll(async () => {
  stack = await startStack({
    dbPort: 0,
    // Known in advance: the function reaches Storage through SUPABASE_URL (see ingest.test.ts).
    apiPort: await freePort(),
    functions: true,
    scheduler: true,
    functionEnv: { INGEST_STEP_PAGES: '4' },
  });
  sql = createSql(stack.dbUrl, { max: 2 });
  orgId = randomUUID();
  memberId = randomUUID();
  await sql.begin(async (tx) => {
    await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
             values (${memberId}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                     'member@ingest-e2e.test', '{}', '{}')`;
    await tx`insert into public.organizations (id, name, slug) values (${orgId}, 'E2E', ${`e2e-${orgId.slice(0, 8)}`})`;
    await tx`insert into public.memberships (org_id, user_id, role) values (${orgId}, ${memberId}, 'member')`;
  });
  member = supabaseClient(stack.apiUrl!, stack.keys.anonKey, await signUserToken({ id: memberId }, { expiresInSeconds: 1800 }));
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

/** Registered by the member through create_upload_batch. */
async function register(name: string, size: number): Promise<{ id: string; path: string }> {
  const { id, storage_path } = await registerFile(sql, memberId, orgId, { name, mime_type: 'application/pdf', size_bytes: size });
  return { id, path: storage_path };
}

async function waitForEnd(id: string, timeoutMs = 30_000): Promise<{ status: string; chunk_count: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await sql<{ status: string; chunk_count: number }[]>`
      select status, chunk_count from public.documents where id = ${id}`;
    if (row.status === 'ready' || row.status === 'failed' || Date.now() > deadline) return row;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * What pg_net got back from each request it sent to the ingest function for
 * this document. The scheduler records a response only after the function has
 * answered, which can be a moment after the document turned ready, so this
 * waits (up to 5 s) until `expected` responses are there.
 */
async function ingestResponses(id: string, expected: number): Promise<number[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const rows = await sql<{ status_code: number }[]>`
      select status_code from net._http_response where content like ${`%${id}%`} order by id`;
    if (rows.length >= expected || Date.now() > deadline) return rows.map((row) => row.status_code);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('upload to searchable with the scheduler running', () => {
  it('ingests a 2-page PDF after a supabase-js upload with no manual call', async () => {
    const bytes = await textPdf([pageMarker(1), pageMarker(2)]);
    const { id, path } = await register('two-pages.pdf', bytes.byteLength);
    const started = Date.now();
    const { error } = await member.storage.from('knowledge').upload(path, new Blob([bytes], { type: 'application/pdf' }));
    expect(error).toBeNull();
    const end = await waitForEnd(id);
    const elapsed = Date.now() - started;
    expect(end.status).toBe('ready');
    expect(end.chunk_count).toBeGreaterThan(0);
    // The promise is 5 s; the slack is for a loaded CI machine (bench:rag reports the real figure).
    expect(elapsed).toBeLessThan(15_000);
    expect(await ingestResponses(id, 1)).toEqual([200]);
  });

  it('chains the steps of a longer PDF through pg_net, and re-ingests on retry_document', async () => {
    const bytes = await textPdf(Array.from({ length: 10 }, (_, index) => pageMarker(index + 1)));
    const { id, path } = await register('ten-pages.pdf', bytes.byteLength);
    expect((await member.storage.from('knowledge').upload(path, new Blob([bytes], { type: 'application/pdf' }))).error)
      .toBeNull();
    expect((await waitForEnd(id)).status).toBe('ready');
    // 4 pages a step: 202, 202, then 200 when the third step finishes the run.
    expect(await ingestResponses(id, 3)).toEqual([202, 202, 200]);
    const [{ pages }] = await sql<{ pages: number }[]>`
      select count(distinct p)::int as pages
      from public.document_chunks c, generate_series(c.page_start, c.page_end) p where c.document_id = ${id}`;
    expect(pages).toBe(10);

    await withUserScope(
      sql,
      { role: 'authenticated', sub: memberId, aud: 'authenticated', exp: Math.floor(Date.now() / 1000) + 600 },
      (tx) => tx`select public.retry_document(${id}::uuid)`,
    );
    const deadline = Date.now() + 30_000;
    while ((await ingestResponses(id, 0)).length < 6 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect((await waitForEnd(id)).status).toBe('ready');
    expect(await ingestResponses(id, 6)).toEqual([202, 202, 200, 202, 202, 200]);
  });
});
