/**
 * Ingestion through the `openai` SDK inside the Deno function, against a local
 * server that speaks OpenAI's embeddings wire format (tests/support/openai-stub.ts):
 * what is sent, usage metering per call, a 429 with Retry-After, a provider
 * outage that leaves the run to be resumed, and retrieval with the same model.
 * (Batching past 2,048 inputs / 300,000 tokens is covered against the same stub
 * in tests/unit/embeddings.test.ts; a document with 2,049 chunks is too slow here.)
 */
import { randomUUID } from 'node:crypto';
import type { SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { createOpenAiProvider, OPENAI_EMBEDDING_MODEL, toPgVector } from '../../functions/_shared/embeddings/index.ts';
import { signUserToken } from '../../scripts/local/keys.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { type OpenAiStub, startOpenAiStub } from '../support/openai-stub.ts';
import { registerFile } from '../support/knowledge.ts';
import { pageMarker, textPdf } from '../support/pdfs.ts';
import { supabaseClient } from '../support/supabase-client.ts';
import { freePort } from '../../scripts/local/free-port.ts';

const API_KEY = 'sk-stub-key';
const STEP_PAGES = 5;

let stub: OpenAiStub;
let stack: Stack;
let sql: Sql;
let orgId: string;
let memberId: string;
let member: SupabaseClient;

beforeAll(async () => {
  stub = await startOpenAiStub({ apiKey: API_KEY });
  stack = await startStack({
    dbPort: 0,
    // Known in advance: the function reaches Storage through SUPABASE_URL (see ingest.test.ts).
    apiPort: await freePort(),
    scheduler: false,
    functionEnv: {
      OPENAI_API_KEY: API_KEY,
      OPENAI_BASE_URL: stub.baseURL,
      OPENAI_MAX_RETRIES: '2',
      INGEST_STEP_PAGES: String(STEP_PAGES),
      INGEST_STEP_MS: '60000',
    },
  });
  sql = createSql(stack.dbUrl, { max: 2 });
  orgId = randomUUID();
  memberId = randomUUID();
  await sql.begin(async (tx) => {
    await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
             values (${memberId}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                     'member@openai-ingest.test', '{}', '{}')`;
    await tx`insert into public.organizations (id, name, slug) values (${orgId}, 'OpenAI path', ${`oai-${orgId.slice(0, 8)}`})`;
    await tx`insert into public.memberships (org_id, user_id, role) values (${orgId}, ${memberId}, 'member')`;
  });
  member = supabaseClient(stack.apiUrl!, stack.keys.anonKey, await signUserToken({ id: memberId }, { expiresInSeconds: 1800 }));
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

beforeEach(() => stub.reset());

/** Registered through create_upload_batch and uploaded by the member. */
async function upload(name: string, pages: string[]): Promise<string> {
  const bytes = await textPdf(pages);
  const { id, storage_path: path } = await registerFile(sql, memberId, orgId, {
    name,
    mime_type: 'application/pdf',
    size_bytes: bytes.byteLength,
  });
  const { error } = await member.storage.from('knowledge').upload(path, new Blob([bytes], { type: 'application/pdf' }));
  expect(error).toBeNull();
  return id;
}

async function step(id: string): Promise<{ status: number; body: Record<string, unknown> & { error?: { code: string } } }> {
  const response = await fetch(`${stack.apiUrl}/functions/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.keys.serviceRoleKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ document_id: id }),
  });
  return { status: response.status, body: await response.json() };
}

async function ingest(id: string): Promise<number[]> {
  const statuses: number[] = [];
  for (let count = 0; count < 20; count++) {
    const { status } = await step(id);
    statuses.push(status);
    if (status !== 202) return statuses;
  }
  throw new Error('not done');
}

const pageText = (page: number) =>
  `${pageMarker(page)} ${Array.from({ length: 20 }, (_, index) => `item ${page}-${index} costs ${index + 3} euros`).join(', ')}.`;

