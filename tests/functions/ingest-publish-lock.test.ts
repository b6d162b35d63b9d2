/**
 * The last ingestion step's lock order (20261123015700): it key-shares the document's collection
 * (private.share_document_collection) before it locks the document, as a collection's delete takes them (the
 * collection row, then its documents in `on delete set null`); the other order deadlocked on a multi-session
 * Postgres (40P01). The embedded database runs one session, so this records the statements saveStep sends and
 * checks their order and the end state: published in the collection, or, after the collection is deleted, in
 * none. The lock's mode is pgTAP 331's.
 */
import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sql } from '../../functions/_shared/db.ts';
import { OFFLINE_EMBEDDING_MODEL, toPgVector } from '../../functions/_shared/embeddings/index.ts';
import { saveStep, type SaveStep } from '../../functions/ingest/queries.ts';
import { startTestDatabase } from './support.ts';

let sql: Sql;
let statements: string[] = [];
let orgId: string;
let collectionId: string;

beforeAll(async () => {
  const database = await startTestDatabase();
  sql = postgres(database.url, {
    prepare: false,
    max: 1,
    onnotice: () => undefined,
    debug: (_connection, query) => {
      statements.push(query);
    },
  });
  orgId = randomUUID();
  collectionId = randomUUID();
  await sql`insert into public.organizations (id, name, slug)
            values (${orgId}, 'Publish lock', ${`ingest-publish-lock-${orgId.slice(0, 8)}`})`;
  await sql`insert into public.collections (id, org_id, name) values (${collectionId}, ${orgId}, 'Publish lock FAQ')`;
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
});

/** A document of the org in the collection, processing at cursor 0 under a new run; its id and run. */
async function processingDocument(name: string): Promise<{ id: string; runId: string }> {
  const id = randomUUID();
  const runId = randomUUID();
  await sql`insert into public.documents (id, org_id, collection_id, name, mime_type, size_bytes, storage_path, status, ingest_run)
            values (${id}, ${orgId}, ${collectionId}, ${name}, 'text/plain', 10, ${`${orgId}/${id}/${name}`}, 'processing', ${runId})`;
  return { id, runId };
}

/** The document's only step, which is also its last: one chunk, nothing metered. */
function lastStep(documentId: string, runId: string): SaveStep {
  return {
    documentId,
    runId,
    fromCursor: 0,
    chunks: [{
      chunk_index: 0,
      page_start: 1,
      page_end: 1,
      content: 'Refunds are paid within 14 days (publish lock).',
      token_count: 9,
      embedding: toPgVector(Array.from({ length: 1536 }, (_, i) => (i === 0 ? 1 : 0))),
    }],
    nextCursor: 1,
    progress: 100,
    pageCount: 1,
    last: true,
    usage: { orgId, model: OFFLINE_EMBEDDING_MODEL, tokens: 0 },
  };
}

async function chunkCollections(documentId: string): Promise<Array<string | null>> {
  const rows = await sql<{ collection_id: string | null }[]>`
    select collection_id from public.document_chunks where org_id = ${orgId} and document_id = ${documentId}`;
  return rows.map((row) => row.collection_id);
}

describe('the last ingestion step', () => {
  it('key-shares the document\'s collection before it locks the document, then publishes in the collection', async () => {
    const { id, runId } = await processingDocument('in-collection.txt');
    statements = [];
    expect(await saveStep(sql, lastStep(id, runId))).toEqual({ kind: 'ready', chunks: 1 });
    const share = statements.findIndex((query) => query.includes('private.share_document_collection('));
    const documentLock = statements.findIndex((query) => /from public\.documents where id = \$1 for update/.test(query));
    const publish = statements.findIndex((query) => query.includes('private.finish_ingest('));
    expect(share, statements.join('\n---\n')).toBeGreaterThan(-1);
    expect(share).toBeLessThan(documentLock);
    expect(documentLock).toBeLessThan(publish);
    // Nothing but the role switch comes before it in the transaction.
    expect(statements.slice(0, share).filter((query) => !/^\s*(begin|select set_config\('role')/i.test(query)))
      .toEqual([]);
    expect(await chunkCollections(id)).toEqual([collectionId]);
    const [document] = await sql<{ status: string; collection_id: string | null }[]>`
      select status, collection_id from public.documents where id = ${id}`;
    expect(document).toEqual({ status: 'ready', collection_id: collectionId });
  });

  it('takes no collection lock on a step that is not the last', async () => {
    const { id, runId } = await processingDocument('first-of-two.txt');
    statements = [];
    const outcome = await saveStep(sql, { ...lastStep(id, runId), last: false });
    expect(outcome).toEqual({ kind: 'continued' });
    expect(statements.some((query) => query.includes('share_document_collection'))).toBe(false);
  });

  it('publishes in no collection once the collection is deleted (what a delete that went first leaves)', async () => {
    const { id, runId } = await processingDocument('collection-deleted.txt');
    await sql`delete from public.collections where id = ${collectionId}`;
    expect(await saveStep(sql, lastStep(id, runId))).toEqual({ kind: 'ready', chunks: 1 });
    expect(await chunkCollections(id)).toEqual([null]);
    const [document] = await sql<{ collection_id: string | null }[]>`select collection_id from public.documents where id = ${id}`;
    expect(document.collection_id).toBeNull();
  });
});
