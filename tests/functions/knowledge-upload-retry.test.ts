/**
 * An API-key upload (POST /knowledge/documents) retried with its
 * Idempotency-Key after its first answer was lost: the request died, or its
 * last transaction failed, once its document was registered, leaving the key's
 * claim unanswered (simulated in SQL, and aged past the 10 minutes after which
 * a claim is taken over). The retry answers the first document when its file
 * was stored, and registers the file anew, once, when it was not or the
 * document is gone (20261123015600).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { createKnowledgeHandler } from '../../functions/knowledge/handler.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { type ChatOrg, createApiKey, createChatOrg } from '../support/chat-fixtures.ts';
import { keyApi } from '../support/key-api.ts';

let stack: Stack;
let sql: Sql;
let org: ChatOrg;
let writer: { id: string; key: string };

const api = keyApi(() => `${stack.apiUrl}/functions/v1/knowledge/documents`);

/** The upload of `body` as `name` with Idempotency-Key `key`, through the gateway (real Deno, the Storage API). */
const upload = (name: string, body: string, key: string) =>
  api(`?name=${encodeURIComponent(name)}`, {
    method: 'POST',
    key: writer.key,
    headers: { 'content-type': 'text/plain', 'idempotency-key': key },
    body,
  });

/** The state a request leaves that died after registering its document: its claim unanswered, here 11 minutes old. */
async function loseAnswer(key: string, age = '11 minutes'): Promise<void> {
  const lost = await sql`
    update private.idempotency_keys set response_status = null, response_body = null, created_at = now() - ${age}::interval
    where api_key_id = ${writer.id} and idempotency_key = ${key}`;
  expect(lost.count).toBe(1);
}

const documentsNamed = (name: string) =>
  sql<{ id: string; status: string; batch_id: string | null; storage_path: string }[]>`
    select id, status, batch_id, storage_path from public.documents where org_id = ${org.id} and name = ${name}
    order by created_at`;

const objectCount = async (path: string) =>
  (await sql<{ n: number }[]>`
    select count(*)::int as n from storage.objects where bucket_id = 'knowledge' and name = ${path}`)[0].n;

async function claimOf(key: string) {
  const [claim] = await sql<{ response_status: number | null; answered_id: string | null; document_id: string | null }[]>`
    select response_status, response_body ->> 'id' as answered_id, document_id from private.idempotency_keys
    where api_key_id = ${writer.id} and idempotency_key = ${key}`;
  return claim;
}

beforeAll(async () => {
  stack = await startStack({ dbPort: 0, apiPort: await freePort(), scheduler: false });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'upload-retry');
  writer = await createApiKey(sql, org, ['knowledge.write']);
  await sql`update public.api_keys set rate_limit_per_minute = 1000 where id = ${writer.id}`;
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe('POST /knowledge/documents retried after a lost answer', () => {
  it('answers the first document once its file was stored: 202, its id, no second document', async () => {
    const key = `upload-retry-stored-${randomUUID()}`;
    const body = 'Opening hours: Monday to Friday 9-17. Closed on Sundays.\n';
    const first = await upload('hours.txt', body, key);
    expect(first.status).toBe(202);
    const document = await first.json();
    expect(document.status).toBe('queued');
    expect((await claimOf(key)).document_id).toBe(document.id);

    await loseAnswer(key, '1 minute');
    const early = await upload('hours.txt', body, key);
    expect(early.status).toBe(409);
    expect((await early.json()).error.code).toBe('idempotency_key_in_use');

    await loseAnswer(key);
    const retried = await upload('hours.txt', body, key);
    expect(retried.status).toBe(202);
    expect(retried.headers.get('idempotent-replayed')).toBe('true');
    // The representation the first answer had (nothing ingested it since: the scheduler is off here).
    expect(await retried.json()).toEqual(document);
    const rows = await documentsNamed('hours.txt');
    expect(rows.map((row) => row.id)).toEqual([document.id]);
    expect(await objectCount(document.storage_path)).toBe(1);
    // Kept as the key's answer: the next retry replays it at once.
    expect(await claimOf(key)).toMatchObject({ response_status: 202, answered_id: document.id });
    const again = await upload('hours.txt', body, key);
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((await again.json()).id).toBe(document.id);
    expect(await documentsNamed('hours.txt')).toHaveLength(1);
  });

  it('takes back a first document whose file never arrived and registers the file anew, once', async () => {
    // A worker that registered the file and died before Storage stored it: here a Storage that stores nothing.
    const lostFile = createKnowledgeHandler({
      sql: () => sql,
      env: (name) => ({ SUPABASE_URL: stack.apiUrl!, SUPABASE_JWT_SECRET: stack.keys.jwtSecret })[name],
      store: { upload: () => Promise.resolve(), remove: () => Promise.resolve() },
    });
    const key = `upload-retry-unstored-${randomUUID()}`;
    const body = 'Returns within 30 days with the receipt.\n';
    const first = await lostFile(
      new Request('http://localhost/knowledge/documents?name=returns.txt', {
        method: 'POST',
        headers: { authorization: `Bearer ${writer.key}`, 'content-type': 'text/plain', 'idempotency-key': key },
        body,
      }),
    );
    expect(first.status).toBe(202);
    const unstored = await first.json();
    expect(unstored.status).toBe('uploading');
    expect(await objectCount(unstored.storage_path)).toBe(0);

    await loseAnswer(key);
    const retried = await upload('returns.txt', body, key);
    expect(retried.status).toBe(202);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
    const document = await retried.json();
    expect(document.id).not.toBe(unstored.id);
    expect(document.status).toBe('queued');
    const rows = await documentsNamed('returns.txt');
    expect(rows.map((row) => [row.id, row.status])).toEqual([[document.id, 'queued']]);
    expect(await objectCount(document.storage_path)).toBe(1);
    const [{ n: batches }] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.upload_batches where id = ${unstored.batch_id}`;
    expect(batches).toBe(0);
    expect(await claimOf(key)).toEqual({ response_status: 202, answered_id: document.id, document_id: document.id });
  });

  it('registers anew when the first document was deleted since; another request taking the key over leaves it be', async () => {
    const key = `upload-retry-deleted-${randomUUID()}`;
    const body = 'Delivery: two to three working days.\n';
    const first = await (await upload('delivery.txt', body, key)).json();
    expect((await api(`/${first.id}`, { method: 'DELETE', key: writer.key })).status).toBe(204);
    await loseAnswer(key);
    const retried = await upload('delivery.txt', body, key);
    expect(retried.status).toBe(202);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
    const document = await retried.json();
    expect(document.id).not.toBe(first.id);
    expect((await documentsNamed('delivery.txt')).map((row) => row.id)).toEqual([document.id]);

    // Another file under the same key, once its claim is stale, is another request: the first document stays.
    await loseAnswer(key);
    const other = await upload('delivery.txt', 'Delivery: next day.\n', key);
    expect(other.status).toBe(202);
    const otherDocument = await other.json();
    expect((await documentsNamed('delivery.txt')).map((row) => row.id)).toEqual([document.id, otherDocument.id]);
  });
});
