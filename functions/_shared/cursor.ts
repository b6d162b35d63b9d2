/**
 * Paging of the API lists (calls, campaigns, documents), newest first: the
 * page size and the keyset cursor, base64url of `<created_at to the
 * microsecond>|<id>` of the last row on a page. Opaque to clients; anything
 * that does not decode to exactly that shape is a 422, never a query.
 */
import { z } from 'zod';
import { HttpError } from './errors.ts';

const MAX_LIMIT = 100;
const limitMessage = `must be a whole number from 1 to ${MAX_LIMIT}`;

/** The `limit` query parameter: 1 to 100 (the lists default to 20). */
export const pageLimit = z
  .string()
  .regex(/^[0-9]{1,3}$/, limitMessage)
  .transform(Number)
  .pipe(z.number().min(1, limitMessage).max(MAX_LIMIT, limitMessage));

export const DEFAULT_LIMIT = 20;

export interface CursorPosition {
  createdAt: string;
  id: string;
}

const BASE64URL = /^[A-Za-z0-9_-]{1,200}$/;
const POSITION = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)\|([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

export function encodeCursor(position: CursorPosition): string {
  const bytes = new TextEncoder().encode(`${position.createdAt}|${position.id}`);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const invalidCursor = () =>
  new HttpError(422, 'invalid_request', 'Invalid query: cursor: not a cursor this API returned; send next_cursor unchanged.');

export function decodeCursor(cursor: string): CursorPosition {
  if (!BASE64URL.test(cursor)) throw invalidCursor();
  let text: string;
  try {
    text = atob(cursor.replace(/-/g, '+').replace(/_/g, '/'));
  } catch {
    throw invalidCursor();
  }
  const match = POSITION.exec(text);
  if (!match) throw invalidCursor();
  const [, createdAt, id] = match;
  // A calendar date that does not exist (month 13, Feb 30) would round-trip differently.
  const millis = Date.parse(createdAt.slice(0, 23) + 'Z');
  if (Number.isNaN(millis) || new Date(millis).toISOString().slice(0, 23) !== createdAt.slice(0, 23)) throw invalidCursor();
  return { createdAt, id };
}

/** A row of a list: its id and created_at to the microsecond (UTC), what the cursor holds. */
export interface PagedRow {
  id: string;
  created_at_exact: string;
}

/**
 * A list's answer from up to `limit + 1` rows, newest first: `limit` of them
 * shown, and a cursor after the last when a further row exists.
 */
export function listPage<R extends PagedRow, T>(rows: R[], limit: number, show: (row: R) => T) {
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    object: 'list' as const,
    data: page.map(show),
    next_cursor: rows.length > limit && last ? encodeCursor({ createdAt: last.created_at_exact, id: last.id }) : null,
  };
}

const timestamp = z.iso.datetime({ offset: true });

/** The creation window filters (ISO 8601 with an offset): created_after < created_at < created_before. */
export const createdWindow = { created_after: timestamp, created_before: timestamp };

/** For `.refine` on a list's query: the window is not empty. */
export const createdWindowInOrder = [
  (query: { created_after?: string; created_before?: string }) =>
    !query.created_after || !query.created_before || Date.parse(query.created_after) < Date.parse(query.created_before),
  { message: 'created_after must be before created_before' },
] as const;
