/**
 * The documents API over HTTP (through the gateway, real Deno) on its own
 * embedded stack with the Storage API: a server holding an org's API key
 * lists its documents (newest first, filters, cursor pages), reads one to
 * follow its ingestion (pages and chunks when ready, the reason when failed)
 * and retries a failed one; never another org's documents; API keys only, at
 * the key's one rate limit; bad input is a 4xx that changes nothing.
 */
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { type ChatOrg, createApiKey, createChatOrg } from '../support/chat-fixtures.ts';
import { ingestUntilDone } from '../support/knowledge.ts';
import { corruptPdf, pageMarker, textPdf } from '../support/pdfs.ts';
import { allPages as allPagesOf, keyApi } from '../support/key-api.ts';

let stack: Stack;
let sql: Sql;
/** Uploads, reads and retries through the API. */
let org: ChatOrg;
/** Holds the seeded documents the list tests page through, and nothing else. */
let listOrg: ChatOrg;
let other: ChatOrg;
let keys: { writer: string; reader: string; writeOnly: string; lister: string; other: string };

type ApiDocument = Record<string, unknown> & { id: string; status: string };
interface ApiList {
  object: string;
  data: ApiDocument[];
  next_cursor: string | null;
}

interface SeededDocument {
  id: string;
  /** created_at to the microsecond, UTC. */
  createdAt: string;
  status: string;
  collection: boolean;
  project: boolean;
}
/** The list org's documents, newest first (created_at, then id). */
let seeded: SeededDocument[];
let collectionId: string;
let projectId: string;
let otherOrgDocument: string;

const api = keyApi(() => `${stack.apiUrl}/functions/v1/knowledge/documents`);

const retry = (id: string, key: string) => api(`/${id}/retry`, { method: 'POST', key });

/** Every page of a listing, following next_cursor. */
const allPages = (query: string, key = keys.lister) => allPagesOf(api, query, key);

/** Pushes a file through the API as the org's writer key; the document (202). */
async function push(name: string, bytes: Uint8Array<ArrayBuffer>, type = 'application/pdf'): Promise<ApiDocument> {
  const response = await api(`?name=${encodeURIComponent(name)}`, {
    method: 'POST',
    key: keys.writer,
    headers: { 'content-type': type },
    body: new Blob([bytes]),
  });
  expect(response.status).toBe(202);
  return (await response.json()) as ApiDocument;
}

const ingest = (id: string) => ingestUntilDone({ apiUrl: stack.apiUrl!, serviceRoleKey: stack.keys.serviceRoleKey }, id);

async function documentRow(id: string) {
  const [row] = await sql<
    { status: string; progress: number; failure_reason: string | null; ingest_attempts: number; chunk_count: number; updated_at: Date }[]
  >`select status, progress, failure_reason, ingest_attempts, chunk_count, updated_at from public.documents where id = ${id}`;
  return row;
}

/**
 * 25 documents of the list org, a minute apart with microseconds that a
 * millisecond cursor would lose; two share a creation time, to page across a
 * tie. Every fifth is failed, every third ready (else queued); the first ten
 * are in a collection, the even ones in a project.
 */
