import { getSql, type Sql } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { createHandler } from '../_shared/handler.ts';
import { json } from '../_shared/http.ts';

// A health probe must answer promptly even when the database hangs instead of refusing.
const DATABASE_TIMEOUT_MS = 3000;

export interface HealthDeps {
  sql: () => Sql;
}

export function createHealthHandler(deps: HealthDeps): (req: Request) => Promise<Response> {
  return createHandler(async (req) => {
    // HEAD too: uptime checkers and load balancers often probe with it.
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new HttpError(405, 'method_not_allowed', `${req.method} is not supported; use GET.`, { allow: 'GET, HEAD' });
    }
    const started = performance.now();
    try {
      await withTimeout(deps.sql()`select 1`, DATABASE_TIMEOUT_MS);
    } catch (error) {
      throw new HttpError(503, 'database_unavailable', 'The database is not reachable.', { 'retry-after': '5' }, {
        cause: error,
      });
    }
    const roundTripMs = Math.round((performance.now() - started) * 100) / 100;
    return json(
      { status: 'ok', database: { ok: true, roundTripMs }, time: new Date().toISOString() },
      200,
      { 'cache-control': 'no-store' },
    );
  });
}

async function withTimeout<T>(work: PromiseLike<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const handler = createHealthHandler({ sql: () => getSql() });
