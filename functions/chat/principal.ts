import type { UserClaims } from '../_shared/auth.ts';
import { type Sql, type TransactionSql, withUserScope } from '../_shared/db.ts';
import { mapPostgresErrors } from '../_shared/pg-errors.ts';
import { asServiceRoleActing } from '../_shared/service-role-acting.ts';

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

const ERRORS = {
  forbidden: 'You may not chat with this bot.',
  notFound: 'The bot or conversation was not found.',
};

/** Runs `fn` in one transaction as the principal; our SQLSTATEs become HTTP errors. */
export function inScope<T>(sql: Sql, principal: ChatPrincipal, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  const claims = principal.kind === 'user'
    ? principal.claims
    : {
      role: 'service_role',
      exp: Math.floor(Date.now() / 1000) + HOUR,
      ...(principal.apiKeyId ? { api_key_id: principal.apiKeyId } : {}),
    };
  return mapPostgresErrors(() => withUserScope(sql, claims, fn), ERRORS);
}

/** Metering and other bookkeeping only the service role may write, whoever the turn is for. */
export function asService<T>(sql: Sql, principal: ChatPrincipal, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  return inScope(sql, { kind: 'service', apiKeyId: principal.kind === 'service' ? principal.apiKeyId : null }, fn);
}

/**
 * What the service role does for the principal, with them as its actor: a
 * user's claims stay set (only the role switches), so auth.uid() names them
 * (created_by, the audit log's actor) and the calendar helpers check their
 * calendar.read; a key's or the webhook's turn runs as asService (a key's id
 * claimed, so the audit log names the key).
 */
export function asServiceActing<T>(sql: Sql, principal: ChatPrincipal, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  if (principal.kind === 'service') return asService(sql, principal, fn);
  return mapPostgresErrors(() => asServiceRoleActing(sql, principal.claims, fn), ERRORS);
}