async function seedDocuments(): Promise<void> {
  [{ id: collectionId }] = await sql<{ id: string }[]>`
    insert into public.collections (org_id, name) values (${listOrg.id}, 'Synced') returning id`;
  [{ id: projectId }] = await sql<{ id: string }[]>`
    insert into public.projects (org_id, name) values (${listOrg.id}, 'Docs API') returning id`;
  const rows: SeededDocument[] = [];
  for (let i = 0; i < 25; i++) {
    const minute = i === 11 ? 10 : i;
    const createdAt = `2026-03-01T08:${String(minute).padStart(2, '0')}:00.${String(100001 + minute * 7).padStart(6, '0')}Z`;
    const status = i % 5 === 0 ? 'failed' : i % 3 === 0 ? 'ready' : 'queued';
    const id = randomUUID();
    await sql`
      insert into public.documents (id, org_id, collection_id, project_id, name, mime_type, size_bytes, storage_path, status,
                                    failure_reason, created_at)
      values (${id}, ${listOrg.id}, ${i < 10 ? collectionId : null}, ${i % 2 === 0 ? projectId : null}, ${`doc-${i}.txt`},
              'text/plain', 100, ${`${listOrg.id}/${id}/doc-${i}.txt`}, ${status}::public.document_status,
              ${status === 'failed' ? 'The file was empty.' : null}, ${createdAt}::text::timestamptz)`;
    rows.push({ id, createdAt, status, collection: i < 10, project: i % 2 === 0 });
  }
  seeded = rows.sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1));
  otherOrgDocument = randomUUID();
  await sql`
    insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, failure_reason, created_at)
    values (${otherOrgDocument}, ${other.id}, 'theirs.txt', 'text/plain', 10, ${`${other.id}/${otherOrgDocument}/theirs.txt`},
            'failed', 'The file was empty.', '2026-03-01T08:05:00Z')`;
}

