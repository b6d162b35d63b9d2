/**
 * Calling an API-key API over HTTP in tests (the calls, campaigns and
 * documents APIs): requests with the key as a bearer token, and a list read
 * to its end through next_cursor.
 */
import { expect } from 'vitest';

export type KeyApiInit = RequestInit & { key?: string };
export type KeyApi = (path: string, init?: KeyApiInit) => Promise<Response>;

/** Requests to `base` + path, with `key` (when given) as "Authorization: Bearer". */
export function keyApi(base: () => string): KeyApi {
  return (path, init = {}) => {
    const { key, headers, ...rest } = init;
    return fetch(`${base()}${path}`, {
      ...rest,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(headers as Record<string, string> | undefined) },
    });
  };
}

/** Every page of a list answered at `?query`, following next_cursor (at most 20 pages): the ids in order, and the page count. */
export async function allPages(api: KeyApi, query: string, key: string): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const separator = query ? '&' : '';
    const response = await api(`?${query}${cursor ? `${separator}cursor=${encodeURIComponent(cursor)}` : ''}`, { key });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { object: string; data: { id: string }[]; next_cursor: string | null };
    expect(body.object).toBe('list');
    ids.push(...body.data.map((item) => item.id));
    cursor = body.next_cursor;
    pages++;
  } while (cursor && pages < 20);
  return { ids, pages };
}
