/**
 * POST /functions/v1/knowledge/documents?name=<file name>[&collection_id=][&project_id=]
 * A server pushes one file into the knowledge base with an API key holding
 * `knowledge.write` (a CMS or a nightly sync; people upload from the app
 * straight to Storage). The body is the file's bytes, its Content-Type one of
 * the knowledge types (PDF, TXT, Markdown, CSV, JSON, DOCX), 1 byte to 25 MB.
 *
 * The file is registered through create_upload_batch as the service role
 * acting for the key (its org; the audit log names the key), with the SHA-256
 * of the bytes received, so ingestion's first step checks Storage returned
 * them; then it is uploaded to its storage_path, whose insert queues the
 * ingestion as a frontend's upload does. A document deleted meanwhile (Storage
 * refuses its file, or the row is gone or marked once stored) is a 409
 * `document_deleted`, its registration left to the deletion. 202 with the document (`queued`,
 * as representation.ts shows it, plus its storage_path);
 * progress as for any upload (documents row, the org's `uploads` channel,
 * document.ready / document.failed webhooks). An upload Storage refuses
 * takes the registration back (503, nothing left behind). With an
 * Idempotency-Key (as POST /calls takes it), a retry of the same upload (the
 * same file, name and place) answers the first one again instead of
 * registering the file twice; one sent while the first is still being stored
 * is a 409 to retry. The registration names its document on the key's claim:
 * a retry of a request that died before answering (its claim taken over
 * after 10 minutes) answers that document when its file was stored, and
 * otherwise takes it back and registers the file anew.
 */
import { z } from 'zod';
import type { AuthOptions } from '../_shared/auth.ts';
import { asServiceRole, type Sql, type TransactionSql } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { assertIdentityEncoding, json, readBodyBytes, readQuery } from '../_shared/http.ts';
import {
  type Answer,
  claimUploadKey,
  idempotencyKeyFrom,
  type OnceAnswer,
  recordAnswer,
  recordDocument,
  releaseKey,
  replayHeaders,
} from '../_shared/idempotency.ts';
import { sha256Hex } from '../_shared/sha256.ts';
import { MAX_FILE_BYTES, SUPPORTED_MIME_TYPES } from '../_shared/text/extract.ts';
import { asCaller, authenticateCaller, callerOrg, takeUserRateLimit } from './caller.ts';
import { deleteDocumentRow, type KnowledgeStore } from './documents.ts';
import { documentColumns, type DocumentRow, toApiDocument } from './representation.ts';

export const uploadQuery = z.strictObject({
  name: z.string().min(1, 'must not be empty').max(255, 'has at most 255 characters'),
  collection_id: z.guid().optional(),
  project_id: z.guid().optional(),
});

interface RegisteredDocument {
  id: string;
  batch_id: string | null;
  storage_path: string;
}

/** An Idempotency-Key claimed for the upload. */
interface UploadClaim {
  apiKeyId: string;
  key: string;
}

