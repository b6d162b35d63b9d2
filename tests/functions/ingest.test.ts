/**
 * The ingest function over HTTP (gateway + real Deno) with the offline
 * embeddings provider, on its own embedded stack (which mounts the Storage
 * API): files uploaded through supabase-js as an org member, steps driven by
 * calling the function as pg_net would (this stack has no scheduler, so
 * nothing else calls it), end states, resumability, re-ingestion, retrieval,
 * broadcasts and usage checked in the database.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { SupabaseClient } from '@supabase/supabase-js';
import { strToU8, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JwtClaims } from '../../functions/_shared/auth.ts';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import {
  createOfflineProvider,
  type EmbeddingProvider,
  EmbeddingProviderError,
  OFFLINE_EMBEDDING_MODEL,
  toPgDirection,
  toPgVector,
} from '../../functions/_shared/embeddings/index.ts';
import { DOCX_MIME_TYPE, MAX_FILE_BYTES, NO_TEXT_MESSAGE } from '../../functions/_shared/text/extract.ts';
import { createIngestHandler } from '../../functions/ingest/handler.ts';
import { supabaseFileStore } from '../../functions/ingest/store.ts';
import { signUserToken } from '../../scripts/local/keys.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { registerFile } from '../support/knowledge.ts';
import { encryptedPdf, corruptPdf, imageOnlyPdf, pageMarker, textPdf } from '../support/pdfs.ts';
import { supabaseClient } from '../support/supabase-client.ts';
import { freePort } from '../../scripts/local/free-port.ts';

const STEP_PAGES = 10;
const PDF = 'application/pdf';

let stack: Stack;
let sql: Sql;

interface Org {
  id: string;
  users: Record<'owner' | 'member' | 'viewer', string>;
  clients: Record<'owner' | 'member' | 'viewer', SupabaseClient>;
}
const orgs: Org[] = [];

/**
 * A port that was free a moment ago. startStack with apiPort 0 tells the functions SUPABASE_URL
 * http://127.0.0.1:0 (the configured port, not the one it got), and the function reaches Storage
 * through SUPABASE_URL, so the API port must be known before the stack starts.
 */
