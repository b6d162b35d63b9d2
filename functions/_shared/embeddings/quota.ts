/**
 * The org's plan quota of embedding tokens, checked before anything is
 * embedded for it (the knowledge search, the start of an ingestion run):
 * private.require_quota compares the period's metered embedding tokens with
 * the plan's monthly_embedding_tokens and raises PT402 when they are used up,
 * as retry_document does in SQL. It only reads.
 */
import { asServiceRole, type Sql } from '../db.ts';
import { isPostgresError } from '../pg-errors.ts';

export interface QuotaRefusal {
  /** require_quota's message: the plan, its allowance and the use. */
  message: string;
}

/** null while the org has embedding tokens left in its current period; else require_quota's refusal. */
export async function embeddingQuotaRefusal(sql: Sql, orgId: string): Promise<QuotaRefusal | null> {
  try {
    await asServiceRole(sql, (tx) => tx`select private.require_quota(${orgId}::uuid, 'embedding_tokens')`);
    return null;
  } catch (error) {
    if (isPostgresError(error) && error.code === 'PT402') return { message: error.message };
    throw error;
  }
}
