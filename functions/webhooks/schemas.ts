import { z, type ZodType } from 'zod';
import { HttpError } from '../_shared/errors.ts';
import { readBodyText, readJson } from '../_shared/http.ts';

// Any 8-4-4-4-12 hex id, as Postgres's uuid type accepts; z.uuid() would also demand RFC 4122 version bits.
const id = z.guid();
// The same limits the table's constraints enforce, checked here first for a clearer message.
const url = z.string().min(1).max(2048);
const description = z.string().max(500);
// public.event_types' format; whether a type exists is the database's call (its catalogue, its trigger).
const eventTypes = z.array(z.string().regex(/^[a-z][a-z_]*(\.[a-z][a-z_]*)+$/, 'not an event type name')).max(50);

// Strict objects: a misspelt field (say `eventTypes`) is refused instead of silently ignored.
export const createEndpointBody = z.strictObject({
  org_id: id,
  url,
  description: description.optional(),
  event_types: eventTypes.optional(),
});
export type CreateEndpointBody = z.infer<typeof createEndpointBody>;

export const updateEndpointBody = z
  .strictObject({
    url: url.optional(),
    description: description.optional(),
    event_types: eventTypes.optional(),
    enabled: z.boolean().optional(),
  })
  .refine((body) => Object.keys(body).length > 0, 'send at least one of url, description, event_types, enabled');
export type UpdateEndpointBody = z.infer<typeof updateEndpointBody>;

export const DEFAULT_OVERLAP_HOURS = 24;

export const rotateSecretBody = z.strictObject({
  // Up to 7 days, the limit rotate_webhook_secret enforces.
  overlap_hours: z.number().int().min(0).max(168).optional(),
});
export type RotateSecretBody = z.infer<typeof rotateSecretBody>;

/** A path id: 422 when it is not a uuid, before any query. */
export function parseId(raw: string | undefined, what: string): string {
  const parsed = id.safeParse(raw);
  if (!parsed.success) throw new HttpError(422, 'invalid_request', `The ${what} id must be a UUID.`);
  return parsed.data;
}

/** Like readJson, but an empty body stands for `{}` (every field optional). */
export async function readOptionalJson<T>(req: Request, schema: ZodType<T>): Promise<T> {
  const text = await readBodyText(req);
  // readJson owns the 400/422 wording, so it gets the same text again in a fresh Request.
  return await readJson(new Request(req.url, { method: 'POST', body: text.trim() === '' ? '{}' : text }), schema);
}
