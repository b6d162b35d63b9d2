/**
 * The SQL behind each route, run inside withUserScope as the caller: the
 * private.* functions check `webhooks.manage` themselves, so these only pass
 * arguments through and shape results.
 */
import type { TransactionSql } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { isPostgresError } from '../_shared/pg-errors.ts';

/** What an endpoint looks like in responses: the same columns members read through PostgREST. */
export interface EndpointRow {
  id: string;
  org_id: string;
  url: string;
  description: string;
  event_types: string[];
  enabled: boolean;
  disabled_reason: string | null;
  disabled_at: Date | null;
  failing_since: Date | null;
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
}

// Listed rather than `*`, so a column added to the table later is not published here by accident.
const endpointColumns = (tx: TransactionSql) =>
  tx`id, org_id, url, description, event_types, enabled, disabled_reason, disabled_at, failing_since, created_by, created_at, updated_at`;

export const FORBIDDEN_MESSAGE = 'You need the webhooks.manage permission in this organization.';
const forbidden = () => new HttpError(403, 'forbidden', FORBIDDEN_MESSAGE);

async function canManage(tx: TransactionSql, orgId: string): Promise<boolean> {
  const [row] = await tx<{ allowed: boolean }[]>`
    select exists (select 1 from public.my_permissions(${orgId}) p where p = 'webhooks.manage') as allowed`;
  return row.allowed;
}

/**
 * 403 unless the caller may manage webhooks in the org. Asked before a URL's
 * DNS lookup, so callers without the permission learn nothing about what a
 * name resolves to and cost no lookups; the SQL function checks again.
 */
export async function assertCanManageOrg(tx: TransactionSql, orgId: string): Promise<void> {
  if (!(await canManage(tx, orgId))) throw forbidden();
}

/**
 * The same, for an existing endpoint: 404 or 403 exactly as the SQL functions would answer. Another org's
 * endpoint is 404 like a missing one (20261123008500), so its id is not confirmed to exist.
 */
export async function assertCanManageEndpoint(tx: TransactionSql, endpointId: string): Promise<void> {
  const [visible] = await tx<{ org_id: string }[]>`select org_id from public.webhook_endpoints where id = ${endpointId}`;
  if (visible) {
    if (!(await canManage(tx, visible.org_id))) throw forbidden();
    return;
  }
  // Invisible under RLS: missing or another org's (404), or of the caller's org, which a viewer cannot read (403).
  // Only the definer can tell which, so ask it with an all-null (no-op) update; it raises before touching anything
  // unless the caller did become an admin in between, in which case the no-op update is harmless.
  await tx`select from private.update_webhook_endpoint(${endpointId}, null, null, null, null)`;
}

/** The endpoint as the caller reads it under RLS (never its secrets); undefined when the caller cannot see it. */
export async function readEndpoint(tx: TransactionSql, endpointId: string): Promise<EndpointRow | undefined> {
  const [endpoint] = await tx<EndpointRow[]>`
    select ${endpointColumns(tx)} from public.webhook_endpoints where id = ${endpointId}`;
  return endpoint;
}

export async function createEndpoint(
  tx: TransactionSql,
  input: { orgId: string; url: string; description?: string; eventTypes?: string[] },
): Promise<{ endpoint: EndpointRow; secret: string }> {
  const [created] = await tx<{ endpoint_id: string; secret: string }[]>`
    select endpoint_id, secret
    from private.create_webhook_endpoint(${input.orgId}, ${input.url}, ${input.description ?? null},
                                         ${input.eventTypes ?? null}::text[])`;
  // A second statement: rows a function inserts are not visible to the statement that called it.
  const [endpoint] = await tx<EndpointRow[]>`
    select ${endpointColumns(tx)} from public.webhook_endpoints where id = ${created.endpoint_id}`;
  return { endpoint, secret: created.secret };
}

export async function updateEndpoint(
  tx: TransactionSql,
  endpointId: string,
  changes: { url?: string; description?: string; eventTypes?: string[]; enabled?: boolean },
): Promise<EndpointRow> {
  // In FROM, so the function runs once (`(f()).*` in the select list would run it once per column).
  const [endpoint] = await tx<EndpointRow[]>`
    select ${endpointColumns(tx)}
    from private.update_webhook_endpoint(${endpointId}, ${changes.url ?? null}, ${changes.description ?? null},
                                         ${changes.eventTypes ?? null}::text[], ${changes.enabled ?? null}::boolean)`;
  return endpoint;
}

export async function rotateSecret(
  tx: TransactionSql,
  endpointId: string,
  overlapHours: number,
): Promise<{ secret: string; previous_secret_valid_until: Date | null }> {
  // previous_secret_valid_until is null when there was no earlier live secret.
  const [rotated] = await tx<{ secret: string; previous_secret_valid_until: Date | null }[]>`
    select secret, previous_secret_valid_until
    from private.rotate_webhook_secret(${endpointId}, make_interval(hours => ${overlapHours}::int))`;
  return rotated;
}

export async function deleteEndpoint(tx: TransactionSql, endpointId: string): Promise<void> {
  await tx`select from private.delete_webhook_endpoint(${endpointId})`;
}

/**
 * private.allow_manual_webhook_send's refusals (20261123009200), whose messages are ours: PT429 when the org's
 * tests or replays a minute are spent (detail: the seconds to wait), PT409 when the endpoint's queue is full.
 */
function manualSendRefusal(error: unknown): HttpError | undefined {
  if (!isPostgresError(error)) return undefined;
  if (error.code === 'PT429') {
    const wait = error.detail && /^[0-9]+$/.test(error.detail) ? error.detail : '60';
    return new HttpError(429, 'rate_limited', error.message, { 'retry-after': wait });
  }
  if (error.code === 'PT409') return new HttpError(409, 'endpoint_backlog', error.message);
  return undefined;
}

export async function sendTestEvent(tx: TransactionSql, endpointId: string): Promise<string> {
  try {
    const [row] = await tx<{ delivery_id: string }[]>`select private.send_test_webhook(${endpointId}) as delivery_id`;
    return row.delivery_id;
  } catch (error) {
    throw manualSendRefusal(error) ?? error;
  }
}

export const OWNER_ONLY_REPLAY_MESSAGE =
  'Only owners may replay this delivery: its event (an export) is readable only by owners.';

export const ADMIN_ONLY_REPLAY_MESSAGE =
  'Only admins and owners may replay this delivery: its event (an invoice) is readable only with billing.read.';

/**
 * The details marking replay_webhook_delivery's refusal of an event the caller may not read: owner_only_event
 * for export.* (20261123005500), admin_only_event for invoice.* (20261123006800).
 */
const RESTRICTED_EVENT_MESSAGES: ReadonlyMap<string, string> = new Map([
  ['owner_only_event', OWNER_ONLY_REPLAY_MESSAGE],
  ['admin_only_event', ADMIN_ONLY_REPLAY_MESSAGE],
]);

export async function replayDelivery(tx: TransactionSql, deliveryId: string): Promise<string> {
  try {
    const [row] = await tx<{ delivery_id: string }[]>`select private.replay_webhook_delivery(${deliveryId}) as delivery_id`;
    return row.delivery_id;
  } catch (error) {
    // The same 42501 as a missing webhooks.manage, whose wording the handler replaces; say which rule it is.
    const restricted = isPostgresError(error) && error.code === '42501' && error.detail
      ? RESTRICTED_EVENT_MESSAGES.get(error.detail)
      : undefined;
    if (restricted) throw new HttpError(403, 'forbidden', restricted);
    throw manualSendRefusal(error) ?? error;
  }
}