beforeAll(async () => {
  stack = await startStack({ dbPort: 0, apiPort: await freePort(), scheduler: false });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'docs-api');
  listOrg = await createChatOrg(sql, 'docs-api-list');
  other = await createChatOrg(sql, 'docs-api-other');
  keys = {
    writer: (await createApiKey(sql, org, ['knowledge.read', 'knowledge.write'])).key,
    reader: (await createApiKey(sql, org, ['knowledge.read'])).key,
    writeOnly: (await createApiKey(sql, org, ['knowledge.write'])).key,
    lister: (await createApiKey(sql, listOrg, ['knowledge.read'])).key,
    other: (await createApiKey(sql, other, ['knowledge.read', 'knowledge.write'])).key,
  };
  // High enough that the tests never meet it, but for the one that sets its own.
  await sql`update public.api_keys set rate_limit_per_minute = 1000 where org_id in (${org.id}, ${listOrg.id}, ${other.id})`;
  await seedDocuments();
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe('GET /knowledge/documents', () => {
  it('lists the key\'s org\'s documents newest first; cursor pages cover them all once, across a tie', async () => {
    const first = await api('?limit=7', { key: keys.lister });
    expect(first.status).toBe(200);
    const page = (await first.json()) as ApiList;
    expect(page.data.map((document) => document.id)).toEqual(seeded.slice(0, 7).map((document) => document.id));
    expect(page.data[0]).toMatchObject({ object: 'document', status: seeded[0].status, mime_type: 'text/plain', size_bytes: 100 });
    expect(page.next_cursor).toEqual(expect.any(String));

    const paged = await allPages('limit=7');
    expect(paged.pages).toBe(4);
    expect(paged.ids).toEqual(seeded.map((document) => document.id));
    // Pages of two: one ends between the two documents created at the same microsecond.
    expect(seeded[13].createdAt).toBe(seeded[14].createdAt);
    const pairs = await allPages('limit=2');
    expect(pairs.pages).toBe(13);
    expect(pairs.ids).toEqual(seeded.map((document) => document.id));
    // 20 by default; the last page has no cursor.
    const defaults = (await (await api('', { key: keys.lister })).json()) as ApiList;
    expect(defaults.data).toHaveLength(20);
    const all = (await (await api('?limit=100', { key: keys.lister })).json()) as ApiList;
    expect(all.data).toHaveLength(25);
    expect(all.next_cursor).toBeNull();
  });

  it('filters by status (several), collection, project and creation window, paging within the filter', async () => {
    const ids = (filter: (document: SeededDocument) => boolean) => seeded.filter(filter).map((document) => document.id);
    expect((await allPages('status=failed')).ids).toEqual(ids((document) => document.status === 'failed'));
    expect((await allPages('status=failed,ready,failed&limit=2')).ids)
      .toEqual(ids((document) => ['failed', 'ready'].includes(document.status)));
    expect((await allPages('status=processing')).ids).toEqual([]);
    expect((await allPages(`collection_id=${collectionId}&limit=3`)).ids).toEqual(ids((document) => document.collection));
    expect((await allPages(`project_id=${projectId}&status=queued`)).ids)
      .toEqual(ids((document) => document.project && document.status === 'queued'));
    // Exclusive bounds, given with an offset: after 08:03 (+00:00) and before 08:12 local to +02:00 (10:12).
    const window = `created_after=${encodeURIComponent(seeded.find((d) => d.createdAt.startsWith('2026-03-01T08:03'))!.createdAt)}` +
      `&created_before=${encodeURIComponent('2026-03-01T10:12:00+02:00')}`;
    expect((await allPages(`${window}&limit=4`)).ids)
      .toEqual(ids((document) => document.createdAt > '2026-03-01T08:03:01' && document.createdAt < '2026-03-01T08:12'));
    expect((await allPages(`${window}&limit=4`)).ids).toHaveLength(8);
  });

  it('never shows another org\'s documents', async () => {
    const mine = await allPages('limit=100');
    expect(mine.ids).not.toContain(otherOrgDocument);
    const theirs = await allPages('limit=100', keys.other);
    expect(theirs.ids).toEqual([otherOrgDocument]);
    expect(theirs.ids.some((id) => seeded.some((document) => document.id === id))).toBe(false);
  });

  it('refuses bad queries with 422 and a JSON error', async () => {
    const garbage = Buffer.from('2026-03-01T08:00:00.000000Z|not-a-uuid').toString('base64url');
    const impossible = Buffer.from(`2026-02-30T08:00:00.000000Z|${randomUUID()}`).toString('base64url');
    for (const query of [
      'limit=0', 'limit=101', 'limit=abc', 'limit=1.5', 'cursor=!!!', `cursor=${garbage}`, `cursor=${impossible}`, 'foo=1',
      'org_id=' + listOrg.id, 'status=bogus', 'status=', 'collection_id=nope', 'created_after=2026-03-01T08:00:00',
      'created_after=2026-03-02T00:00:00Z&created_before=2026-03-01T00:00:00Z', 'limit=5&limit=6',
    ]) {
      const response = await api(`?${query}`, { key: keys.lister });
      expect(response.status, query).toBe(422);
      expect((await response.json()).error, query).toMatchObject({ code: 'invalid_request', message: expect.any(String) });
    }
  });
});

describe('GET /knowledge/documents/:id', () => {
  it('shows a ready document with its pages and chunks, as the upload showed it', async () => {
    const bytes = await textPdf([pageMarker(1), pageMarker(2)]);
    const uploaded = await push('Handbook docs-api.pdf', bytes);
    expect(await ingest(uploaded.id)).toMatchObject({ status: 'ready' });
    const response = await api(`/${uploaded.id}`, { key: keys.reader });
    expect(response.status).toBe(200);
    const document = (await response.json()) as ApiDocument;
    const [{ chunks }] = await sql<{ chunks: number }[]>`
      select count(*)::int as chunks from public.document_chunks where document_id = ${uploaded.id}`;
    expect(chunks).toBeGreaterThan(0);
    expect(document).toEqual({
      object: 'document',
      id: uploaded.id,
      org_id: org.id,
      name: 'Handbook docs-api.pdf',
      mime_type: 'application/pdf',
      size_bytes: bytes.byteLength,
      checksum_sha256: createHash('sha256').update(bytes).digest('hex'),
      status: 'ready',
      progress: 100,
      failure_reason: null,
      page_count: 2,
      chunk_count: chunks,
      collection_id: null,
      project_id: null,
      batch_id: uploaded.batch_id,
      created_at: uploaded.created_at,
      updated_at: expect.any(String),
      ingested_at: expect.any(String),
      embedding_model: 'offline-lexical-v2',
      stale: false,
    });
    // The upload's 202 is the same representation (then queued), plus the file's place.
    expect(Object.keys(uploaded).sort()).toEqual([...Object.keys(document), 'storage_path'].sort());
    expect(uploaded).toMatchObject({ object: 'document', status: 'queued', progress: 0, ingested_at: null, embedding_model: null, stale: false });
    // The list shows it the same way.
    const listed = (await (await api('', { key: keys.reader })).json()) as ApiList;
    expect(listed.data.find((row) => row.id === uploaded.id)).toEqual(document);
  });

  it('shows a failed document with its reason; another org\'s or an unknown one is 404, a non-UUID 422', async () => {
    const broken = await push('broken docs-api.pdf', corruptPdf());
    expect(await ingest(broken.id)).toMatchObject({ status: 'failed' });
    const response = await api(`/${broken.id}`, { key: keys.reader });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      id: broken.id,
      status: 'failed',
      failure_reason: 'The file is not a valid PDF.',
      chunk_count: 0,
      ingested_at: null,
    });
    for (const [id, key] of [[broken.id, keys.other], [otherOrgDocument, keys.reader], [randomUUID(), keys.reader]]) {
      const missing = await api(`/${id}`, { key });
      expect(missing.status).toBe(404);
      expect((await missing.json()).error).toMatchObject({ code: 'not_found', message: 'The document was not found.' });
    }
    const invalid = await api('/nope', { key: keys.reader });
    expect(invalid.status).toBe(422);
    expect((await invalid.json()).error.code).toBe('invalid_request');
  });
});

