import type { UserClaims } from '../_shared/auth.ts';
import { type Sql, type TransactionSql, withUserScope } from '../_shared/db.ts';
import { mapPostgresErrors } from '../_shared/pg-errors.ts';

/**
 * Who a chat turn runs for. A signed-in user runs as `authenticated` with
 * their claims, so RLS and the SQL permission checks decide as they do for
 * PostgREST. A bot API key or a Telegram webhook runs as `service_role`
 * (the key or the webhook secret has been verified by then), with the key's
 * id as a claim so the audit log names it; every query then names the org.
 */
export type ChatPrincipal =
  | { kind: 'user'; claims: UserClaims }
  | { kind: 'service'; apiKeyId: string | null };

const HOUR = 3600;

/** Runs `fn` in one transaction as the principal; our SQLSTATEs become HTTP errors. */
export function inScope<T>(sql: Sql, principal: ChatPrincipal, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  const claims = principal.kind === 'user'
    ? principal.claims
    : {
      role: 'service_role',
      exp: Math.floor(Date.now() / 1000) + HOUR,
      ...(principal.apiKeyId ? { api_key_id: principal.apiKeyId } : {}),
    };
  return mapPostgresErrors(() => withUserScope(sql, claims, fn), {
    forbidden: 'You may not chat with this bot.',
    notFound: 'The bot or conversation was not found.',
  });
}

/** Metering and other bookkeeping only the service role may write, whoever the turn is for. */
export function asService<T>(sql: Sql, principal: ChatPrincipal, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  return inScope(sql, { kind: 'service', apiKeyId: principal.kind === 'service' ? principal.apiKeyId : null }, fn);
}
