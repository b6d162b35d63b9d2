/**
 * Idempotency-Key (the IETF httpapi idempotency-key draft, as Stripe uses it)
 * for API-key requests that create something a retry must not create twice
 * (and, with answerOnceForUser, for a user's requests in an org).
 * The key is claimed in the transaction that does the work (SQL:
 * 20261123006100_idempotency_keys.sql; an upload, whose bytes go to Storage
 * after that transaction, names its document on the claim, records its answer
 * once stored and gives the claim up when Storage refuses): the first
 * request's answer is kept
 * for the API key and that key for 24 hours, a retry with the same request
 * gets it again with `Idempotent-Replayed: true`, and the same key with
 * another request is a 422. Work that fails rolls the claim back, so a failed
 * request may be retried with the same key.
 */
import type { TransactionSql } from './db.ts';
import { HttpError } from './errors.ts';
import { sha256Hex } from './sha256.ts';

const KEY_FORMAT = /^[!-~]{1,255}$/;

/** The request's Idempotency-Key, or null without one; 422 when it is not 1 to 255 visible ASCII characters. */
export function idempotencyKeyFrom(req: Request): string | null {
  const key = req.headers.get('idempotency-key');
  if (key === null) return null;
  if (!KEY_FORMAT.test(key)) {
    throw new HttpError(422, 'invalid_request', 'Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID will do).');
  }
  return key;
}

/** JSON with object keys sorted, so the same request hashes alike however its fields were ordered. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, field]) => field !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([name, field]) => `${JSON.stringify(name)}:${canonicalJson(field)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export interface Answer<T> {
  status: number;
  body: T;
}

/** An answer, and whether it is the first request's again (send `Idempotent-Replayed: true` with it). */
export type OnceAnswer<T> = Answer<T> & { replayed: boolean };

/** The header a replayed answer carries. */
export const replayHeaders = (answer: { replayed: boolean }): Record<string, string> =>
  answer.replayed ? { 'idempotent-replayed': 'true' } : {};

interface Claim {
  claimed: boolean;
  first_fingerprint: string;
  response_status: number | null;
  response_body: unknown;
}

const fingerprintOf = async (request: unknown): Promise<string> =>
  await sha256Hex(new TextEncoder().encode(canonicalJson(request)));

/** null when this request claimed the key, else the first request's answer to replay, or the refusal. */
function replayOf<T>(claim: Claim, fingerprint: string): OnceAnswer<T> | null {
  if (claim.claimed) return null;
  if (claim.first_fingerprint !== fingerprint) {
    throw new HttpError(
      422,
      'idempotency_key_reused',
      'This Idempotency-Key was first sent with another request; send a new key for a new request.',
    );
  }
  if (claim.response_status === null) {
    throw new HttpError(409, 'idempotency_key_in_use', 'A request with this Idempotency-Key is still being processed; send it again shortly.', {
      'retry-after': '5',
    });
  }
  return { status: claim.response_status, body: claim.response_body as T, replayed: true };
}

/** Where a key is kept: its claim and its answer (an API key's, or a signed-in user's in an org). */
interface KeyScope {
  claim(tx: TransactionSql, key: string, fingerprint: string): Promise<Claim>;
  record(tx: TransactionSql, key: string, answer: Answer<unknown>): Promise<void>;
}

const apiKeyScope = (apiKeyId: string): KeyScope => ({
  claim: async (tx, key, fingerprint) =>
    (await tx<Claim[]>`
      select claimed, first_fingerprint, response_status, response_body
      from private.claim_idempotency_key(${apiKeyId}::uuid, ${key}, ${fingerprint})`)[0],
  record: (tx, key, answer) => recordAnswer(tx, apiKeyId, key, answer),
});

/** The signed-in user (auth.uid() of the transaction's scope) in `orgId`, which they must be a member of (SQL: 20261123009000). */
const userScope = (orgId: string): KeyScope => ({
  claim: async (tx, key, fingerprint) =>
    (await tx<Claim[]>`
      select claimed, first_fingerprint, response_status, response_body
      from private.claim_user_idempotency_key(${orgId}::uuid, ${key}, ${fingerprint})`)[0],
  record: async (tx, key, answer) => {
    await tx`select private.record_user_idempotent_response(${orgId}::uuid, ${key}, ${answer.status}, ${
      tx.json(answer.body as Parameters<typeof tx.json>[0])
    })`;
  },
});

