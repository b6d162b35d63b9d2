/**
 * The webhooks admin API: endpoints are created, changed, rotated, deleted and
 * tested, deliveries replayed. Reads go through PostgREST under RLS; only an
 * endpoint's own URL (what a 201's Location names) is also read here. Writes
 * are here rather than RPCs because a URL has to be checked after DNS
 * resolution (SSRF), which SQL cannot do.
 */
import { requireUser } from '../_shared/auth.ts';
import { getSql, type Sql, type TransactionSql, withUserScope } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { HttpError } from '../_shared/errors.ts';
import { createHandler } from '../_shared/handler.ts';
import { json, readJson } from '../_shared/http.ts';
import { answerOnceForUser, idempotencyKeyFrom, type OnceAnswer, replayHeaders } from '../_shared/idempotency.ts';
import { assertPublicDestination } from '../_shared/ssrf.ts';
import * as ops from './operations.ts';
import { mapPostgresErrors } from '../_shared/pg-errors.ts';
import { matchRoute } from './router.ts';
import { storedAnswer } from './stored-answer.ts';
import {
  createEndpointBody,
  DEFAULT_OVERLAP_HOURS,
  parseId,
  readOptionalJson,
  rotateSecretBody,
  updateEndpointBody,
} from './schemas.ts';

const ENDPOINT_NOT_FOUND = 'The webhook endpoint was not found.';
// Answers carrying a secret must not be kept by any cache between here and the admin.
const NO_STORE = { 'cache-control': 'no-store' };

type CreatedEndpoint = Awaited<ReturnType<typeof ops.createEndpoint>>;

/** The 201 of POST /endpoints, first or replayed: the stored answer keeps the body, so Location is made from it. */
function createdEndpointResponse(answer: OnceAnswer<CreatedEndpoint>): Response {
  return json(answer.body, answer.status, {
    ...NO_STORE,
    location: `/functions/v1/webhooks/endpoints/${answer.body.endpoint.id}`,
    ...replayHeaders(answer),
  });
}

export interface WebhooksDeps {
  sql: () => Sql;
  env?: EnvReader;
  /** DNS resolution for the SSRF check; tests in Node stub it (Deno's resolver cannot be stubbed from outside). */
  resolve?: (hostname: string) => Promise<string[]>;
}

export function createWebhooksHandler(deps: WebhooksDeps): (req: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;

  /** Checks a destination and returns the URL to store: the parsed form, so what is stored is what was checked. */
  const checkedUrl = async (raw: string): Promise<string> => {
    // Loopback and plain http only where a receiver runs on this machine (the local stack).
    const allowLoopback = env('WEBHOOK_ALLOW_LOOPBACK') === 'true';
    return (await assertPublicDestination(raw, { allowLoopback, resolve: deps.resolve })).href;
  };

  return createHandler(async (req) => {
    const claims = await requireUser(req, { env });
    const route = matchRoute(req.method, new URL(req.url).pathname);
    // Each call is one transaction as the caller, so auth.uid(), the SQL permission checks and RLS apply.
    const asCaller = <T>(fn: (tx: TransactionSql) => Promise<T>, notFound?: string): Promise<T> =>
      mapPostgresErrors(() => withUserScope(deps.sql(), claims, fn), {
        forbidden: ops.FORBIDDEN_MESSAGE,
        notFound,
      });

    switch (route.name) {
      case 'createEndpoint': {
        const idempotencyKey = idempotencyKeyFrom(req);
        const body = await readJson(req, createEndpointBody);
        const request = { route: 'POST /webhooks/endpoints', body };
        // Permission before any replay: a stored answer (its secret) goes only to a user who may still manage the
        // org. The replay before the DNS lookup: a retry whose lookup fails this time still gets the endpoint the
        // first request made, not a refusal that would have the client create a second one.
        const stored = await asCaller(async (tx) => {
          await ops.assertCanManageOrg(tx, body.org_id);
          return await storedAnswer<CreatedEndpoint>(tx, body.org_id, idempotencyKey, request);
        });
        if (stored) return createdEndpointResponse(stored);
        // The lookup runs outside any transaction so no connection waits on it.
        const url = await checkedUrl(body.url);
        // The key is claimed in the creating transaction: a refusal rolls it back, a concurrent retry waits on it.
        const created = await asCaller((tx) =>
          answerOnceForUser(tx, body.org_id, idempotencyKey, request, async () => ({
            status: 201,
            body: await ops.createEndpoint(tx, {
              orgId: body.org_id,
              url,
              description: body.description,
              eventTypes: body.event_types,
            }),
          }))
        );
        return createdEndpointResponse(created);
      }
      case 'getEndpoint': {
        // What a 201's Location names. Read under RLS: unknown, another org's and unreadable alike are 404.
        const id = parseId(route.id, 'endpoint');
        const endpoint = await asCaller((tx) => ops.readEndpoint(tx, id));
        if (!endpoint) throw new HttpError(404, 'not_found', ENDPOINT_NOT_FOUND);
        return json({ endpoint });
      }
      case 'updateEndpoint': {
        const id = parseId(route.id, 'endpoint');
        const body = await readJson(req, updateEndpointBody);
        let url: string | undefined;
        if (body.url !== undefined) {
          await asCaller((tx) => ops.assertCanManageEndpoint(tx, id), ENDPOINT_NOT_FOUND);
          url = await checkedUrl(body.url);
        }
        const endpoint = await asCaller(
          (tx) =>
            ops.updateEndpoint(tx, id, {
              url,
              description: body.description,
              eventTypes: body.event_types,
              enabled: body.enabled,
            }),
          ENDPOINT_NOT_FOUND,
        );
        return json({ endpoint });
      }
      case 'rotateSecret': {
        const id = parseId(route.id, 'endpoint');
        const body = await readOptionalJson(req, rotateSecretBody);
        const rotated = await asCaller(
          (tx) => ops.rotateSecret(tx, id, body.overlap_hours ?? DEFAULT_OVERLAP_HOURS),
          ENDPOINT_NOT_FOUND,
        );
        return json(rotated, 200, NO_STORE);
      }
      case 'deleteEndpoint': {
        const id = parseId(route.id, 'endpoint');
        await asCaller((tx) => ops.deleteEndpoint(tx, id), ENDPOINT_NOT_FOUND);
        return new Response(null, { status: 204 });
      }
      case 'sendTest': {
        const id = parseId(route.id, 'endpoint');
        const deliveryId = await asCaller((tx) => ops.sendTestEvent(tx, id), ENDPOINT_NOT_FOUND);
        // Accepted: the dispatcher sends it (and retries) on its own schedule.
        return json({ delivery_id: deliveryId }, 202);
      }
      case 'replayDelivery': {
        const id = parseId(route.id, 'delivery');
        const deliveryId = await asCaller((tx) => ops.replayDelivery(tx, id), 'The webhook delivery was not found.');
        return json({ delivery_id: deliveryId }, 202);
      }
    }
  }, { env });
}

export const handler = createWebhooksHandler({ sql: () => getSql() });
