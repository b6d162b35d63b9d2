/**
 * The account function: deleting one's account and deleting an org.
 *
 *   DELETE /functions/v1/account                       a signed-in user → 204 (their avatars removed after);
 *                                                      409 sole_owner naming the orgs to transfer or
 *                                                      delete first
 *   DELETE /functions/v1/account/organizations/:id     an owner `{ confirm_name }` → 200 { deleted: true,
 *                                                      files_removed, files_remaining }; 422 name_mismatch,
 *                                                      403 below owner
 *   POST   /functions/v1/account/storage-cleanup       the service role (pg_cron through pg_net): finishes
 *                                                      removing deleted orgs' files and deleted users'
 *                                                      avatars → 200 { orgs, users, pending }
 *
 * verify_jwt is off (supabase/config.toml): the cleanup is called with the
 * service-role key, which on a hosted project need not be a JWT; the user
 * routes verify the user's token here.
 */
import { requireUser } from '../_shared/auth.ts';
import { getSql, type Sql } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { positiveIntFromEnv } from '../_shared/env-numbers.ts';
import { createHandler } from '../_shared/handler.ts';
import { json, readJson } from '../_shared/http.ts';
import { requireServiceRole } from '../_shared/service-auth.ts';
import { lazyServiceClient } from '../_shared/service-storage.ts';
import { deleteAccount } from './delete-account.ts';
import { deleteOrganization, deleteOrganizationBody } from './delete-organization.ts';
import { matchRoute } from './router.ts';
import { cleanUpDeletedFiles } from './storage-cleanup.ts';
import { type FileStore, supabaseFileStore } from './store.ts';

export interface AccountDeps {
  sql: () => Sql;
  env?: EnvReader;
  store?: FileStore;
}

export function createAccountHandler(deps: AccountDeps): (req: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const store = deps.store ?? supabaseFileStore(lazyServiceClient(env));
  // Removing files is waiting on Storage, not CPU; well inside the 150 s a request may take.
  const removalMs = () => positiveIntFromEnv(env, 'ORG_FILES_REMOVAL_MS', 20_000, 120_000);
  return createHandler(async (req) => {
    const route = matchRoute(req.method, new URL(req.url).pathname);
    switch (route.name) {
      case 'deleteAccount':
        await deleteAccount({ sql: deps.sql(), store, removalMs: removalMs() }, await requireUser(req, { env }));
        return new Response(null, { status: 204 });
      case 'deleteOrganization': {
        const claims = await requireUser(req, { env });
        const { confirm_name: confirmName } = await readJson(req, deleteOrganizationBody);
        const result = await deleteOrganization(
          { sql: deps.sql(), store, removalMs: removalMs() },
          claims,
          route.orgId,
          confirmName,
        );
        return json(result, 200, { 'cache-control': 'no-store' });
      }
      case 'storageCleanup': {
        await requireServiceRole(req, { env, what: 'clean up deleted organizations\' files and users\' avatars' });
        return json(await cleanUpDeletedFiles({ sql: deps.sql(), store }, removalMs()), 200, { 'cache-control': 'no-store' });
      }
    }
  }, { env });
}

export const handler = createAccountHandler({ sql: () => getSql() });
