import postgres from 'postgres';
import type { JwtClaims } from './auth.ts';
import { type EnvReader, processEnv } from './env.ts';
import { HttpError } from './errors.ts';

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

/**
 * A postgres.js client. `prepare: false` because Supabase's transaction pooler
 * (Supavisor) hands each transaction to any server connection, where a named
 * prepared statement from an earlier one may not exist. A function isolate
 * serves few concurrent requests, so a few connections are plenty and keep the
 * pooler's client slots free.
 */
export function createSql(url: string, options: { max?: number } = {}): Sql {
  return postgres(url, {
    prepare: false,
    max: options.max ?? 3,
    idle_timeout: 20,
    connect_timeout: 10,
    onnotice: () => undefined,
  });
}

const clients = new Map<string, Sql>();

/** The isolate's shared client for `SUPABASE_DB_URL`, created on first use and reused across requests. */
export function getSql(env: EnvReader = processEnv): Sql {
  const url = env('SUPABASE_DB_URL');
  if (!url) throw new Error('SUPABASE_DB_URL is not set');
  let sql = clients.get(url);
  if (!sql) {
    sql = createSql(url);
    clients.set(url, sql);
  }
  return sql;
}

/**
 * The only roles a request may run as. A verified token could still carry any
 * `role` claim (e.g. a custom access-token hook), and `set role postgres` must
 * never be one claim away.
 */
const REQUEST_ROLES = ['anon', 'authenticated', 'service_role'] as const;
export type RequestRole = (typeof REQUEST_ROLES)[number];

function isRequestRole(role: string): role is RequestRole {
  return (REQUEST_ROLES as readonly string[]).includes(role);
}

/**
 * Runs `fn` in one transaction as the token's role with its claims visible to
 * `auth.uid()` / `auth.jwt()`, so row-level security decides exactly as it does
 * for PostgREST. Both settings are transaction-local, so nothing leaks to the
 * next user of the pooled connection.
 */
export async function withUserScope<T>(
  sql: Sql,
  claims: JwtClaims,
  fn: (tx: TransactionSql) => Promise<T>,
): Promise<T> {
  const role = claims.role;
  if (!isRequestRole(role)) {
    throw new HttpError(403, 'role_not_allowed', `Requests cannot run as the database role "${role}".`);
  }
  return inTransactionAfter(
    sql,
    (tx) => tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true), set_config('role', ${role}, true)`,
    fn,
  );
}

/**
 * Runs `fn` in one transaction as service_role: the only role the database
 * lets run the platform's definer functions (claims, dispatch, ingestion),
 * which check their own inputs instead of the caller's rights.
 */
export async function asServiceRole<T>(sql: Sql, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  return inTransactionAfter(sql, (tx) => tx`select set_config('role', 'service_role', true)`, fn);
}

/**
 * Runs `fn` in one transaction behind `setup` (the role switch), both sent at
 * once: fn's first query is pipelined behind the setup on the connection
 * instead of waiting a round trip for it. Were the setup to fail, the
 * transaction is aborted and fn's queries fail too, so none runs unscoped.
 */
async function inTransactionAfter<T>(
  sql: Sql,
  setup: (tx: TransactionSql) => postgres.PendingQuery<postgres.Row[]>,
  fn: (tx: TransactionSql) => Promise<T>,
): Promise<T> {
  const result = await sql.begin(async (tx) => {
    const [, value] = await Promise.all([setup(tx).execute(), fn(tx)]);
    return value;
  });
  // postgres.js types the result as UnwrapPromiseArray<T>, which is T itself once `fn` has been awaited.
  return result as T;
}