beforeAll(async () => {
  stack = await startStack({
    dbPort: 0,
    apiPort: await freePort(),
    scheduler: false,
    functionEnv: { INGEST_STEP_PAGES: String(STEP_PAGES), INGEST_STEP_MS: '60000' },
  });
  sql = createSql(stack.dbUrl, { max: 2 });
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

const claimsOf = (userId: string): JwtClaims => ({
  role: 'authenticated',
  sub: userId,
  aud: 'authenticated',
  exp: Math.floor(Date.now() / 1000) + 600,
});

async function createOrg(): Promise<Org> {
  const id = randomUUID();
  const users = { owner: randomUUID(), member: randomUUID(), viewer: randomUUID() };
  await sql.begin(async (tx) => {
    for (const [role, userId] of Object.entries(users)) {
      await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
               values (${userId}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                       ${`${role}-${userId.slice(0, 8)}@ingest.test`}, '{}', '{}')`;
    }
    await tx`insert into public.organizations (id, name, slug) values (${id}, 'Ingest', ${`ingest-${id.slice(0, 8)}`})`;
    for (const [role, userId] of Object.entries(users)) {
      await tx`insert into public.memberships (org_id, user_id, role) values (${id}, ${userId}, ${role}::public.org_role)`;
    }
  });
  const clients = {} as Org['clients'];
  for (const [role, userId] of Object.entries(users) as Array<[keyof Org['users'], string]>) {
    const token = await signUserToken({ id: userId, email: `${role}@ingest.test` }, { expiresInSeconds: 1800 });
    clients[role] = supabaseClient(stack.apiUrl!, stack.keys.anonKey, token);
  }
  const org = { id, users, clients };
  orgs.push(org);
  return org;
}

/** Registers a file as the member, with the SHA-256 it declares, if any. */
function register(
  org: Org,
  name: string,
  mimeType: string,
  sizeBytes: number,
  checksum?: string,
): Promise<{ id: string; storage_path: string }> {
  return registerFile(sql, org.users.member, org.id, {
    name,
    mime_type: mimeType,
    size_bytes: sizeBytes,
    ...(checksum ? { checksum_sha256: checksum } : {}),
  });
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Registers a file and uploads it as the member with supabase-js; the upload queues it. */
async function upload(
  org: Org,
  name: string,
  bytes: Uint8Array<ArrayBuffer>,
  mimeType = PDF,
  checksum?: string,
): Promise<string> {
  const document = await register(org, name, mimeType, bytes.byteLength, checksum);
  const { error } = await org.clients.member.storage.from('knowledge').upload(
    document.storage_path,
    new Blob([bytes], { type: mimeType }),
  );
  expect(error).toBeNull();
  return document.id;
}

interface StepAnswer {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}

async function step(documentId: unknown, token = stack.keys.serviceRoleKey): Promise<StepAnswer> {
  const response = await fetch(`${stack.apiUrl}/functions/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ document_id: documentId }),
  });
  return { status: response.status, body: await response.json() };
}

/** Calls the function until the document is no longer in progress, as the chain of pg_net requests would. */
async function ingest(documentId: string, maxSteps = 80): Promise<StepAnswer[]> {
  const answers: StepAnswer[] = [];
  for (let count = 0; count < maxSteps; count++) {
    const answer = await step(documentId);
    answers.push(answer);
    if (answer.status !== 202) return answers;
  }
  throw new Error(`not done after ${maxSteps} steps`);
}

interface DocumentRow {
  status: string;
  progress: number;
  failure_reason: string | null;
  page_count: number | null;
  chunk_count: number;
  ingest_cursor: number;
  ingest_run: string | null;
}

async function documentRow(id: string): Promise<DocumentRow> {
  const [row] = await sql<DocumentRow[]>`
    select status, progress, failure_reason, page_count, chunk_count, ingest_cursor, ingest_run
    from public.documents where id = ${id}`;
  return row;
}

interface ChunkRow {
  id: string;
  chunk_index: number;
  page_start: number;
  page_end: number;
  content: string;
  token_count: number;
}

async function chunks(id: string): Promise<ChunkRow[]> {
  return await sql<ChunkRow[]>`
    select id::text, chunk_index, page_start, page_end, content, token_count
    from public.document_chunks where document_id = ${id} order by chunk_index`;
}

async function stagedCount(id: string): Promise<number> {
  const [{ count }] = await sql<{ count: number }[]>`
    select count(*)::int as count from private.document_chunk_staging where document_id = ${id}`;
  return count;
}

/** A minimal .docx: word/document.xml around the given body. */
function wordFile(body: string): Uint8Array<ArrayBuffer> {
  const xml = `<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>${body}</w:body></w:document>`;
  return new Uint8Array(zipSync({ 'word/document.xml': strToU8(xml) }));
}

/** One paragraph of one run; `content` may start with a run element such as a break. */
function wordParagraph(content: string): string {
  const [, element, text] = /^(<w:br[^>]*\/>)?(.*)$/s.exec(content)!;
  return `<w:p><w:r>${element ?? ''}<w:t>${text}</w:t></w:r></w:p>`;
}

/** Text for page n: its marker sentence, then filler long enough that chunks span several per page. */
function pageText(page: number): string {
  const filler = Array.from({ length: 30 }, (_, index) => `clause ${page}.${index} covers ordinary terms`).join('; ');
  return `${pageMarker(page)} ${filler}.`;
}

/** Every page's marker is in a chunk whose page range covers that page; indexes run 0..n-1 without gaps. */
function expectCoverage(rows: ChunkRow[], pageCount: number): void {
  expect(rows.map((row) => row.chunk_index)).toEqual(rows.map((_, index) => index));
  for (let page = 1; page <= pageCount; page++) {
    const holding = rows.filter((row) => row.content.includes(pageMarker(page)));
    expect(holding.length, `page ${page}`).toBeGreaterThan(0);
    for (const row of holding) {
      expect(row.page_start).toBeLessThanOrEqual(page);
      expect(row.page_end).toBeGreaterThanOrEqual(page);
    }
  }
  expect(new Set(rows.map((row) => row.content)).size).toBe(rows.length);
}

describe('who may call the ingest function', () => {
  it('accepts only the service role, POST, and a document id', async () => {
    const noToken = await fetch(`${stack.apiUrl}/functions/v1/ingest`, { method: 'POST', body: '{}' });
    expect(noToken.status).toBe(401);
    expect((await noToken.json()).error.code).toBe('missing_authorization');

    const user = await signUserToken({ id: randomUUID(), email: 'x@ingest.test' });
    for (const token of [user, stack.keys.anonKey]) {
      const answer = await step(randomUUID(), token);
      expect(answer.status).toBe(403);
      expect(answer.body.error?.code).toBe('service_role_required');
    }
    const get = await fetch(`${stack.apiUrl}/functions/v1/ingest`, {
      headers: { authorization: `Bearer ${stack.keys.serviceRoleKey}` },
    });
    expect(get.status).toBe(405);
    expect((await step('not-a-uuid')).status).toBe(422);
    const unknown = await step(randomUUID());
    expect(unknown.status).toBe(404);
    expect(unknown.body.error?.code).toBe('not_found');
  });
});

describe('ingesting files to their end state', () => {
  let org: Org;
  beforeAll(async () => {
    org = await createOrg();
  });

  it('makes a multi-page PDF ready: chunks with page numbers, progress 100, event, broadcasts, usage', async () => {
    const pages = [1, 2, 3, 4, 5].map(pageText);
    const id = await upload(org, 'handbook.pdf', await textPdf(pages));
    expect((await documentRow(id)).status).toBe('queued');

    const answers = await ingest(id);
    expect(answers.map((answer) => answer.status)).toEqual([200]);
    expect(answers[0].body).toMatchObject({ document_id: id, status: 'ready', page_count: 5 });

    const row = await documentRow(id);
    const stored = await chunks(id);
    expect(row).toMatchObject({ status: 'ready', progress: 100, page_count: 5, failure_reason: null, ingest_run: null });
    expect(row.chunk_count).toBe(stored.length);
    expect(answers[0].body.chunks).toBe(stored.length);
    expect(stored.length).toBeGreaterThan(2);
    expectCoverage(stored, 5);
    for (const chunk of stored) expect(chunk.token_count).toBeLessThanOrEqual(440);
    expect(await stagedCount(id)).toBe(0);

    const [event] = await sql<{ payload: Record<string, unknown> }[]>`
      select payload from public.events where org_id = ${org.id} and type = 'document.ready'
        and payload ->> 'document_id' = ${id}`;
    expect(event.payload).toMatchObject({ name: 'handbook.pdf', pages: 5, chunks: stored.length });

    // Live progress: the documents trigger wrote each status change to the org's uploads topic.
    const broadcasts = await sql<{ status: string; progress: number }[]>`
      select payload -> 'record' ->> 'status' as status, (payload -> 'record' ->> 'progress')::int as progress
      from realtime.messages
      where topic = ${`org:${org.id}:uploads`} and payload -> 'record' ->> 'id' = ${id}`;
    expect(broadcasts.map((message) => message.status)).toEqual(
      expect.arrayContaining(['uploading', 'queued', 'processing', 'ready']),
    );
    expect(broadcasts).toContainEqual({ status: 'ready', progress: 100 });

    const usage = await sql<{ kind: string; model: string; tokens_in: number; tokens_out: number }[]>`
      select kind, model, tokens_in, tokens_out from public.usage_events where document_id = ${id}`;
    expect(usage).toHaveLength(1);
    expect(usage[0]).toMatchObject({ kind: 'embedding', model: OFFLINE_EMBEDDING_MODEL, tokens_out: 0 });
    expect(usage[0].tokens_in).toBe(stored.reduce((sum, chunk) => sum + chunk.token_count, 0));
  });

  it('fails a scanned (image-only) PDF with the OCR hint and keeps no chunks', async () => {
    const id = await upload(org, 'scan.pdf', await imageOnlyPdf(3));
    const [answer] = await ingest(id);
    expect(answer).toEqual({ status: 200, body: { document_id: id, status: 'failed', reason: NO_TEXT_MESSAGE } });
    expect(await documentRow(id)).toMatchObject({ status: 'failed', failure_reason: NO_TEXT_MESSAGE, chunk_count: 0 });
    expect(await chunks(id)).toEqual([]);
    expect(await stagedCount(id)).toBe(0);
    const [{ count }] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.events where type = 'document.failed' and payload ->> 'document_id' = ${id}`;
    expect(count).toBe(1);
  });

  it('fails a corrupt file and an encrypted PDF with their reasons', async () => {
    const corrupt = await upload(org, 'broken.pdf', corruptPdf());
    expect((await ingest(corrupt))[0].body).toMatchObject({ status: 'failed', reason: 'The file is not a valid PDF.' });
    const locked = await upload(org, 'locked.pdf', encryptedPdf('Confidential price list'));
    expect((await ingest(locked))[0].body).toMatchObject({ status: 'failed', reason: 'The PDF is password-protected.' });
    for (const id of [corrupt, locked]) {
      expect((await documentRow(id)).status).toBe('failed');
      expect(await chunks(id)).toEqual([]);
    }
  });

  it('ingests a Word file holding a surrogate character reference, which Postgres would refuse as text', async () => {
    const id = await upload(org, 'surrogate.docx', wordFile(wordParagraph('Price list &#xD800; tea three euros')), DOCX_MIME_TYPE);
    const answers = await ingest(id);
    expect(answers.at(-1)).toMatchObject({ status: 200, body: { status: 'ready', chunks: 1 } });
    const [row] = await chunks(id);
    expect(row.content).toBe('Price list &#xD800; tea three euros');
  });

  it('cuts a Word "page" longer than any printed page into pseudo-pages ingested over several steps', async () => {
    const text = Array.from({ length: 40_000 }, (_, index) => `word${index % 1000}`).join(' ');
    const id = await upload(
      org,
      'one-long-page.docx',
      wordFile(wordParagraph(text) + wordParagraph('<w:br w:type="page"/>The end.')),
      DOCX_MIME_TYPE,
    );
    const answers = await ingest(id);
    const row = await documentRow(id);
    expect(row).toMatchObject({ status: 'ready', progress: 100 });
    expect(row.page_count).toBeGreaterThan(100);
    // At most STEP_PAGES pseudo-pages of about 3,000 characters per step, not one step for the whole text.
    expect(answers.length).toBe(Math.ceil(row.page_count! / STEP_PAGES));
    const stored = await chunks(id);
    expect(Math.max(...stored.map((chunk) => chunk.token_count))).toBeLessThanOrEqual(420);
    expect(stored.at(-1)!.content).toMatch(/The end\.$/);
  });

  it('fails a small Word file whose one page break hides millions of characters, with the page-limit reason', async () => {
    const text = Array.from({ length: 2_000_000 }, (_, index) => `word${index % 1000}`).join(' ');
    const bytes = wordFile(wordParagraph(text) + wordParagraph('<w:br w:type="page"/>The end.'));
    expect(bytes.byteLength).toBeLessThan(200_000);
    const id = await upload(org, 'hidden-text.docx', bytes, DOCX_MIME_TYPE);
    const [answer] = await ingest(id);
    expect(answer.body).toMatchObject({ status: 'failed' });
    expect(answer.body.reason).toMatch(/^The file's text fills \d+ pages of about 3,000 characters; at most 500 pages can be indexed\.$/);
    expect(await documentRow(id)).toMatchObject({ status: 'failed', chunk_count: 0 });
    expect(await chunks(id)).toEqual([]);
  });

  it('refuses a file over 25 MB early: at registration, at upload, and before download in the function', async () => {
    // Registration checks the declared size.
    const refused = await withUserScope(sql, claimsOf(org.users.member), (tx) =>
      tx`select public.create_upload_batch(${org.id}::uuid,
        ${tx.json([{ name: 'huge.pdf', mime_type: PDF, size_bytes: MAX_FILE_BYTES + 1 }])})`
    ).catch((error: { code?: string; message: string }) => error);
    expect(refused).toMatchObject({ code: '22023', message: 'huge.pdf: a file has 1 byte to 25 MB' });

    // The bucket refuses the bytes (413), so the document never leaves 'uploading'.
    const document = await register(org, 'liar.pdf', PDF, 1000);
    const tooBig = await org.clients.member.storage.from('knowledge').upload(
      document.storage_path,
      new Blob([new Uint8Array(MAX_FILE_BYTES + 1)], { type: PDF }),
    );
    expect(tooBig.error?.message).toMatch(/maximum allowed size/);
    expect((await documentRow(document.id)).status).toBe('uploading');

    // An object larger than the limit (say the bucket limit was raised) fails from its recorded size
    // alone: no bytes exist for it, so a download would have failed with "not found" instead.
    const big = await register(org, 'big.pdf', PDF, 1000);
    await sql.begin(async (tx) => {
      // The upload trigger would copy the size into documents.size_bytes, whose check refuses it.
      await tx`set local session_replication_role = replica`;
      await tx`insert into storage.objects (bucket_id, name, metadata)
               values ('knowledge', ${big.storage_path}, ${tx.json({ size: 30 * 1024 * 1024, mimetype: PDF })})`;
      await tx`update public.documents set status = 'queued' where id = ${big.id}`;
    });
    const [answer] = await ingest(big.id);
    expect(answer.body).toMatchObject({
      status: 'failed',
      reason: 'The file is 30.0 MB; files of up to 25 MB can be indexed.',
    });
  });

  it('checks the file against the checksum it was registered with, and records the SHA-256 of what it read', async () => {
    const registered = await textPdf([pageText(1), pageText(2)]);
    const contentHash = async (id: string) =>
      (await sql<{ content_sha256: string | null }[]>`select content_sha256 from public.documents where id = ${id}`)[0]
        .content_sha256;

    const declared = await upload(org, 'declared.pdf', registered, PDF, sha256(registered));
    expect((await ingest(declared)).at(-1)?.body).toMatchObject({ status: 'ready' });
    expect(await contentHash(declared)).toBe(sha256(registered));

    const undeclared = await upload(org, 'undeclared.pdf', registered);
    expect((await ingest(undeclared)).at(-1)?.body).toMatchObject({ status: 'ready' });
    expect(await contentHash(undeclared)).toBe(sha256(registered));

    // Other bytes than the registered ones: failed with a reason, nothing indexed; the file's hash is on record.
    const other = await textPdf([pageText(3)]);
    const swapped = await upload(org, 'swapped.pdf', other, PDF, sha256(registered));
    const reason = `The uploaded file does not match the checksum it was registered with (SHA-256 ` +
      `${sha256(registered).slice(0, 12)}…, the file's ${sha256(other).slice(0, 12)}…); upload the registered file again.`;
    expect(await ingest(swapped)).toEqual([{ status: 200, body: { document_id: swapped, status: 'failed', reason } }]);
    expect(await documentRow(swapped)).toMatchObject({ status: 'failed', failure_reason: reason, chunk_count: 0 });
    expect(await chunks(swapped)).toEqual([]);
    expect(await stagedCount(swapped)).toBe(0);
    expect(await contentHash(swapped)).toBe(sha256(other));

    // Uploading the registered file in its place queues it again, with no hash until the new run reads it.
    const [{ storage_path }] = await sql<{ storage_path: string }[]>`select storage_path from public.documents where id = ${swapped}`;
    const { error } = await org.clients.member.storage.from('knowledge').upload(
      storage_path,
      new Blob([registered], { type: PDF }),
      { upsert: true },
    );
    expect(error).toBeNull();
    expect(await documentRow(swapped)).toMatchObject({ status: 'queued', failure_reason: null });
    expect(await contentHash(swapped)).toBeNull();
    expect((await ingest(swapped)).at(-1)?.body).toMatchObject({ status: 'ready' });
    expect(await contentHash(swapped)).toBe(sha256(registered));
  });

  it('answers 200 without doing anything for a document that is not being ingested', async () => {
    const id = await upload(org, 'twice.pdf', await textPdf([pageText(1)]));
    await ingest(id);
    const again = await step(id);
    expect(again).toEqual({ status: 200, body: { document_id: id, status: 'ready', skipped: true } });
  });
});

describe('resumable ingestion of a long PDF', () => {
  const PAGES = 60;
  let org: Org;
  let id: string;
  let firstSet: ChunkRow[];

  beforeAll(async () => {
    org = await createOrg();
    id = await upload(org, 'catalogue.pdf', await textPdf(Array.from({ length: PAGES }, (_, index) => pageText(index + 1))));
  });

  /** The same handler the function runs, in this process, with injected faults. */
  const localHandler = (provider: EmbeddingProvider) =>
    createIngestHandler({
      sql: () => sql,
      env: (name) =>
        ({
          SUPABASE_URL: stack.apiUrl!,
          SUPABASE_SERVICE_ROLE_KEY: stack.keys.serviceRoleKey,
          SUPABASE_JWT_SECRET: stack.keys.jwtSecret,
        })[name],
      provider,
      // supabase-js needs a WebSocket implementation on Node 20 (see supabase-client.ts).
      store: supabaseFileStore(() => undefined, { client: supabaseClient(stack.apiUrl!, stack.keys.serviceRoleKey) }),
      budget: { pages: STEP_PAGES, tokens: 1_000_000, ms: 60_000 },
    });
  const localStep = async (provider: EmbeddingProvider, documentId = id) => {
    const response = await localHandler(provider)(
      new Request('http://local/ingest', {
        method: 'POST',
        headers: { authorization: `Bearer ${stack.keys.serviceRoleKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ document_id: documentId }),
      }),
    );
    return { status: response.status, body: await response.json() };
  };

  it('completes across several invocations, surviving a crashed step, with no chunk missing or repeated', async () => {
    const first = await step(id);
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ status: 'processing', pages_done: 10, page_count: PAGES, progress: 16 });
    expect(await documentRow(id)).toMatchObject({ status: 'processing', ingest_cursor: 10, progress: 16 });

    // A step dies part-way (the embeddings provider is down): 503, and the run stays where it was.
    const failing: EmbeddingProvider = {
      model: 'failing',
      dimensions: 1536,
      embed: () => Promise.reject(new EmbeddingProviderError('down', { status: 503 })),
    };
    const crashed = await localStep(failing);
    expect(crashed.status).toBe(503);
    expect(crashed.body.error).toMatchObject({
      code: 'ingest_unavailable',
      message: 'The embeddings provider is unavailable; the document will be resumed.',
    });
    expect(await documentRow(id)).toMatchObject({ status: 'processing', ingest_cursor: 10 });

    // Started again, it resumes at page 11 and runs to the end.
    const rest = await ingest(id);
    expect(rest.map((answer) => answer.status)).toEqual([202, 202, 202, 202, 200]);
    expect(rest.slice(0, -1).map((answer) => answer.body.progress)).toEqual([33, 49, 66, 82]);
    expect(rest[rest.length - 1].body).toMatchObject({ status: 'ready', page_count: PAGES });

    firstSet = await chunks(id);
    expectCoverage(firstSet, PAGES);
    // Chunks join across step boundaries: page 11's first chunk opens with the end of page 10.
    const opening = firstSet.find((chunk) => chunk.content.includes(pageMarker(11)) && chunk.page_start === 10);
    expect(opening).toBeDefined();
    expect((await documentRow(id)).chunk_count).toBe(firstSet.length);
  });

  it('re-ingests idempotently and atomically: readers see the old chunks until the last step swaps in the same set', async () => {
    const [retried] = await withUserScope(sql, claimsOf(org.users.member), (tx) =>
      tx<{ status: string }[]>`select status from public.retry_document(${id}::uuid)`
    );
    expect(retried.status).toBe('queued');
    const readAsViewer = () =>
      withUserScope(sql, claimsOf(org.users.viewer), (tx) =>
        tx<{ id: string }[]>`select id::text from public.document_chunks where document_id = ${id} order by chunk_index`
      );
    const oldIds = firstSet.map((chunk) => chunk.id);
    for (let count = 0; count < 5; count++) {
      expect((await step(id)).status).toBe(202);
      expect((await readAsViewer()).map((row) => row.id)).toEqual(oldIds);
    }
    expect((await step(id)).body).toMatchObject({ status: 'ready' });
    const secondSet = await chunks(id);
    expect(secondSet.map((chunk) => chunk.id)).not.toEqual(oldIds);
    const comparable = (rows: ChunkRow[]) => rows.map(({ id: _id, ...rest }) => rest);
    expect(comparable(secondSet)).toEqual(comparable(firstSet));
  });

  it('lets a step that lost a race change nothing (a re-delivered request)', async () => {
    await withUserScope(sql, claimsOf(org.users.member), (tx) => tx`select public.retry_document(${id}::uuid)`);
    // This copy of the first step waits inside the embeddings call...
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const offline = createOfflineProvider();
    const slow: EmbeddingProvider = {
      model: offline.model,
      dimensions: 1536,
      async embed(texts) {
        entered();
        await gate;
        return await offline.embed(texts);
      },
    };
    const metered = async () => {
      const [row] = await sql<{ rows: number }[]>`
        select count(*)::int as rows from public.usage_events where document_id = ${id} and kind = 'embedding'`;
      return row.rows;
    };
    const before = await metered();
    const racing = localStep(slow);
    await inside;
    // ...while another copy of the same step runs and commits.
    expect((await step(id)).body).toMatchObject({ status: 'processing', pages_done: 10 });
    release();
    expect(await racing).toEqual({ status: 200, body: { document_id: id, status: 'stale', skipped: true } });
    // The pages were metered once, with the save that won; the losing copy meters nothing.
    expect(await metered()).toBe(before + 1);
    await ingest(id);
    const comparable = (rows: ChunkRow[]) => rows.map(({ id: _id, ...rest }) => rest);
    expect(comparable(await chunks(id))).toEqual(comparable(firstSet));
  });

  it('meters a step whose document is deleted while it embeds, and answers that the step is stale', async () => {
    const doomed = await upload(org, 'deleted-midway.pdf', await textPdf([pageText(1), pageText(2)]));
    const unlinkedUsage = async () => {
      const [row] = await sql<{ rows: number; tokens: number }[]>`
        select count(*)::int as rows, coalesce(sum(tokens_in), 0)::int as tokens from public.usage_events
        where org_id = ${org.id} and kind = 'embedding' and document_id is null`;
      return row;
    };
    const before = await unlinkedUsage();
    const offline = createOfflineProvider();
    let spent = 0;
    const deleting: EmbeddingProvider = {
      model: offline.model,
      dimensions: 1536,
      async embed(texts) {
        const result = await offline.embed(texts);
        spent = result.tokens;
        await sql`delete from public.documents where id = ${doomed}`;
        return result;
      },
    };
    expect(await localStep(deleting, doomed)).toEqual({
      status: 200,
      body: { document_id: doomed, status: 'stale', skipped: true },
    });
    expect(spent).toBeGreaterThan(0);
    expect(await unlinkedUsage()).toEqual({ rows: before.rows + 1, tokens: before.tokens + spent });
  });

  it('meters what a failing embeddings call was billed before it failed', async () => {
    const document = await upload(org, 'partly-embedded.pdf', await textPdf([pageText(1), pageText(2)]));
    const failingLate: EmbeddingProvider = {
      model: 'failing-late',
      dimensions: 1536,
      embed: () => Promise.reject(new EmbeddingProviderError('down', { status: 503, tokensSpent: 321 })),
    };
    expect((await localStep(failingLate, document)).status).toBe(503);
    expect(
      await sql`select tokens_in from public.usage_events where document_id = ${document} and model = 'failing-late'`,
    ).toEqual([{ tokens_in: 321 }]);
    expect(await documentRow(document)).toMatchObject({ status: 'processing', ingest_cursor: 0 });
  });
});

describe('retrieval over ingested chunks', () => {
  it('finds the page that holds the answer, as a member, and never another org’s chunks', async () => {
    const mine = await createOrg();
    const theirs = await createOrg();
    // Each topic repeated, so each page is a chunk's worth of text on one subject.
    const pages = [
      'Shipping. Orders ship within two business days from our Lisbon warehouse.',
      'Returns. You may return any product within 30 days for a full refund; the refund reaches your card in 5 days.',
      'Warranty. Electronics carry a two year warranty covering manufacturing defects.',
      'Contact. Our support desk answers the phone on weekdays from 9 to 17.',
    ].map((topic) => Array.from({ length: 10 }, () => topic).join(' '));
    const id = await upload(mine, 'policies.pdf', await textPdf(pages));
    const other = await upload(theirs, 'their-policies.pdf', await textPdf([pages[1], pages[0]]));
    await ingest(id);
    await ingest(other);

    const question = 'How many days do I have to return a product for a refund?';
    const [vector] = (await createOfflineProvider().embed([question])).vectors;
    const search = (member: Org, orgId: string) =>
      withUserScope(sql, claimsOf(member.users.viewer), (tx) =>
        tx<{ document_id: string; page_start: number; page_end: number; content: string; score: number }[]>`
          select document_id, page_start, page_end, content, score
          from public.match_document_chunks(${orgId}::uuid, ${toPgVector(vector)}::extensions.vector, ${question}, 5)`
      );

    const results = await search(mine, mine.id);
    expect(results.length).toBeGreaterThan(0);
    expect(results[0].document_id).toBe(id);
    expect(results[0].content).toContain('30 days');
    expect(results[0].page_start).toBeLessThanOrEqual(2);
    expect(results[0].page_end).toBeGreaterThanOrEqual(2);
    expect(results.every((result) => result.document_id === id)).toBe(true);

    // Asking about the other org's id returns nothing: RLS hides its chunks.
    expect(await search(mine, theirs.id)).toEqual([]);

    // The query's direction as integers (how the chat function passes it) finds the same chunks with the same scores.
    const byDirection = await withUserScope(sql, claimsOf(mine.users.viewer), (tx) =>
      tx<{ document_id: string; page_start: number; page_end: number; content: string; score: number }[]>`
        select document_id, page_start, page_end, content, score
        from public.match_document_chunks(${mine.id}::uuid, ${toPgDirection(vector)}::integer[]::extensions.vector, ${question}, 5)`
    );
    expect(byDirection).toEqual(results);
  });
});
