import type { JwtClaims } from './auth.ts';
import { type Sql, type TransactionSql, withUserScope } from './db.ts';

/**
 * Runs `fn` as the service role (for definer functions only it may run) with
 * `claims` kept, so auth.uid() and auth.jwt() still name the caller: the
 * audit log records them as the actor, columns such as created_by are theirs,
 * and checks on auth.role() (the claim, 'authenticated' for a user) still
 * apply the user's permissions. Only the role is switched, as document
 * deletion does.
 */
export function asServiceRoleActing<T>(sql: Sql, claims: JwtClaims, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  return withUserScope(sql, claims, async (tx) => {
    await tx`select set_config('role', 'service_role', true)`;
    return await fn(tx);
  });
}
