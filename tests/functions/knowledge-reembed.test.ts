/**
 * Documents know which embedding model made their vectors, over HTTP (gateway, real Deno, offline provider):
 * a document ingested says offline-lexical-v2; one recorded as another model's is listed `stale`, and
 * POST /knowledge/reembed queues it (and those of unknown model) through retry_document until it is ready again
 * with the current model; idempotent while queued; a viewer, a read-only key and bad bodies are refused. A run
 * whose provider changes between steps starts over from page 1 (runIngestStep driven here with two providers).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { createOfflineProvider, type EmbeddingProvider, OFFLINE_EMBEDDING_MODEL } from '../../functions/_shared/embeddings/index.ts';
import { runIngestStep } from '../../functions/ingest/step.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { type ChatOrg, createApiKey, createChatOrg } from '../support/chat-fixtures.ts';
import { keyApi } from '../support/key-api.ts';
import { ingestUntilDone } from '../support/knowledge.ts';
import { pageMarker, textPdf } from '../support/pdfs.ts';

const OTHER_MODEL = 'text-embedding-3-small';

let stack: Stack;
let sql: Sql;
let org: ChatOrg;
let keys: { writer: string; reader: string };

const knowledge = keyApi(() => `${stack.apiUrl}/functions/v1/knowledge`);
const ingest = (id: string) => ingestUntilDone({ apiUrl: stack.apiUrl!, serviceRoleKey: stack.keys.serviceRoleKey }, id);

type ApiDocument = { id: string; status: string; embedding_model: string | null; stale: boolean };

/** Pushes a file through the documents API as the writer key; its id. */
async function push(name: string, bytes: Uint8Array<ArrayBuffer>, type: string): Promise<string> {
  const response = await knowledge(`/documents?name=${encodeURIComponent(name)}`, {
    method: 'POST',
    key: keys.writer,
    headers: { 'content-type': type },
    body: new Blob([bytes]),
  });
  expect(response.status).toBe(202);
  return ((await response.json()) as { id: string }).id;
}

const pushText = (name: string, text: string) => push(name, new TextEncoder().encode(text) as Uint8Array<ArrayBuffer>, 'text/plain');

