import { getSql, type Sql } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { HttpError } from '../_shared/errors.ts';
import { createHandler } from '../_shared/handler.ts';
import { json } from '../_shared/http.ts';
import { requireServiceRole } from '../_shared/service-auth.ts';
import { dispatch, type DispatchOptions, type DispatchSummary } from './dispatch.ts';

/**
 * POST /functions/v1/webhook-dispatcher: runs one dispatch pass and reports
 * it. Called by pg_cron through pg_net (private.request_webhook_dispatch) with
 * the service-role key; nobody else may, since a pass sends other tenants'
 * data. Any request body is ignored: a pass takes no parameters.
 */
export interface DispatcherDeps {
  sql: () => Sql;
  env?: EnvReader;
  /** The pass itself; replaced in tests of the HTTP layer alone. */
  run?: (options: DispatchOptions) => Promise<DispatchSummary>;
}

export function createDispatcherHandler(deps: DispatcherDeps): (req: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const run = deps.run ?? dispatch;
  return createHandler(async (req) => {
    if (req.method !== 'POST') {
      throw new HttpError(405, 'method_not_allowed', `${req.method} is not supported; use POST.`, { allow: 'POST' });
    }
    // Checked here, not by the gateway (verify_jwt is off for this function): see service-auth.ts.
    await requireServiceRole(req, { env, what: 'run the webhook dispatcher' });
    const summary = await run({
      sql: deps.sql(),
      // Loopback receivers only where the local stack says so; never in a deployed project.
      policy: { allowLoopback: env('WEBHOOK_ALLOW_LOOPBACK') === 'true' },
    });
    return json(summary, 200, { 'cache-control': 'no-store' });
  }, { env });
}

export const handler = createDispatcherHandler({ sql: () => getSql() });
