/**
 * The export function: owners ask for an export of all their org's data and
 * download it; the platform produces it in resumable steps (step.ts).
 *
 *   POST /functions/v1/export `{ org_id }`        an owner (JWT) → 202 { export }; 403 below owner,
 *                                                409 export_in_progress; the SQL wakes the first step
 *   POST /functions/v1/export `{ export_id }`     the service role (pg_net: private.request_export_step)
 *   POST /functions/v1/export/step `{ export_id }` the same, by name → 202 { status: running, progress, ... }
 *                                                while tables remain, 200 { status: ready | failed | skipped }
 *   GET  /functions/v1/export/:id                 an owner (JWT) → { export, files: [{ name, url, ... }],
 *                                                links_expire_at }; links (EXPORT_LINK_SECONDS, default 1 hour)
 *                                                only once ready and until the export expires; 404 otherwise
 *   POST /functions/v1/export/expire `{}`         the service role (pg_cron hourly through pg_net:
 *                                                private.request_export_expiry) → 200 { exports: [{ export_id,
 *                                                files_removed, files_remaining }], pending }: removes the files
 *                                                of expired exports through Storage and marks them (expire.ts)
 *
 * verify_jwt is off (supabase/config.toml): pg_net posts to the function's
 * root with the service-role key, which on a hosted project need not be a
 * JWT, and users post there too; every route authenticates its caller here.
 */
import { z } from 'zod';
import type { UserClaims } from '../_shared/auth.ts';
import { requireUser } from '../_shared/auth.ts';
import { getSql, type Sql } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { positiveIntFromEnv } from '../_shared/env-numbers.ts';
import { createHandler } from '../_shared/handler.ts';
import { json, readJson, readOptionalJson } from '../_shared/http.ts';
import { requireServiceRole, serviceRoleOrUser } from '../_shared/service-auth.ts';
import { lazyServiceClient } from '../_shared/service-storage.ts';
import { expireExports } from './expire.ts';
import { exportWithLinks, requestDataExport } from './requests.ts';
import { matchRoute } from './router.ts';
import { DEFAULT_EXPORT_BUDGET, type ExportBudget } from './step.ts';
import { exportStep } from './step-route.ts';
import { type ExportStore, supabaseExportStore } from './store.ts';

export interface ExportDeps {
  sql: () => Sql;
  env?: EnvReader;
  store?: ExportStore;
  budget?: ExportBudget;
}

// Any 8-4-4-4-12 hex id, as Postgres's uuid type accepts.
const createBody = z.object({ org_id: z.guid() });
const stepBody = z.object({ export_id: z.guid() });
// pg_net posts `{}`; nothing else is accepted.
const expireBody = z.object({}).strict();
/** Time one expiry pass spends removing files (waiting on Storage, not CPU; pg_net gives up after 30 s). */
const EXPIRY_BUDGET_MS = 20_000;

export function exportBudgetFromEnv(env: EnvReader): ExportBudget {
  return {
    rows: positiveIntFromEnv(env, 'EXPORT_STEP_ROWS', DEFAULT_EXPORT_BUDGET.rows),
    pageRows: Math.min(
      positiveIntFromEnv(env, 'EXPORT_STEP_ROWS', DEFAULT_EXPORT_BUDGET.rows),
      DEFAULT_EXPORT_BUDGET.pageRows,
    ),
    bytes: DEFAULT_EXPORT_BUDGET.bytes,
    ms: positiveIntFromEnv(env, 'EXPORT_STEP_MS', DEFAULT_EXPORT_BUDGET.ms),
    zipMaxBytes: positiveIntFromEnv(env, 'EXPORT_ZIP_MAX_BYTES', DEFAULT_EXPORT_BUDGET.zipMaxBytes),
  };
}

export function createExportHandler(deps: ExportDeps): (req: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const store = deps.store ?? supabaseExportStore(lazyServiceClient(env));
  const linkSeconds = () => positiveIntFromEnv(env, 'EXPORT_LINK_SECONDS', 3600, 7 * 24 * 3600);

  const step = async (req: Request) => {
    const { export_id: exportId } = await readJson(req, stepBody);
    const result = await exportStep({ sql: deps.sql(), store }, exportId.toLowerCase(), deps.budget ?? exportBudgetFromEnv(env));
    return json({ export_id: exportId, ...result }, result.status === 'running' ? 202 : 200, { 'cache-control': 'no-store' });
  };
  const create = async (req: Request, claims: UserClaims) => {
    const { org_id: orgId } = await readJson(req, createBody);
    return json({ export: await requestDataExport(deps.sql(), claims, orgId) }, 202, { 'cache-control': 'no-store' });
  };

  return createHandler(async (req) => {
    const route = matchRoute(req.method, new URL(req.url).pathname);
    switch (route.name) {
      case 'create': {
        const caller = await serviceRoleOrUser(req, { env });
        return caller.kind === 'service' ? await step(req) : await create(req, caller.claims);
      }
      case 'step':
        await requireServiceRole(req, { env, what: 'run export steps' });
        return await step(req);
      case 'expire': {
        await requireServiceRole(req, { env, what: 'remove expired exports' });
        await readOptionalJson(req, expireBody);
        const summary = await expireExports({ sql: deps.sql(), store }, EXPIRY_BUDGET_MS);
        return json(summary, 200, { 'cache-control': 'no-store' });
      }
      case 'show': {
        const claims = await requireUser(req, { env });
        const view = await exportWithLinks({ sql: deps.sql(), store }, claims, route.exportId, linkSeconds());
        return json(view, 200, { 'cache-control': 'no-store' });
      }
    }
  }, { env });
}

export const handler = createExportHandler({ sql: () => getSql() });
