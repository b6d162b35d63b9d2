/**
 * The plan's embedding tokens are checked before the model is called
 * (20261123009900): once an org has used its period's allowance, the
 * knowledge search answers 402 `quota_exceeded` without embedding or metering
 * anything, an ingestion run ends the document `failed` with the reason at
 * its first step (no chunks, nothing embedded or metered), and the documents
 * API's retry is refused with the same 402, and a chat turn answers from a
 * full-text search without embedding its question. An OpenAI stub counts
 * what reaches the provider. Its own stack (the scheduler off: steps are called here).
 */
import { randomUUID } from 'node:crypto';
import type { SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { signUserToken } from '../../scripts/local/keys.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { ingestUntilDone, registerFile } from '../support/knowledge.ts';
import { type OpenAiStub, startOpenAiStub } from '../support/openai-stub.ts';
import { pageMarker, textPdf } from '../support/pdfs.ts';
import { parseSse } from '../support/sse.ts';
import { createBot } from '../support/chat-fixtures.ts';
import { supabaseClient } from '../support/supabase-client.ts';

const API_KEY = 'sk-embedding-quota-test';
/** The free plan's monthly_embedding_tokens. */
const FREE_EMBEDDING_TOKENS = 1_000_000;

let stub: OpenAiStub;
let stack: Stack;
let sql: Sql;
let orgId: string;
let ownerId: string;
let memberId: string;
let member: SupabaseClient;
let memberToken: string;
let key: string;

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function search(body: unknown, headers: Record<string, string>): Promise<Response> {
  return fetch(`${stack.apiUrl}/functions/v1/knowledge/search`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

async function usageRows(): Promise<number> {
  const [{ count }] = await sql<{ count: number }[]>`
    select count(*)::int as count from public.usage_events where org_id = ${orgId}`;
  return count;
}

/** Usage metered so far in the period, topped up to the free plan's allowance. */
async function useUpEmbeddingTokens(): Promise<void> {
  await sql`
    insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out)
    select ${orgId}, 'embedding', 'embedding-quota-test', ${FREE_EMBEDDING_TOKENS} - coalesce(sum(u.tokens_in + u.tokens_out), 0), 0
    from public.usage_events u where u.org_id = ${orgId} and u.kind = 'embedding'`;
}

/** A 2-page PDF registered by the member and uploaded to its path (which queues it). */
async function uploadedDocument(name: string): Promise<string> {
  const bytes = await textPdf([pageMarker(1), pageMarker(2)]);
  const { id, storage_path: path } = await registerFile(sql, memberId, orgId, {
    name,
    mime_type: 'application/pdf',
    size_bytes: bytes.byteLength,
  });
  const { error } = await member.storage.from('knowledge').upload(path, new Blob([bytes], { type: 'application/pdf' }));
  expect(error).toBeNull();
  return id;
}

beforeAll(async () => {
  stub = await startOpenAiStub({ apiKey: API_KEY });
  stack = await startStack({
    dbPort: 0,
    // Known in advance: the function reaches Storage through SUPABASE_URL (see ingest.test.ts).
    apiPort: await freePort(),
    scheduler: false,
    functionEnv: { OPENAI_API_KEY: API_KEY, OPENAI_BASE_URL: stub.baseURL, OPENAI_MAX_RETRIES: '0' },
  });
  sql = createSql(stack.dbUrl, { max: 2 });
  orgId = randomUUID();
  ownerId = randomUUID();
  memberId = randomUUID();
  await sql.begin(async (tx) => {
    for (const [id, role] of [[ownerId, 'owner'], [memberId, 'member']] as const) {
      await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
               values (${id}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                       ${`${role}-${id.slice(0, 8)}@embedding-quota.test`}, '{}', '{}')`;
    }
    await tx`insert into public.organizations (id, name, slug)
             values (${orgId}, 'Embedding quota', ${`embedding-quota-${orgId.slice(0, 8)}`})`;
    await tx`insert into public.memberships (org_id, user_id, role)
             values (${orgId}, ${ownerId}, 'owner'), (${orgId}, ${memberId}, 'member')`;
  });
  memberToken = await signUserToken({ id: memberId }, { expiresInSeconds: 1800 });
  member = supabaseClient(stack.apiUrl!, stack.keys.anonKey, memberToken);
  const claims = { role: 'authenticated', sub: ownerId, aud: 'authenticated', exp: Math.floor(Date.now() / 1000) + 600 };
  [{ key }] = await withUserScope(sql, claims, (tx) =>
    tx<{ key: string }[]>`
      select key from public.create_api_key(${orgId}::uuid, 'embedding quota', ${['knowledge.read', 'knowledge.write']})`);
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

describe('the embedding quota', () => {
  let readyId: string;

  it('lets an org with tokens left ingest and search (the provider is called and the tokens metered)', async () => {
    readyId = await uploadedDocument('quota-ready.pdf');
    expect(await ingestUntilDone({ apiUrl: stack.apiUrl!, serviceRoleKey: stack.keys.serviceRoleKey }, readyId))
      .toMatchObject({ status: 'ready' });
    const searched = await search({ query: 'zq1x7 tariff' }, bearer(key));
    expect(searched.status).toBe(200);
    expect(stub.requests.length).toBeGreaterThanOrEqual(2);
  });

  it('refuses the search with 402 quota_exceeded once the allowance is used, embedding and metering nothing', async () => {
    await useUpEmbeddingTokens();
    stub.reset();
    const rows = await usageRows();

    const byKey = await search({ query: 'zq1x7 tariff' }, bearer(key));
    expect(byKey.status).toBe(402);
    expect(await byKey.json()).toMatchObject({
      error: {
        code: 'quota_exceeded',
        message: `quota exceeded: the Free plan includes ${FREE_EMBEDDING_TOKENS} embedding tokens per month and ${FREE_EMBEDDING_TOKENS} are used in this period`,
      },
    });
    const byUser = await search({ query: 'zq1x7 tariff', org_id: orgId }, bearer(memberToken));
    expect(byUser.status).toBe(402);
    expect((await byUser.json()).error.code).toBe('quota_exceeded');

    expect(stub.requests).toEqual([]);
    expect(await usageRows()).toBe(rows);
  });

  it('answers a chat turn from a full-text search, citing the page, without embedding the question', async () => {
    const bot = await createBot(sql, orgId, { slug: 'embedding-quota-bot' });
    stub.reset();
    const [{ embeddings: before }] = await sql<{ embeddings: number }[]>`
      select count(*)::int as embeddings from public.usage_events where org_id = ${orgId} and kind = 'embedding'`;
    const response = await fetch(`${stack.apiUrl}/functions/v1/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(memberToken) },
      body: JSON.stringify({ bot_id: bot, message: 'Which page records the zq2x14 tariff?' }),
    });
    expect(response.status).toBe(200);
    const events = parseSse(await response.text());
    const { citations } = events.find((e) => e.event === 'citations')!.data as { citations: Record<string, unknown>[] };
    // The 2-page file is one chunk, pages 1-2.
    expect(citations[0]).toMatchObject({ document_id: readyId, page_start: 1, page_end: 2 });
    expect(stub.requests).toEqual([]);
    const [{ embeddings: after }] = await sql<{ embeddings: number }[]>`
      select count(*)::int as embeddings from public.usage_events where org_id = ${orgId} and kind = 'embedding'`;
    expect(after).toBe(before);
  });

  it('fails an ingestion run at its first step with the reason: no chunks, nothing embedded or metered', async () => {
    stub.reset();
    const rows = await usageRows();
    const id = await uploadedDocument('quota-over.pdf');
    const answer = await ingestUntilDone({ apiUrl: stack.apiUrl!, serviceRoleKey: stack.keys.serviceRoleKey }, id);
    expect(answer.status).toBe('failed');
    expect(answer.reason).toMatch(/^Not indexed: the organization's embedding tokens for this period are used up \(quota exceeded: /);

    const [document] = await sql<{ status: string; failure_reason: string; chunk_count: number; chunks: number }[]>`
      select d.status, d.failure_reason, d.chunk_count,
        (select count(*)::int from public.document_chunks c where c.document_id = d.id) as chunks
      from public.documents d where d.id = ${id}`;
    expect(document).toEqual({ status: 'failed', failure_reason: answer.reason, chunk_count: 0, chunks: 0 });
    const [{ failed }] = await sql<{ failed: number }[]>`
      select count(*)::int as failed from public.events
      where org_id = ${orgId} and type = 'document.failed' and payload ->> 'document_id' = ${id}`;
    expect(failed).toBe(1);
    expect(stub.requests).toEqual([]);
    expect(await usageRows()).toBe(rows);
  });

  it('refuses the documents API\'s retry with 402 quota_exceeded, leaving the document failed', async () => {
    const [{ id }] = await sql<{ id: string }[]>`
      select id from public.documents where org_id = ${orgId} and name = 'quota-over.pdf'`;
    const retried = await fetch(`${stack.apiUrl}/functions/v1/knowledge/documents/${id}/retry`, {
      method: 'POST',
      headers: bearer(key),
    });
    expect(retried.status).toBe(402);
    expect((await retried.json()).error.code).toBe('quota_exceeded');
    const [document] = await sql<{ status: string }[]>`select status from public.documents where id = ${id}`;
    expect(document.status).toBe('failed');
  });
});
