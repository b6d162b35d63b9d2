import type { JSONValue } from 'postgres';
import { asServiceRole, getSql, type Sql, type TransactionSql } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { HttpError } from '../_shared/errors.ts';
import { createHandler } from '../_shared/handler.ts';
import { json } from '../_shared/http.ts';
import { httpErrorFromPostgres } from '../_shared/pg-errors.ts';
import {
  type CallEvent,
  CallEventParseError,
  type CallProvider,
  parseGenericEvent,
  parseVapiEvent,
  redactVapiBody,
  type SignatureCheck,
  verifyGenericSignature,
  verifyVapiSignature,
  WEBHOOK_ID_HEADER,
} from '../_shared/voice/index.ts';
import { toEventRow } from './event-row.ts';

/**
 * POST /call-events/:org_id/:provider — a voice provider's call events for
 * one org (docs/call-events.md). `provider` is `vapi` (Vapi's server
 * messages, HMAC-signed) or `generic` (our format, Standard Webhooks). The
 * org's secrets for that provider are read and the signature checked in the
 * same transaction that applies the event, so a rotation takes effect at
 * once (no cached secret) and the event costs one transaction; the body is
 * parsed before it opens, so the database never waits on parsing.
 *
 * Answers: 200 `{ received, duplicate, call_id, status, applied_status }`
 * (or `{ received, ignored: true }` for a Vapi message that changes nothing
 * we store); 401 for a missing or wrong signature or a timestamp outside five
 * minutes; 400 for a body that is not a readable event; 413 over 2 MB.
 * Providers retry non-2xx answers, and a re-delivery is a no-op, so every
 * refusal is safe to retry.
 */
export const MAX_EVENT_BYTES = 2 * 1024 * 1024;

const PROVIDERS: readonly CallProvider[] = ['vapi', 'generic'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/iu;

export interface CallEventsDeps {
  sql: () => Sql;
  env?: EnvReader;
  now?: () => number;
}

interface Route {
  orgId: string;
  provider: CallProvider;
}

function matchRoute(method: string, pathname: string): Route {
  const segments = pathname.split('/').filter((segment) => segment !== '');
  const start = segments[0] === 'functions' && segments[1] === 'v1' ? 2 : 0;
  const [name, orgId, provider, ...rest] = segments.slice(start);
  const known = name === 'call-events' && rest.length === 0 && orgId !== undefined && UUID.test(orgId) &&
    (PROVIDERS as readonly string[]).includes(provider ?? '');
  if (!known) {
    throw new HttpError(404, 'not_found', `Nothing is served at ${pathname}; post to /call-events/<org_id>/vapi or /call-events/<org_id>/generic.`);
  }
  if (method !== 'POST') {
    throw new HttpError(405, 'method_not_allowed', `${method} is not supported; use POST.`, { allow: 'POST' });
  }
  return { orgId: orgId.toLowerCase(), provider: provider as CallProvider };
}

async function readBody(req: Request): Promise<string> {
  const declared = Number(req.headers.get('content-length') ?? '0');
  const tooLarge = () => new HttpError(413, 'payload_too_large', `A call event must be at most ${MAX_EVENT_BYTES} bytes.`);
  if (declared > MAX_EVENT_BYTES) throw tooLarge();
  const bytes = new Uint8Array(await req.arrayBuffer());
  if (bytes.byteLength > MAX_EVENT_BYTES) throw tooLarge();
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, 'invalid_body', 'The body is not UTF-8 text.');
  }
}

const SIGNATURE_REFUSALS: Record<Exclude<SignatureCheck, { ok: true }>['reason'], HttpError> = {
  missing_signature: new HttpError(401, 'missing_signature', 'The request carries no signature or timestamp headers.'),
  stale_timestamp: new HttpError(
    401,
    'stale_timestamp',
    'The signed timestamp is not within 5 minutes of our clock; a replayed or delayed request is refused.',
  ),
  bad_signature: new HttpError(401, 'invalid_signature', "The signature does not match this organization's secret."),
};

/** The first passing check over the org's secrets (current, then the one being rotated out), else the last refusal. */
async function verify(route: Route, req: Request, body: string, secrets: string[], nowMs: number): Promise<void> {
  let outcome: SignatureCheck = { ok: false, reason: 'bad_signature' };
  for (const secret of secrets) {
    outcome = route.provider === 'vapi'
      ? verifyVapiSignature(req.headers, body, secret, nowMs)
      : await verifyGenericSignature(req.headers, body, secret, nowMs);
    if (outcome.ok || outcome.reason !== 'bad_signature') break;
  }
  if (secrets.length === 0) {
    // No secret: still say what is missing or stale first, then refuse like a wrong signature (org ids are not probed).
    outcome = route.provider === 'vapi'
      ? verifyVapiSignature(req.headers, body, '', nowMs)
      : { ok: false, reason: req.headers.get(WEBHOOK_ID_HEADER) ? 'bad_signature' : 'missing_signature' };
  }
  if (!outcome.ok) throw SIGNATURE_REFUSALS[outcome.reason];
}

type Parsed = { event: CallEvent | null; payload: unknown } | { error: HttpError };

/** Read before the signature is checked, so no database session waits on parsing; its refusal waits for the signature. */
function parse(route: Route, req: Request, body: string, nowMs: number): Parsed {
  try {
    if (route.provider === 'vapi') {
      return { event: parseVapiEvent(body, new Date(nowMs)), payload: redactVapiBody(body) };
    }
    const event = parseGenericEvent(body, req.headers.get(WEBHOOK_ID_HEADER) ?? '');
    return { event, payload: JSON.parse(body) as unknown };
  } catch (error) {
    if (error instanceof CallEventParseError) return { error: new HttpError(400, 'invalid_event', error.message) };
    throw error;
  }
}

interface Applied {
  duplicate: boolean;
  call_id?: string;
  status?: string;
  applied_status?: boolean;
}

async function secretsFor(tx: TransactionSql, route: Route): Promise<string[]> {
  const [row] = await tx<{ secrets: string[] }[]>`
    select private.call_provider_secrets_for(${route.orgId}::uuid, ${route.provider}) as secrets`;
  return row?.secrets ?? [];
}

export function createCallEventsHandler(deps: CallEventsDeps): (req: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const now = deps.now ?? Date.now;
  return createHandler(async (req) => {
    const route = matchRoute(req.method, new URL(req.url).pathname);
    const body = await readBody(req);
    const nowMs = now();
    const parsed = parse(route, req, body, nowMs);
    const result = await asServiceRole(deps.sql(), async (tx) => {
      await verify(route, req, body, await secretsFor(tx, route), nowMs);
      if ('error' in parsed) throw parsed.error;
      const { event, payload } = parsed;
      if (event === null) return null;
      try {
        const [row] = await tx<{ result: Applied }[]>`
          select private.apply_call_event(${route.orgId}::uuid, ${tx.json(toEventRow(event))}, ${
          tx.json(payload as JSONValue) /* parsed from the body: JSON by construction */
        }) as result`;
        return row.result;
      } catch (error) {
        throw httpErrorFromPostgres(error);
      }
    });
    if (result === null) return json({ received: true, ignored: true });
    return json({ received: true, ...result });
  }, { env });
}

export const handler = createCallEventsHandler({ sql: () => getSql() });
