/**
 * Looking a stored answer up before any work that may fail where the first
 * request succeeded: a retried create must get its endpoint and secret back
 * even when the DNS check it would run again fails this time.
 */
import type { TransactionSql } from '../_shared/db.ts';
import { answerOnceForUser, type OnceAnswer } from '../_shared/idempotency.ts';

/** Thrown by the work of a look-up that claimed the key: the savepoint it unwinds gives the claim back. */
const NOT_ANSWERED = Symbol('not answered');

/**
 * The answer `key` already gave this same request for the caller in `orgId`,
 * or null (no key, or nothing answered yet). The same key with another
 * request is 422 `idempotency_key_reused`, as in answerOnceForUser, whose
 * claim this uses: taken in a savepoint and rolled back, so the key stays
 * free for the request's own claim and nothing is kept.
 */
export async function storedAnswer<T>(
  tx: TransactionSql,
  orgId: string,
  key: string | null,
  request: unknown,
): Promise<OnceAnswer<T> | null> {
  if (key === null) return null;
  try {
    return await tx.savepoint((sp) => answerOnceForUser<T>(sp, orgId, key, request, () => Promise.reject(NOT_ANSWERED)));
  } catch (error) {
    if (error === NOT_ANSWERED) return null;
    throw error;
  }
}
