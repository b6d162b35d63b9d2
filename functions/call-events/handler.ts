import type { JSONValue } from 'postgres';
import { asServiceRole, getSql, type Sql, type TransactionSql } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { HttpError } from '../_shared/errors.ts';
import { createHandler } from '../_shared/handler.ts';
import { createMicroBatcher, type Settled } from '../_shared/micro-batch.ts';
import { json, readBodyBytes } from '../_shared/http.ts';
import { httpErrorFromPostgres } from '../_shared/pg-errors.ts';
import {
  type CallEvent,
  CallEventParseError,
  type CallProvider,
  parseGenericEvent,
  parseVapiEvent,
  redactVapiBody,
  replaceUnstorable,
  type SignatureCheck,
  verifyGenericSignature,
  verifyVapiSignature,
  WEBHOOK_ID_HEADER,
} from '../_shared/voice/index.ts';
import { toEventRow } from './event-row.ts';
import { applyOneByOne } from './one-by-one.ts';

/**
 * POST /call-events/:org_id/:provider — a voice provider's call events for
 * one org (docs/call-events.md). `provider` is `vapi` (Vapi's server
 * messages, HMAC-signed) or `generic` (our format, Standard Webhooks). The
 * org's secrets for that provider are read and the signature checked in the
 * same transaction that applies the event, so a rotation takes effect at
 * once (no cached secret); the body is parsed before it opens, so the
 * database never waits on parsing. Events that arrive while another batch is
 * in the database go together in the next transaction (group commit,
 * _shared/micro-batch.ts): a busy provider pays one transaction for many
 * events, each still verified, deduplicated and applied on its own, and a
 * lone event goes at once.
 *
 * Answers: 200 `{ received, duplicate, call_id, status, applied_status }`
 * (or `{ received, ignored: true }` for a Vapi message that changes nothing
 * we store) with `Server-Timing: applied;dur=<ms>`, the time from the
 * request's arrival to the commit that stored and broadcast the event; 401
 * for a missing or wrong signature or a timestamp outside five minutes; 400
 * for a body that is not a readable event; 413 over 2 MB. A NUL (`\u0000`)
 * in a signed event, which Postgres cannot store, is stored as U+FFFD.
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

const BYTE_ORDER_MARK = '\uFEFF';

async function readBody(req: Request): Promise<string> {
  const bytes = await readBodyBytes(
    req,
    MAX_EVENT_BYTES,
    () => new HttpError(413, 'payload_too_large', `A call event must be at most ${MAX_EVENT_BYTES} bytes.`),
  );
  try {
    // The BOM is kept: the signature covers the bytes as sent, a leading EF BB BF included.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
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
async function verify(route: Route, headers: Headers, body: string, secrets: string[], nowMs: number): Promise<void> {
  let outcome: SignatureCheck = { ok: false, reason: 'bad_signature' };
  for (const secret of secrets) {
    outcome = route.provider === 'vapi'
      ? verifyVapiSignature(headers, body, secret, nowMs)
      : await verifyGenericSignature(headers, body, secret, nowMs);
    if (outcome.ok || outcome.reason !== 'bad_signature') break;
  }
  // No secret: still say what is missing or stale first, then refuse like a wrong signature (org ids are not probed).
  if (secrets.length === 0) outcome = await checkWithoutSecret(route, headers, body, nowMs);
  if (!outcome.ok) throw SIGNATURE_REFUSALS[outcome.reason];
}

/** The checks that need no secret (the signature headers are there, the timestamp is fresh); else bad_signature. */
async function checkWithoutSecret(route: Route, headers: Headers, body: string, nowMs: number): Promise<SignatureCheck> {
  return route.provider === 'vapi'
    ? verifyVapiSignature(headers, body, '', nowMs)
    : await verifyGenericSignature(headers, body, '', nowMs);
}

/**
 * A request without the signature headers, or with a stale timestamp, is
 * refused before its body is parsed or queued for the database: an unsigned
 * flood then costs neither, nor delays the providers' signed events.
 */
async function refuseUnsigned(route: Route, headers: Headers, body: string, nowMs: number): Promise<void> {
  const outcome = await checkWithoutSecret(route, headers, body, nowMs);
  if (!outcome.ok && outcome.reason !== 'bad_signature') throw SIGNATURE_REFUSALS[outcome.reason];
}

type Parsed = { event: CallEvent | null; payload: unknown } | { error: HttpError };

/**
 * Read before the signature is checked, so no database session waits on
 * parsing; its refusal waits for the signature. Whatever the body makes the
 * parsers throw is the sender's input: a 400, never a 500, and an unsigned
 * body still gets its 401 first.
 */
function parse(route: Route, req: Request, signedBody: string, nowMs: number): Parsed {
  const body = signedBody.startsWith(BYTE_ORDER_MARK) ? signedBody.slice(1) : signedBody;
  try {
    if (route.provider === 'vapi') {
      return { event: parseVapiEvent(body, new Date(nowMs)), payload: redactVapiBody(body) };
    }
    const event = parseGenericEvent(body, req.headers.get(WEBHOOK_ID_HEADER) ?? '');
    return { event, payload: JSON.parse(body) as unknown };
  } catch (error) {
    if (error instanceof CallEventParseError) return { error: new HttpError(400, 'invalid_event', error.message) };
    const reason = error instanceof Error ? error.message : String(error);
    return { error: new HttpError(400, 'invalid_event', `The event could not be read: ${reason}`) };
  }
}

