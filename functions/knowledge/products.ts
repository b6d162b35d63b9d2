/**
 * POST /functions/v1/knowledge/products/search: the org's catalog searched by
 * public.search_products (text with typos, category with its subcategories,
 * price range, active only by default), for a voice agent's or a server's
 * tool call with an API key holding `catalog.read` (its own org, at the key's
 * rate limit, as the service role with the key as actor), or for a signed-in
 * user with `catalog.read` in `org_id` (as the user, under RLS). Pages by
 * offset as search_products does; `next_offset` is null on the last page.
 */
import { z } from 'zod';
import type { AuthOptions } from '../_shared/auth.ts';
import type { Sql } from '../_shared/db.ts';
import { json, readJson } from '../_shared/http.ts';
import { trimmedText } from '../_shared/text/code-points.ts';
import { asCaller, authenticateCaller, callerOrg, takeUserRateLimit } from './caller.ts';

/** search_products' own bounds. */
const MAX_QUERY_CHARS = 200;
const MAX_MATCH_COUNT = 50;
const MAX_OFFSET = 10000;
const MAX_PRICE = 9_999_999_999.99;

const price = z.number().min(0, 'must not be negative').max(MAX_PRICE);

export const productSearchBody = z
  .strictObject({
    query: trimmedText(MAX_QUERY_CHARS, `has at most ${MAX_QUERY_CHARS} characters`).optional(),
    org_id: z.guid().optional(),
    category_id: z.guid().optional(),
    include_subcategories: z.boolean().default(true),
    min_price: price.optional(),
    max_price: price.optional(),
    active_only: z.boolean().default(true),
    match_count: z.number().int().min(1).max(MAX_MATCH_COUNT).default(10),
    offset: z.number().int().min(0).max(MAX_OFFSET).default(0),
  })
  .refine((body) => body.min_price === undefined || body.max_price === undefined || body.min_price <= body.max_price, {
    message: 'min_price must not exceed max_price',
  });

interface ProductRow {
  id: string;
  category_id: string | null;
  category_name: string | null;
  name: string;
  description: string;
  price: string;
  currency: string;
  stock: number | null;
  sku: string | null;
  url: string | null;
  active: boolean;
  score: number;
}

export async function searchProducts(sql: Sql, req: Request, options: AuthOptions): Promise<Response> {
  const caller = await authenticateCaller(sql, req, options, 'catalog.read');
  const body = await readJson(req, productSearchBody);
  const orgId = await callerOrg(sql, caller, body.org_id, 'catalog.read');
  await takeUserRateLimit(sql, caller, 'catalog_search');
  const nextOffset = body.offset + body.match_count;
  const { rows, more } = await asCaller(
    sql,
    caller,
    async (tx) => {
      const page = (count: number, offset: number) =>
        tx<ProductRow[]>`
          select id, category_id, category_name, name, description, price, currency, stock, sku, url, active, score
          from public.search_products(${orgId}::uuid, ${body.query ?? null}, ${body.category_id ?? null}::uuid,
            ${body.include_subcategories}, ${body.min_price ?? null}::numeric, ${body.max_price ?? null}::numeric,
            ${body.active_only}, ${count}, ${offset})`;
      const rows = await page(body.match_count, body.offset);
      // A full page may be the last: one more row, looked for in the same transaction, says whether another follows
      // (search_products takes at most 50, so the page cannot simply ask for match_count + 1).
      const full = rows.length === body.match_count && nextOffset <= MAX_OFFSET;
      return { rows, more: full && (await page(1, nextOffset)).length > 0 };
    },
    { forbidden: 'You may not read this catalog.', notFound: 'The category was not found.' },
  );
  return json({
    object: 'list',
    data: rows.map((row) => ({ ...row, price: Number(row.price), score: Number(row.score) })),
    next_offset: more ? nextOffset : null,
  });
}
