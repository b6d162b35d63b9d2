/**
 * The calls API for servers holding an API key (a CRM placing and following
 * its org's calls):
 *
 *   GET  /functions/v1/calls                       calls.read   the org's calls, newest first, filtered, cursor-paged (list.ts)
 *   GET  /functions/v1/calls/:id                   calls.read   one call with its transcript (retrieve.ts)
 *   POST /functions/v1/calls                       calls.write  201 a queued outbound call (create.ts)
 *   POST /functions/v1/calls/:id/cancel            calls.write  the cancelled call (cancel.ts)
 *   GET  /functions/v1/calls/campaigns             calls.read   the org's campaigns, newest first, cursor-paged (campaigns/list.ts)
 *   GET  /functions/v1/calls/campaigns/:id         calls.read   one campaign with its calls counted by status (campaigns/retrieve.ts)
 *   POST /functions/v1/calls/campaigns             calls.write  201 a campaign: one queued call per number (campaigns/create.ts)
 *   POST /functions/v1/calls/campaigns/:id/cancel  calls.write  the cancelled campaign, with how many calls it cancelled (campaigns/cancel.ts)
 *
 * API keys only (caller.ts): signed-in users use PostgREST and the RPCs. The
 * gateway does not check tokens here (verify_jwt = false): API keys are not JWTs.
 */
import { getSql, type Sql } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { createHandler } from '../_shared/handler.ts';
import { readQuery } from '../_shared/http.ts';
import { authenticateKey } from './caller.ts';
import { cancelCampaign } from './campaigns/cancel.ts';
import { createCampaign } from './campaigns/create.ts';
import { listCampaigns, listCampaignsQuery } from './campaigns/list.ts';
import { retrieveCampaign } from './campaigns/retrieve.ts';
import { cancelCall } from './cancel.ts';
import { createCall } from './create.ts';
import { listCalls, listQuery } from './list.ts';
import { retrieveCall } from './retrieve.ts';
import { matchRoute } from './router.ts';

export interface CallsDeps {
  sql: () => Sql;
  env?: EnvReader;
}

export function createCallsHandler(deps: CallsDeps): (req: Request) => Promise<Response> {
  return createHandler(async (req) => {
    const url = new URL(req.url);
    const route = matchRoute(req.method, url.pathname);
    const sql = deps.sql();
    switch (route.name) {
      case 'list': {
        const key = await authenticateKey(sql, req, 'calls.read');
        return await listCalls(sql, key, readQuery(url, listQuery));
      }
      case 'retrieve':
        return await retrieveCall(sql, await authenticateKey(sql, req, 'calls.read'), route.id);
      case 'create':
        return await createCall(sql, await authenticateKey(sql, req, 'calls.write'), req);
      case 'cancel':
        return await cancelCall(sql, await authenticateKey(sql, req, 'calls.write'), route.id);
      case 'listCampaigns': {
        const key = await authenticateKey(sql, req, 'calls.read');
        return await listCampaigns(sql, key, readQuery(url, listCampaignsQuery));
      }
      case 'retrieveCampaign':
        return await retrieveCampaign(sql, await authenticateKey(sql, req, 'calls.read'), route.id);
      case 'createCampaign':
        return await createCampaign(sql, await authenticateKey(sql, req, 'calls.write'), req);
      case 'cancelCampaign':
        return await cancelCampaign(sql, await authenticateKey(sql, req, 'calls.write'), route.id);
    }
  }, { env: deps.env ?? processEnv });
}

export const handler = createCallsHandler({ sql: () => getSql() });