interface Applied {
  duplicate: boolean;
  call_id?: string;
  status?: string;
  applied_status?: boolean;
}

/** A request read and parsed, waiting for its turn in a transaction. */
interface Received {
  route: Route;
  headers: Headers;
  body: string;
  nowMs: number;
  parsed: Parsed;
}

/** Null: a Vapi message that changes nothing we store. */
type Outcome = Applied | null;

/**
 * Events that arrive while a batch is in the database wait for it, then go
 * together, up to 32 and 4 MB of bodies (one statement carries them all, and
 * a body may be 2 MB).
 */
const BATCH_LIMITS = { maxItems: 32, maxSize: 4 * 1024 * 1024, sizeOf: (received: Received) => received.body.length };

const secretsKey = (route: Route) => `${route.orgId}:${route.provider}`;

/** Every (org, provider)'s secrets in one statement, keyed by secretsKey. */
async function secretsFor(tx: TransactionSql, routes: Route[]): Promise<Map<string, string[]>> {
  const distinct = [...new Map(routes.map((route) => [secretsKey(route), route])).values()];
  const rows = await tx<{ org_id: string; provider: CallProvider; secrets: string[] }[]>`
    select r.org_id, r.provider, private.call_provider_secrets_for(r.org_id, r.provider) as secrets
    from unnest(${distinct.map((route) => route.orgId)}::uuid[], ${distinct.map((route) => route.provider)}::text[]) r (org_id, provider)`;
  return new Map(rows.map((row) => [secretsKey({ orgId: row.org_id, provider: row.provider }), row.secrets ?? []]));
}

/**
 * The call an event belongs to, as far as the request tells: events of one
 * call keep their order in a batch, and different calls are applied in this
 * key's order, so two isolates' batches lock the calls they share alike.
 */
const callKey = (received: Received, event: CallEvent): string =>
  `${received.route.orgId}:${event.metadata?.callId ?? `${event.provider}:${event.providerCallId ?? ''}`}`;

/** The call a request's event belongs to, or null for a request refused before it names one. */
const receivedCallKey = (received: Received): string | null =>
  'error' in received.parsed || received.parsed.event === null ? null : callKey(received, received.parsed.event);

/**
 * Verifies each request against its org's secrets and applies the verified
 * events, all in one transaction: a refusal is that request's own answer, and
 * the others go on. An event the database refuses aborts the transaction
 * (nothing of the batch stays), and then each request goes again alone, so
 * only its own answer carries the error: one call's events one after another
 * in arrival order (two live transcript lines carry no sequence number, so
 * the order they are stored in is their order), different calls at once.
 */
async function applyBatch(sql: Sql, batch: Received[]): Promise<Settled<Outcome>[]> {
  try {
    return await asServiceRole(sql, async (tx) => {
      const secrets = await secretsFor(tx, batch.map((received) => received.route));
      const settled: Settled<Outcome>[] = [];
      const toApply: { index: number; event: CallEvent; payload: unknown; key: string }[] = [];
      for (const [index, received] of batch.entries()) {
        try {
          const { route, headers, body, nowMs, parsed } = received;
          await verify(route, headers, body, secrets.get(secretsKey(route)) ?? [], nowMs);
          if ('error' in parsed) throw parsed.error;
          if (parsed.event === null) settled[index] = { ok: true, value: null };
          else toApply.push({ index, event: parsed.event, payload: parsed.payload, key: callKey(received, parsed.event) });
        } catch (error) {
          settled[index] = { ok: false, error };
        }
      }
      toApply.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.index - b.index));
      if (toApply.length === 0) return settled;
      // Verified above: a NUL the body carries is replaced only now, so the event is stored rather than refused.
      const [{ results }] = await tx<{ results: Applied[] }[]>`
        select private.apply_call_events(${
        tx.json(toApply.map(({ index, event, payload }) => ({
          org_id: batch[index].route.orgId,
          event: replaceUnstorable(toEventRow(event, batch[index].nowMs)),
          payload: replaceUnstorable(payload) as JSONValue, /* parsed from the body: JSON by construction */
        })))
      }) as results`;
      toApply.forEach(({ index }, at) => {
        settled[index] = { ok: true, value: results[at] };
      });
      return settled;
    });
  } catch (error) {
    if (batch.length === 1) return [{ ok: false, error: httpErrorFromPostgres(error) }];
    return (await applyOneByOne(batch, receivedCallKey, (received) => applyBatch(sql, [received]))).flat();
  }
}

export function createCallEventsHandler(deps: CallEventsDeps): (req: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const now = deps.now ?? Date.now;
  const submit = createMicroBatcher<Received, Outcome>((batch) => applyBatch(deps.sql(), batch), BATCH_LIMITS);
  return createHandler(async (req) => {
    const arrivedAt = performance.now();
    const route = matchRoute(req.method, new URL(req.url).pathname);
    const body = await readBody(req);
    const nowMs = now();
    await refuseUnsigned(route, req.headers, body, nowMs);
    const result = await submit({ route, headers: req.headers, body, nowMs, parsed: parse(route, req, body, nowMs) });
    // From the request's arrival here to the commit that wrote the event and its broadcasts.
    const timing = { 'server-timing': `applied;dur=${(performance.now() - arrivedAt).toFixed(1)}` };
    if (result === null) return json({ received: true, ignored: true }, 200, timing);
    return json({ received: true, ...result }, 200, timing);
  }, { env });
}

export const handler = createCallEventsHandler({ sql: () => getSql() });