function reembed(body: unknown, auth: string = keys.writer): Promise<Response> {
  return knowledge('/reembed', {
    method: 'POST',
    key: auth,
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function listed(id: string): Promise<ApiDocument | undefined> {
  const response = await knowledge('/documents?limit=100', { key: keys.reader });
  expect(response.status).toBe(200);
  return ((await response.json()) as { data: ApiDocument[] }).data.find((document) => document.id === id);
}

async function documentRow(id: string) {
  const [row] = await sql<{ status: string; embedding_model: string | null; ingest_model: string | null; chunk_count: number }[]>`
    select status, embedding_model, ingest_model, chunk_count from public.documents where id = ${id}`;
  return row;
}

beforeAll(async () => {
  stack = await startStack({ dbPort: 0, apiPort: await freePort(), scheduler: false });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'knowledge-reembed');
  keys = {
    writer: (await createApiKey(sql, org, ['knowledge.read', 'knowledge.write'])).key,
    reader: (await createApiKey(sql, org, ['knowledge.read'])).key,
  };
  await sql`update public.api_keys set rate_limit_per_minute = 1000 where org_id = ${org.id}`;
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe('POST /knowledge/reembed', () => {
  it('records the model, lists another model\'s document stale, re-embeds it and those of unknown model, once', async () => {
    const switched = await pushText('reembed-switched.txt', 'Opening hours. The Lisbon shop opens at nine every weekday.');
    const legacy = await pushText('reembed-legacy.txt', 'Delivery. Parcels leave the Porto warehouse within two days.');
    for (const id of [switched, legacy]) expect(await ingest(id)).toMatchObject({ status: 'ready' });
    expect(await documentRow(switched)).toMatchObject({ status: 'ready', embedding_model: OFFLINE_EMBEDDING_MODEL, ingest_model: null });
    expect(await listed(switched)).toMatchObject({ embedding_model: OFFLINE_EMBEDDING_MODEL, stale: false });

    // As if one had been ingested with OpenAI and the other before models were recorded.
    await sql`update public.documents set embedding_model = ${OTHER_MODEL} where id = ${switched}`;
    await sql`update public.documents set embedding_model = null where id = ${legacy}`;
    expect(await listed(switched)).toMatchObject({ embedding_model: OTHER_MODEL, stale: true });
    expect(await listed(legacy)).toMatchObject({ embedding_model: null, stale: false });

    const first = await reembed({ org_id: org.id, limit: 1 });
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({ queued: 1, remaining: 1 });
    const second = await reembed({ org_id: org.id });
    expect(await second.json()).toEqual({ queued: 1, remaining: 0 });
    expect((await documentRow(switched)).status).toBe('queued');
    expect((await documentRow(legacy)).status).toBe('queued');
    // Queued (and then processing) is not ready: nothing is queued twice.
    expect(await (await reembed({ org_id: org.id })).json()).toEqual({ queued: 0, remaining: 0 });

    for (const id of [switched, legacy]) {
      expect(await ingest(id)).toMatchObject({ status: 'ready' });
      expect(await documentRow(id)).toMatchObject({ status: 'ready', embedding_model: OFFLINE_EMBEDDING_MODEL });
      expect((await documentRow(id)).chunk_count).toBeGreaterThan(0);
    }
    expect(await listed(switched)).toMatchObject({ embedding_model: OFFLINE_EMBEDDING_MODEL, stale: false });
    expect(await (await reembed({ org_id: org.id })).json()).toEqual({ queued: 0, remaining: 0 });
  });

  it('refuses a viewer, a read-only key and another org, changing nothing', async () => {
    const id = await pushText('reembed-refused.txt', 'Warranty. Every kettle carries a two year warranty.');
    expect(await ingest(id)).toMatchObject({ status: 'ready' });
    await sql`update public.documents set embedding_model = ${OTHER_MODEL} where id = ${id}`;

    const viewer = await reembed({ org_id: org.id }, org.tokens.viewer);
    expect(viewer.status).toBe(403);
    expect((await viewer.json()).error).toMatchObject({ code: 'forbidden' });
    const reader = await reembed({ org_id: org.id }, keys.reader);
    expect(reader.status).toBe(403);
    const elsewhere = await reembed({ org_id: crypto.randomUUID() });
    expect(elsewhere.status).toBe(403);
    expect(await documentRow(id)).toMatchObject({ status: 'ready', embedding_model: OTHER_MODEL });

    // A member with knowledge.write may.
    const member = await reembed({ org_id: org.id }, org.tokens.member);
    expect(member.status).toBe(202);
    expect(await member.json()).toEqual({ queued: 1, remaining: 0 });
    expect(await ingest(id)).toMatchObject({ status: 'ready' });
  });

  it('refuses bad bodies with a JSON 4xx, changing nothing', async () => {
    const id = await pushText('reembed-bad-body.txt', 'Returns. Unused items may be returned within 30 days.');
    expect(await ingest(id)).toMatchObject({ status: 'ready' });
    await sql`update public.documents set embedding_model = ${OTHER_MODEL} where id = ${id}`;
    const cases: Array<[unknown, number]> = [
      ['{not json', 400],
      [{}, 422],
      [{ org_id: 'nope' }, 422],
      [{ org_id: org.id, limit: 0 }, 422],
      [{ org_id: org.id, limit: 101 }, 422],
      [{ org_id: org.id, limit: 1.5 }, 422],
      [{ org_id: org.id, extra: true }, 422],
    ];
    for (const [body, status] of cases) {
      const response = await reembed(body);
      expect(response.status, JSON.stringify(body)).toBe(status);
      expect((await response.json()).error, JSON.stringify(body)).toMatchObject({ code: expect.any(String), message: expect.any(String) });
    }
    expect((await knowledge('/reembed', { key: keys.writer })).status).toBe(405);
    expect(await documentRow(id)).toMatchObject({ status: 'ready', embedding_model: OTHER_MODEL });
    await sql`update public.documents set embedding_model = ${OFFLINE_EMBEDDING_MODEL} where id = ${id}`;
  });

  it('leaves a document whose last run failed for a manual retry, so a recurring failure is not billed again', async () => {
    const id = await pushText('reembed-failing.txt', 'Repairs. Kettles sent for repair come back within a week.');
    expect(await ingest(id)).toMatchObject({ status: 'ready' });
    // As fail_ingest leaves a ready document whose re-embedding failed: the old chunks and model kept, the reason noted.
    await sql`update public.documents set embedding_model = ${OTHER_MODEL}, last_failure_reason = 'The file is gone.'
              where id = ${id}`;
    expect(await (await reembed({ org_id: org.id })).json()).toEqual({ queued: 0, remaining: 0 });
    expect(await documentRow(id)).toMatchObject({ status: 'ready', embedding_model: OTHER_MODEL });
    await sql`update public.documents set embedding_model = ${OFFLINE_EMBEDDING_MODEL}, last_failure_reason = null where id = ${id}`;
  });
});

describe('a provider switch between steps', () => {
  it('restarts the run from page 1, its staged chunks discarded, and publishes one model\'s chunks', async () => {
    const bytes = await textPdf([1, 2, 3].map((page) => `${pageMarker(page)} Page ${page} of the switched catalogue.`));
    const id = await push('reembed-switch.pdf', bytes, 'application/pdf');
    const offline = createOfflineProvider();
    const other: EmbeddingProvider = { model: 'other-model', dimensions: offline.dimensions, embed: (texts, options) => offline.embed(texts, options) };
    const deps = (provider: EmbeddingProvider) => ({
      sql,
      provider,
      // A copy each step: the PDF reader takes the buffer it is given.
      store: { download: () => Promise.resolve(bytes.slice()) },
      budget: { pages: 1, tokens: 1_000_000, ms: 60_000 },
    });
    const run = async () => (await sql<{ ingest_run: string }[]>`select ingest_run from public.documents where id = ${id}`)[0].ingest_run;
    const staged = async () =>
      (await sql<{ run_id: string; chunk_index: number }[]>`
        select run_id, chunk_index from private.document_chunk_staging where document_id = ${id} order by chunk_index`);

    expect(await runIngestStep(deps(offline), id)).toMatchObject({ status: 'processing', pagesDone: 1 });
    expect(await runIngestStep(deps(offline), id)).toMatchObject({ status: 'processing', pagesDone: 2 });
    const firstRun = await run();
    expect(await documentRow(id)).toMatchObject({ ingest_model: OFFLINE_EMBEDDING_MODEL });

    // The redeploy changed the provider: the step starts a new run at page 1.
    expect(await runIngestStep(deps(other), id)).toMatchObject({ status: 'processing', pagesDone: 1 });
    const secondRun = await run();
    expect(secondRun).not.toBe(firstRun);
    expect(await documentRow(id)).toMatchObject({ ingest_model: 'other-model' });
    const afterRestart = await staged();
    expect(afterRestart.length).toBeGreaterThan(0);
    expect(afterRestart.every((row) => row.run_id === secondRun && row.chunk_index < afterRestart.length)).toBe(true);

    // The old provider again (a step of the previous deployment still delivered) restarts it once more: never mixed.
    expect(await runIngestStep(deps(offline), id)).toMatchObject({ status: 'processing', pagesDone: 1 });
    expect(await documentRow(id)).toMatchObject({ ingest_model: OFFLINE_EMBEDDING_MODEL });
    expect(await runIngestStep(deps(offline), id)).toMatchObject({ status: 'processing', pagesDone: 2 });
    expect(await runIngestStep(deps(offline), id)).toMatchObject({ status: 'ready' });
    expect(await documentRow(id)).toMatchObject({ status: 'ready', embedding_model: OFFLINE_EMBEDDING_MODEL, ingest_model: null });
    const pages = await sql<{ page_start: number }[]>`
      select page_start from public.document_chunks where org_id = ${org.id} and document_id = ${id} order by chunk_index`;
    expect(pages.map((row) => row.page_start)).toEqual([...pages.map((row) => row.page_start)].sort((a, b) => a - b));
    expect(pages[0].page_start).toBe(1);
  });
});