describe('ingest through the openai SDK', () => {
  it('sends text-embedding-3-small at 1536 dimensions with the key, and meters each call with the API’s token count', async () => {
    const id = await upload('prices.pdf', Array.from({ length: 12 }, (_, index) => pageText(index + 1)));
    expect(await ingest(id)).toEqual([202, 202, 200]);
    expect(stub.requests).toHaveLength(3);
    for (const request of stub.requests) {
      expect(request).toMatchObject({
        authorization: `Bearer ${API_KEY}`,
        model: OPENAI_EMBEDDING_MODEL,
        dimensions: 1536,
        encodingFormat: 'base64',
        status: 200,
      });
    }
    const [document] = await sql<{ status: string; chunk_count: number }[]>`
      select status, chunk_count from public.documents where id = ${id}`;
    expect(document.status).toBe('ready');
    expect(document.chunk_count).toBe(stub.requests.reduce((sum, request) => sum + request.inputs.length, 0));

    const usage = await sql<{ model: string; tokens_in: number }[]>`
      select model, tokens_in from public.usage_events where document_id = ${id} order by id`;
    expect(usage.map((row) => row.model)).toEqual(Array(3).fill(OPENAI_EMBEDDING_MODEL));
    // The stub bills the cl100k count of what it received; the rows carry what the API reported.
    const { countTokens } = await import('../../functions/_shared/text/tokens.ts');
    expect(usage.map((row) => row.tokens_in)).toEqual(
      stub.requests.map((request) => request.inputs.reduce((sum, input) => sum + countTokens(input), 0)),
    );
  });

  it('waits out a 429 with Retry-After and then succeeds', async () => {
    const id = await upload('rate-limited.pdf', [pageText(1), pageText(2)]);
    stub.failNext({ status: 429, headers: { 'retry-after': '1' }, message: 'Rate limit reached for requests' });
    expect(await ingest(id)).toEqual([200]);
    expect(stub.requests.map((request) => request.status)).toEqual([429, 200]);
    expect(stub.requests[1].at - stub.requests[0].at).toBeGreaterThanOrEqual(950);
    expect(stub.requests[1].inputs).toEqual(stub.requests[0].inputs);
  });

  it('answers 503 and keeps the run when the provider stays down, then resumes where it stopped', async () => {
    const id = await upload('outage.pdf', Array.from({ length: 8 }, (_, index) => pageText(index + 1)));
    expect((await step(id)).status).toBe(202);
    // The SDK tries 1 + OPENAI_MAX_RETRIES (2) times.
    stub.failNext({ status: 500 }, { status: 502 }, { status: 503 });
    const down = await step(id);
    expect(down.status).toBe(503);
    expect(down.body.error?.code).toBe('ingest_unavailable');
    const [during] = await sql<{ status: string; ingest_cursor: number }[]>`
      select status, ingest_cursor from public.documents where id = ${id}`;
    expect(during).toEqual({ status: 'processing', ingest_cursor: STEP_PAGES });

    expect(await ingest(id)).toEqual([200]);
    const pages = await sql<{ page_start: number; page_end: number; content: string }[]>`
      select page_start, page_end, content from public.document_chunks where document_id = ${id} order by chunk_index`;
    for (let page = 1; page <= 8; page++) expect(pages.some((chunk) => chunk.content.includes(pageMarker(page)))).toBe(true);
  });

  it('retrieves with a query embedded by the same model', async () => {
    const id = await upload('faq.pdf', [
      Array(8).fill('Parking. Visitors park for free in the garage under the building.').join(' '),
      Array(8).fill('Pets. Dogs are welcome on the terrace but not inside the restaurant.').join(' '),
    ]);
    await ingest(id);
    const question = 'Can I bring my dog inside the restaurant?';
    const provider = createOpenAiProvider({ apiKey: API_KEY, baseURL: stub.baseURL });
    const [vector] = (await provider.embed([question])).vectors;
    const results = await withUserScope(
      sql,
      { role: 'authenticated', sub: memberId, aud: 'authenticated', exp: Math.floor(Date.now() / 1000) + 600 },
      (tx) =>
        tx<{ document_id: string; page_end: number; content: string }[]>`
          select document_id, page_end, content
          from public.match_document_chunks(${orgId}::uuid, ${toPgVector(vector)}::extensions.vector, ${question}, 3)`,
    );
    expect(results[0]).toMatchObject({ document_id: id, page_end: 2 });
    expect(results[0].content).toContain('Dogs are welcome');
  });
});