describe('POST /knowledge/documents/:id/retry', () => {
  it('queues a failed document again (202): a fresh run starts and fails it again for a file still broken', async () => {
    const broken = await push('retried docs-api.pdf', corruptPdf());
    expect(await ingest(broken.id)).toMatchObject({ status: 'failed' });
    expect(await documentRow(broken.id)).toMatchObject({ status: 'failed', ingest_attempts: 1 });

    const response = await retry(broken.id, keys.writeOnly);
    expect(response.status).toBe(202);
    expect(await response.json()).toMatchObject({
      object: 'document',
      id: broken.id,
      status: 'queued',
      progress: 0,
      failure_reason: null,
    });
    expect(await documentRow(broken.id)).toMatchObject({ status: 'queued', progress: 0, failure_reason: null, ingest_attempts: 0 });
    // The next step runs afresh (its first attempt again) and fails the file, still broken, again.
    expect(await ingest(broken.id)).toMatchObject({ status: 'failed', reason: 'The file is not a valid PDF.' });
    expect(await documentRow(broken.id)).toMatchObject({
      status: 'failed',
      failure_reason: 'The file is not a valid PDF.',
      ingest_attempts: 1,
    });
  });

  it('refuses a document that is not failed, or is being deleted (409 not_retryable), changing nothing', async () => {
    const ready = await push('ready docs-api.txt', new TextEncoder().encode('Opening hours: nine to five.'), 'text/plain');
    expect(await ingest(ready.id)).toMatchObject({ status: 'ready' });
    const queued = await push('queued docs-api.txt', new TextEncoder().encode('Closed on Sundays.'), 'text/plain');
    for (const [id, status] of [[ready.id, 'ready'], [queued.id, 'queued']]) {
      const before = await documentRow(id);
      const response = await retry(id, keys.writer);
      expect(response.status).toBe(409);
      expect((await response.json()).error).toMatchObject({
        code: 'not_retryable',
        message: `Only a failed document can be retried; this one is ${status}.`,
      });
      expect(await documentRow(id)).toEqual(before);
    }
    // A failed document whose deletion has begun stays out of ingestion.
    const leaving = await push('leaving docs-api.pdf', corruptPdf());
    expect(await ingest(leaving.id)).toMatchObject({ status: 'failed' });
    await sql`update public.documents set deletion_started_at = now() where id = ${leaving.id}`;
    const before = await documentRow(leaving.id);
    const refused = await retry(leaving.id, keys.writer);
    expect(refused.status).toBe(409);
    expect((await refused.json()).error).toMatchObject({ code: 'not_retryable', message: 'The document is being deleted.' });
    expect(await documentRow(leaving.id)).toEqual(before);
  });

  it('answers a repeat of a retry whose 202 was lost with 202 and the document as it is (queued, then processing), queuing nothing', async () => {
    const broken = await push('repeated docs-api.pdf', corruptPdf());
    expect(await ingest(broken.id)).toMatchObject({ status: 'failed' });
    expect((await retry(broken.id, keys.writer)).status).toBe(202);
    const queued = await documentRow(broken.id);
    const again = await retry(broken.id, keys.writer);
    expect(again.status).toBe(202);
    expect(await again.json()).toMatchObject({ object: 'document', id: broken.id, status: 'queued', failure_reason: null });
    expect(await documentRow(broken.id)).toEqual(queued);
    // The run has started (the ingest function's first step): a repeat now shows it processing.
    await sql`select run_id from private.begin_ingest_step(${broken.id}::uuid)`;
    const processing = await documentRow(broken.id);
    expect(processing.status).toBe('processing');
    const late = await retry(broken.id, keys.writer);
    expect(late.status).toBe(202);
    expect(await late.json()).toMatchObject({ id: broken.id, status: 'processing' });
    expect(await documentRow(broken.id)).toEqual(processing);
    // Once the retried run has ended, a failed document is retried as before.
    expect(await ingest(broken.id)).toMatchObject({ status: 'failed', reason: 'The file is not a valid PDF.' });
    const [{ retried }] = await sql<{ retried: boolean }[]>`
      select retried_at is not null as retried from public.documents where id = ${broken.id}`;
    expect(retried).toBe(false);
    expect(await (await retry(broken.id, keys.writer)).json()).toMatchObject({ status: 'queued' });
  });

  it('keeps a ready document\'s chunks when its retried re-ingestion fails before reading the file (quota used up)', async () => {
    const keeper = await createChatOrg(sql, 'docs-api-kept');
    const writer = (await createApiKey(sql, keeper, ['knowledge.read', 'knowledge.write'])).key;
    const uploaded = await api('?name=kept%20docs-api.txt', {
      method: 'POST',
      key: writer,
      headers: { 'content-type': 'text/plain' },
      body: new Blob([new TextEncoder().encode('Opening hours of the kept branch: nine to five, Monday to Saturday.')]),
    });
    const { id } = (await uploaded.json()) as ApiDocument;
    expect(await ingest(id)).toMatchObject({ status: 'ready' });
    const chunks = async () => {
      const [row] = await sql<{ live: number; chunk_count: number; status: string; failure_reason: string | null; last: string | null }[]>`
        select (select count(*)::int from public.document_chunks c where c.document_id = d.id) as live, d.chunk_count, d.status,
          d.failure_reason, d.last_failure_reason as last
        from public.documents d where d.id = ${id}`;
      return row;
    };
    const ready = await chunks();
    expect(ready).toMatchObject({ status: 'ready', last: null });
    expect(ready.live).toBeGreaterThan(0);

    // A member re-ingests it, then the period's embedding tokens run out before its first step.
    await withUserScope(sql, keeper.claims.owner, (tx) => tx`select public.retry_document(${id}::uuid)`);
    await sql`insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out)
              values (${keeper.id}, 'embedding', 'docs-api-kept', 2000000000, 0)`;
    const answer = await ingest(id);
    expect(answer.status).toBe('failed');
    expect(await chunks()).toEqual({
      live: ready.live,
      chunk_count: ready.live,
      status: 'ready',
      failure_reason: null,
      last: answer.reason,
    });
    expect(answer.reason).toMatch(/^Not indexed: the organization's embedding tokens for this period are used up/);
    const [event] = await sql<{ payload: Record<string, unknown> }[]>`
      select payload from public.events where type = 'document.failed' and payload ->> 'document_id' = ${id}`;
    expect(event.payload).toEqual({ document_id: id, name: 'kept docs-api.txt', reason: answer.reason, status: 'ready' });
    const read = await api(`/${id}`, { key: writer });
    expect(await read.json()).toMatchObject({ status: 'ready', chunk_count: ready.live, failure_reason: null });
  });

  it('needs knowledge.write (403) and finds only the key\'s org\'s documents (404), changing nothing', async () => {
    const broken = await push('refused docs-api.pdf', corruptPdf());
    expect(await ingest(broken.id)).toMatchObject({ status: 'failed' });
    const before = await documentRow(broken.id);
    const readOnly = await retry(broken.id, keys.reader);
    expect(readOnly.status).toBe(403);
    expect((await readOnly.json()).error.code).toBe('insufficient_scope');
    for (const [id, key] of [[broken.id, keys.other], [otherOrgDocument, keys.writer], [randomUUID(), keys.writer]]) {
      const missing = await retry(id, key);
      expect(missing.status).toBe(404);
      expect((await missing.json()).error).toMatchObject({ code: 'not_found', message: 'The document was not found.' });
    }
    expect((await retry('nope', keys.writer)).status).toBe(422);
    expect(await documentRow(broken.id)).toEqual(before);
    const [theirs] = await sql<{ status: string }[]>`select status from public.documents where id = ${otherOrgDocument}`;
    expect(theirs.status).toBe('failed');
  });
});

describe('who may call', () => {
  it('takes API keys only: a user token is 401 api_key_required, no credentials 401, a key without the scope 403', async () => {
    const id = seeded[0].id;
    for (const [path, method] of [['', 'GET'], [`/${id}`, 'GET'], [`/${id}/retry`, 'POST']]) {
      const user = await api(path, { method, key: listOrg.tokens.owner });
      expect(user.status, `${method} ${path}`).toBe(401);
      const { error } = await user.json();
      expect(error.code).toBe('api_key_required');
      expect(error.message).toContain('retry_document');
      const anonymous = await api(path, { method });
      expect(anonymous.status).toBe(401);
      expect((await anonymous.json()).error.code).toBe('missing_api_key');
    }
    for (const path of ['', `/${seeded[0].id}`]) {
      const unscoped = await api(path, { key: keys.writeOnly });
      expect(unscoped.status).toBe(403);
      expect((await unscoped.json()).error.code).toBe('insufficient_scope');
    }
    const [{ status }] = await sql<{ status: string }[]>`select status from public.documents where id = ${id}`;
    expect(status).toBe(seeded[0].status);
  });

  it('answers a method a path does not take with 405 and the methods it does', async () => {
    const id = randomUUID();
    for (const [path, method, allow] of [
      ['', 'PUT', 'GET, HEAD, POST'],
      [`/${id}`, 'PATCH', 'GET, HEAD, DELETE'],
      [`/${id}/retry`, 'GET', 'POST'],
    ]) {
      const response = await api(path, { method, key: keys.writer });
      expect(response.status, `${method} ${path}`).toBe(405);
      expect(response.headers.get('allow')).toBe(allow);
      expect((await response.json()).error.code).toBe('method_not_allowed');
    }
    expect((await api(`/${id}/other`, { method: 'POST', key: keys.writer })).status).toBe(404);
  });

  it('takes every request from the key\'s one bucket: 429 with Retry-After once it is spent', async () => {
    const limited = await createApiKey(sql, listOrg, ['knowledge.read', 'knowledge.write']);
    await sql`update public.api_keys set rate_limit_per_minute = 3 where id = ${limited.id}`;
    expect((await api('?limit=1', { key: limited.key })).status).toBe(200);
    expect((await api(`/${seeded[0].id}`, { key: limited.key })).status).toBe(200);
    expect((await retry(randomUUID(), limited.key)).status).toBe(404);
    for (const response of [
      await api('?limit=1', { key: limited.key }),
      await api(`/${seeded[0].id}`, { key: limited.key }),
      await retry(seeded[0].id, limited.key),
    ]) {
      expect(response.status).toBe(429);
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await response.json()).error.code).toBe('rate_limited');
    }
  });
});
