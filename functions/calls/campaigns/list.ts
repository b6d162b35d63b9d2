/**
 * GET /functions/v1/calls/campaigns: the key's org's campaigns, newest first
 * (created_at, then id), `limit` 1–100 (default 20), paged by the opaque
 * `next_cursor` (null on the last page), as the calls list is.
 */
import { z } from 'zod';
import type { ApiKeyPrincipal } from '../../_shared/api-keys.ts';
import { decodeCursor, DEFAULT_LIMIT, listPage, pageLimit } from '../../_shared/cursor.ts';
import type { Sql } from '../../_shared/db.ts';
import { json } from '../../_shared/http.ts';
import { asKey } from '../caller.ts';
import { campaignColumns, type CampaignRow, toApiCampaign } from './representation.ts';

export const listCampaignsQuery = z.strictObject({ limit: pageLimit, cursor: z.string() }).partial();

export type ListCampaignsQuery = z.infer<typeof listCampaignsQuery>;

export async function listCampaigns(sql: Sql, key: ApiKeyPrincipal, query: ListCampaignsQuery): Promise<Response> {
  const limit = query.limit ?? DEFAULT_LIMIT;
  const after = query.cursor === undefined ? null : decodeCursor(query.cursor);
  // The cursor's timestamp goes in as text, keeping its microseconds (see the calls list).
  const rows = await asKey(sql, key, (tx) =>
    tx<CampaignRow[]>`
      select ${campaignColumns(tx)}
      from public.call_campaigns k
      where k.org_id = ${key.orgId}::uuid
        ${after ? tx`and (k.created_at, k.id) < (${after.createdAt}::text::timestamptz, ${after.id}::uuid)` : tx``}
      order by k.created_at desc, k.id desc
      limit ${limit + 1}`);
  return json(listPage(rows, limit, toApiCampaign));
}