/** The Content-Type without its parameters (`text/plain; charset=utf-8` is text/plain). */
function fileType(req: Request): string {
  const type = (req.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (!(SUPPORTED_MIME_TYPES as readonly string[]).includes(type)) {
    throw new HttpError(
      415,
      'unsupported_media_type',
      `Send the file with its Content-Type, one of ${SUPPORTED_MIME_TYPES.join(', ')}${type ? ` (not ${type})` : ''}.`,
    );
  }
  return type;
}

const tooLarge = () =>
  new HttpError(413, 'file_too_large', `A file has at most ${MAX_FILE_BYTES / 1024 / 1024} MB.`);

/** The file: the body's bytes, 1 byte to the upload limit. */
async function readFileBody(req: Request): Promise<Uint8Array> {
  const bytes = await readBodyBytes(req, MAX_FILE_BYTES, tooLarge);
  if (bytes.byteLength === 0) throw new HttpError(422, 'invalid_request', 'The file is empty: send its bytes as the request body.');
  return bytes;
}

/**
 * Takes back a registration whose file Storage refused: the object too (a
 * refusal after Storage stored it, a lost answer, would leave a file no row
 * names), then the rows, and the Idempotency-Key claim whatever happens to
 * those, so the request may be sent again with its key at once. Best effort:
 * the caller's 503 stands whatever fails here (logged). When the object
 * cannot be removed either (Storage down), the rows stay, so that no file is
 * left that no document names: the document shows `uploading`, counts
 * against the plan's documents until deleted (DELETE
 * /knowledge/documents/:id removes file and row; nothing sweeps such rows),
 * and a retry registers the file anew.
 */
async function takeBack(
  sql: Sql,
  store: KnowledgeStore,
  document: RegisteredDocument,
  claim: UploadClaim | null,
): Promise<void> {
  let removed = false;
  try {
    await store.remove(document.storage_path);
    removed = true;
  } catch (error) {
    console.error(`removing the refused upload of document ${document.id} failed; its row stays`, error);
  }
  try {
    await asServiceRole(sql, async (tx) => {
      if (removed) await dropRegistration(tx, document);
      if (claim) await releaseKey(tx, claim.apiKeyId, claim.key);
    });
  } catch (error) {
    console.error(`taking back the upload of document ${document.id} failed`, error);
  }
}

/** Deletes a registration (its document, then its batch of one) whose file never got stored. */
async function dropRegistration(tx: TransactionSql, document: RegisteredDocument): Promise<void> {
  await deleteDocumentRow(tx, document.id);
  if (document.batch_id) await tx`delete from public.upload_batches where id = ${document.batch_id}::uuid`;
}

/** The upload's 202: the document as representation.ts shows it, plus its storage_path. */
function uploadAnswer(stored: DocumentRow, storagePath: string, currentModel: string): Answer<unknown> {
  // storage_path stays in the upload's answer, which showed it before the representation was shared.
  return { status: 202, body: { ...toApiDocument(stored, currentModel), storage_path: storagePath } };
}

/**
 * The answer for the document an earlier request with this key registered and
 * never answered (it died, or its last transaction failed): once its file was
 * stored (the object's insert queues the document in the same transaction, so
 * a status past `uploading` is the stored file's witness), that document, as
 * it is now, kept as the key's answer. A registration whose file never arrived is dropped, so the
 * caller registers the file anew; so does a document deleted, or being
 * deleted, since: null for both.
 */
async function answerEarlierUpload(
  tx: TransactionSql,
  claim: UploadClaim,
  documentId: string,
  orgId: string,
  currentModel: string,
): Promise<OnceAnswer<unknown> | null> {
  // A registration dropped here is deleted before create_upload_batch registers anew: its locks come in that
  // function's order (README "Lock order"): the collection (key share; a collection or org deletion under way
  // holds it, then waits for the document or the subscription), the org row (key share; an org's deletion locks
  // it, then deletes the subscription), the org's active subscription (the documents' quota lock), then the
  // document row and the audit chain head its delete takes; else this deadlocks with the org's other uploads
  // and deletions.
  await tx`select private.share_document_collection(${documentId}::uuid)`;
  await tx`select 1 from public.organizations o where o.id = ${orgId}::uuid for key share`;
  await tx`select 1 from public.subscriptions s where s.org_id = ${orgId}::uuid and s.status = 'active' for update`;
  const [earlier] = await tx<(DocumentRow & { storage_path: string; marked: boolean })[]>`
    select ${documentColumns(tx)}, d.storage_path, d.deletion_started_at is not null as marked
    from public.documents d where d.id = ${documentId}::uuid and d.org_id = ${orgId}::uuid
    for update`;
  if (!earlier || earlier.marked) return null;
  if (earlier.status === 'uploading') {
    await dropRegistration(tx, earlier);
    return null;
  }
  const answer = uploadAnswer(earlier, earlier.storage_path, currentModel);
  await recordAnswer(tx, claim.apiKeyId, claim.key, answer);
  return { ...answer, replayed: true };
}

/** `currentModel`: the model the deployment embeds with (its provider's). */
export async function uploadDocument(
  sql: Sql,
  req: Request,
  store: KnowledgeStore,
  currentModel: string,
  options: AuthOptions,
): Promise<Response> {
  const caller = await authenticateCaller(sql, req, options, 'knowledge.write');
  if (caller.kind !== 'key') {
    throw new HttpError(403, 'forbidden', 'Signed-in users upload to Storage after create_upload_batch; this route takes an API key.');
  }
  const idempotencyKey = idempotencyKeyFrom(req);
  const query = readQuery(new URL(req.url), uploadQuery);
  const mimeType = fileType(req);
  // The bytes are stored as sent: a compressed body would be stored compressed and fail ingestion.
  assertIdentityEncoding(req.headers);
  const orgId = await callerOrg(sql, caller, undefined, 'knowledge.write');
  await takeUserRateLimit(sql, caller, 'knowledge_upload');
  const bytes = await readFileBody(req);
  const file = { name: query.name, mime_type: mimeType, size_bytes: bytes.byteLength, checksum_sha256: await sha256Hex(bytes) };

  // The same file, name and place make the same request; an Idempotency-Key retry of it answers the first upload again.
  const request = { route: 'POST /knowledge/documents', query, file };
  const claim: UploadClaim | null = idempotencyKey ? { apiKeyId: caller.key.apiKeyId, key: idempotencyKey } : null;
  const registered = await asCaller(
    sql,
    caller,
    async (tx): Promise<{ replay: OnceAnswer<unknown> } | { document: RegisteredDocument }> => {
      if (claim) {
        const { replay, documentId } = await claimUploadKey(tx, claim.apiKeyId, claim.key, request);
        if (replay) return { replay };
        const earlier = documentId ? await answerEarlierUpload(tx, claim, documentId, orgId, currentModel) : null;
        if (earlier) return { replay: earlier };
      }
      const [document] = await tx<RegisteredDocument[]>`
        select id, batch_id, storage_path from public.create_upload_batch(${orgId}::uuid, ${tx.json([file])},
          ${query.project_id ?? null}::uuid, ${query.collection_id ?? null}::uuid)`;
      if (claim) await recordDocument(tx, claim.apiKeyId, claim.key, document.id);
      return { document };
    },
    { forbidden: 'This API key may not upload documents.', notFound: 'The collection or project was not found.' },
  );
  if ('replay' in registered) {
    return json(registered.replay.body, registered.replay.status, replayHeaders(registered.replay));
  }
  const { document } = registered;

  try {
    await store.upload(document.storage_path, bytes, mimeType);
  } catch (error) {
    // Storage refuses a file whose document is gone or being deleted (42501, 20261123007900): no outage.
    if (await deletedMeanwhile(sql, document.id)) {
      await giveUpClaim(sql, claim);
      throw documentDeleted();
    }
    await takeBack(sql, store, document, claim);
    throw new HttpError(503, 'storage_unavailable', 'The file could not be stored; send it again.', { 'retry-after': '5' }, {
      cause: error,
    });
  }

  const answer = await asServiceRole(sql, async (tx) => {
    const [stored] = await tx<(DocumentRow & { marked: boolean })[]>`
      select ${documentColumns(tx)}, d.deletion_started_at is not null as marked
      from public.documents d where d.id = ${document.id}::uuid`;
    // Deleted (or being deleted) between its upload and here; its file goes with it.
    if (!stored || stored.marked) return null;
    const answer = uploadAnswer(stored, document.storage_path, currentModel);
    if (claim) await recordAnswer(tx, claim.apiKeyId, claim.key, answer);
    return answer;
  });
  if (!answer) {
    await giveUpClaim(sql, claim);
    throw documentDeleted();
  }
  return json(answer.body, answer.status);
}

const documentDeleted = () =>
  new HttpError(409, 'document_deleted', 'The document was deleted while its file was being stored; upload the file again.');

/** Whether the registration is gone or being deleted (by DELETE /knowledge/documents/:id). */
async function deletedMeanwhile(sql: Sql, documentId: string): Promise<boolean> {
  const [row] = await asServiceRole(sql, (tx) =>
    tx<{ marked: boolean }[]>`
      select deletion_started_at is not null as marked from public.documents where id = ${documentId}::uuid`
  );
  return !row || row.marked;
}

/** Frees the Idempotency-Key claim of an upload that ended without an answer to replay, so a retry may register anew. */
async function giveUpClaim(sql: Sql, claim: UploadClaim | null): Promise<void> {
  if (!claim) return;
  try {
    await asServiceRole(sql, (tx) => releaseKey(tx, claim.apiKeyId, claim.key));
  } catch (error) {
    console.error('giving up the Idempotency-Key claim of a deleted upload failed', error);
  }
}
