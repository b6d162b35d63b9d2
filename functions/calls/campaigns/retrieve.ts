/**
 * GET /functions/v1/calls/campaigns/:id: one campaign of the key's org with
 * its calls counted by status (the calls themselves: GET
 * /calls?campaign_id=); a campaign of another org is not found, as an
 * unknown id is.
 */
import type { ApiKeyPrincipal } from '../../_shared/api-keys.ts';
import type { Sql } from '../../_shared/db.ts';
import { json } from '../../_shared/http.ts';
import { asKey } from '../caller.ts';
import { CALL_STATUSES } from '../list.ts';
import { campaignColumns, campaignNotFound, type CampaignRow, toApiCampaign } from './representation.ts';

type CallCounts = Record<(typeof CALL_STATUSES)[number] | 'total', number>;

export async function retrieveCampaign(sql: Sql, key: ApiKeyPrincipal, id: string): Promise<Response> {
  const { campaign, counts } = await asKey(sql, key, async (tx) => {
    const [campaign] = await tx<CampaignRow[]>`
      select ${campaignColumns(tx)} from public.call_campaigns k where k.id = ${id}::uuid and k.org_id = ${key.orgId}::uuid`;
    const counts = campaign
      ? await tx<{ status: string; n: number }[]>`
          select c.status::text as status, count(*)::integer as n
          from public.calls c
          where c.campaign_id = ${id}::uuid and c.org_id = ${key.orgId}::uuid
          group by c.status`
      : [];
    return { campaign, counts };
  });
  if (!campaign) throw campaignNotFound();
  const calls = Object.fromEntries([...CALL_STATUSES, 'total'].map((status) => [status, 0])) as CallCounts;
  for (const { status, n } of counts) {
    calls[status as keyof CallCounts] = n;
    calls.total += n;
  }
  return json({ ...toApiCampaign(campaign), calls });
}
