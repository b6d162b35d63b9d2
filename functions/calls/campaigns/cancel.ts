/**
 * POST /functions/v1/calls/campaigns/:id/cancel: cancels a campaign of the
 * key's org and its queued calls through public.cancel_call_campaign (calls
 * being dialled, or whose dial's outcome is unknown, are left to the
 * dispatcher). The campaign is looked up in the key's org first (the service
 * role may cancel any campaign): another org's is not found, as an unknown id
 * is. Answers the campaign and how many calls this request canceled (0 when
 * sent again).
 */
import type { ApiKeyPrincipal } from '../../_shared/api-keys.ts';
import type { Sql } from '../../_shared/db.ts';
import { json } from '../../_shared/http.ts';
import { mapPostgresErrors } from '../../_shared/pg-errors.ts';
import { asKey } from '../caller.ts';
import { campaignColumns, campaignNotFound, type CampaignRow, toApiCampaign } from './representation.ts';

export async function cancelCampaign(sql: Sql, key: ApiKeyPrincipal, id: string): Promise<Response> {
  const canceled = await mapPostgresErrors(
    () =>
      asKey(sql, key, async (tx) => {
        // Locked, so the campaign found in the key's org is the one canceled.
        const [mine] = await tx`
          select 1 from public.call_campaigns k where k.id = ${id}::uuid and k.org_id = ${key.orgId}::uuid for update`;
        if (!mine) return undefined;
        const [{ calls_canceled }] = await tx<{ calls_canceled: number }[]>`
          select public.cancel_call_campaign(${id}::uuid) as calls_canceled`;
        const [campaign] = await tx<CampaignRow[]>`
          select ${campaignColumns(tx)} from public.call_campaigns k where k.id = ${id}::uuid and k.org_id = ${key.orgId}::uuid`;
        return { campaign, calls_canceled };
      }),
    { notFound: 'The campaign was not found.' },
  );
  if (!canceled) throw campaignNotFound();
  return json({ ...toApiCampaign(canceled.campaign), calls_canceled: canceled.calls_canceled });
}