/**
 * Claims `key` for this request in `tx`: null when claimed (do the work, then
 * recordAnswer), else the first request's answer to replay. The same key with
 * another request is a 422; a claim whose work has not answered yet (an
 * upload still being stored) is a 409 to retry.
 */
export async function claimKey<T>(tx: TransactionSql, apiKeyId: string, key: string, request: unknown): Promise<OnceAnswer<T> | null> {
  const fingerprint = await fingerprintOf(request);
  return replayOf<T>(await apiKeyScope(apiKeyId).claim(tx, key, fingerprint), fingerprint);
}

/**
 * claimKey for an upload (SQL: 20261123015600), whose answer is recorded after
 * its registration commits: also `documentId`, the document the claim this
 * request took over named (the same request, registered and left unanswered,
 * its request dead), for the upload to answer or take back; else null.
 */
export async function claimUploadKey<T>(
  tx: TransactionSql,
  apiKeyId: string,
  key: string,
  request: unknown,
): Promise<{ replay: OnceAnswer<T> | null; documentId: string | null }> {
  const fingerprint = await fingerprintOf(request);
  const [claim] = await tx<(Claim & { document_id: string | null })[]>`
    select claimed, first_fingerprint, response_status, response_body, document_id
    from private.claim_upload_idempotency_key(${apiKeyId}::uuid, ${key}, ${fingerprint})`;
  return { replay: replayOf<T>(claim, fingerprint), documentId: claim.document_id };
}

/** Names the document an upload that claimed `key` registered, in the registration's transaction. */
export async function recordDocument(tx: TransactionSql, apiKeyId: string, key: string, documentId: string): Promise<void> {
  await tx`select private.record_idempotent_document(${apiKeyId}::uuid, ${key}, ${documentId}::uuid)`;
}

/** Keeps the answer of the request that claimed `key`, for its retries. */
export async function recordAnswer(tx: TransactionSql, apiKeyId: string, key: string, answer: Answer<unknown>): Promise<void> {
  await tx`select private.record_idempotent_response(${apiKeyId}::uuid, ${key}, ${answer.status}, ${tx.json(answer.body as Parameters<typeof tx.json>[0])})`;
}

/** Gives a claim up whose work failed after the claim committed, so the request may be sent again with its key. */
export async function releaseKey(tx: TransactionSql, apiKeyId: string, key: string): Promise<void> {
  await tx`select private.release_idempotency_key(${apiKeyId}::uuid, ${key})`;
}

/**
 * `work`'s answer, or, when the key already answered this same request, that
 * answer again; the claim, the work and the answer are one transaction.
 * `request` is what makes two requests the same (the route and its validated
 * body).
 */
async function answerOnceIn<T>(
  tx: TransactionSql,
  scope: KeyScope,
  key: string | null,
  request: unknown,
  work: () => Promise<Answer<T>>,
): Promise<OnceAnswer<T>> {
  if (key === null) return { ...(await work()), replayed: false };
  const fingerprint = await fingerprintOf(request);
  const replay = replayOf<T>(await scope.claim(tx, key, fingerprint), fingerprint);
  if (replay) return replay;
  const answer = await work();
  await scope.record(tx, key, answer);
  return { ...answer, replayed: false };
}

/** answerOnceIn for an API key's request. */
export function answerOnce<T>(
  tx: TransactionSql,
  apiKeyId: string,
  key: string | null,
  request: unknown,
  work: () => Promise<Answer<T>>,
): Promise<OnceAnswer<T>> {
  return answerOnceIn(tx, apiKeyScope(apiKeyId), key, request, work);
}

/** answerOnceIn for a user's request (a user token, not an API key): the key is kept for the user in `orgId`. */
export function answerOnceForUser<T>(
  tx: TransactionSql,
  orgId: string,
  key: string | null,
  request: unknown,
  work: () => Promise<Answer<T>>,
): Promise<OnceAnswer<T>> {
  return answerOnceIn(tx, userScope(orgId), key, request, work);
}
