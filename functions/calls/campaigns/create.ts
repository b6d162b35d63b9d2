/**
 * POST /functions/v1/calls/campaigns: queues one outbound call per distinct
 * number from one of the key's org's bots through public.create_call_campaign
 * (which normalizes the numbers, removes duplicates, reports the ones that
 * are not phone numbers and schedules every call at the campaign's first
 * slot). 201 with the campaign; a bot of another org is not found (the
 * function looks the bot up in the key's org only), a bot that does not
 * answer on the voice channel is a 422 voice_channel_disabled; the plan's
 * call minutes used up is a 402. With an Idempotency-Key, a retry of the same request
 * answers the first campaign again instead of queueing the list twice.
 */
import { z } from 'zod';
import type { ApiKeyPrincipal } from '../../_shared/api-keys.ts';
import type { Sql } from '../../_shared/db.ts';
import { json, readJson } from '../../_shared/http.ts';
import { answerOnce, idempotencyKeyFrom, replayHeaders } from '../../_shared/idempotency.ts';
import { asKey } from '../caller.ts';
import { mapCreationErrors } from '../creation-errors.ts';
import { scheduledAt } from '../scheduled-at.ts';
import { campaignColumns, type CampaignRow, toApiCampaign } from './representation.ts';

// The limits create_call_campaign enforces: 1 to 1000 numbers (duplicates and
// invalid ones counted), a name of 1 to 100 characters once trimmed.
const MAX_NUMBERS = 1000;
const MAX_NAME_CHARACTERS = 100;

export const createCampaignBody = z.strictObject({
  bot_id: z.guid(),
  // Counted in characters, as Postgres counts them (not UTF-16 units).
  name: z
    .string()
    .trim()
    .refine((name) => name.length > 0 && [...name].length <= MAX_NAME_CHARACTERS, `must have 1 to ${MAX_NAME_CHARACTERS} characters`),
  // Each normalized and checked (E.164) by the database, which reports the ones that are not numbers.
  numbers: z.array(z.string().max(64)).min(1).max(MAX_NUMBERS),
  scheduled_at: scheduledAt.optional(),
  callee_time_zone: z.string().min(1).max(64).optional(),
});

export async function createCampaign(sql: Sql, key: ApiKeyPrincipal, req: Request): Promise<Response> {
  const idempotencyKey = idempotencyKeyFrom(req);
  const body = await readJson(req, createCampaignBody);
  const answer = await mapCreationErrors(
    () =>
      asKey(sql, key, (tx) =>
        answerOnce(tx, key.apiKeyId, idempotencyKey, { route: 'POST /calls/campaigns', body }, async () => {
          const [created] = await tx<{ campaign_id: string }[]>`
            select c.campaign_id
            from public.create_call_campaign(${key.orgId}::uuid, ${body.bot_id}::uuid, ${body.name}, ${body.numbers}::text[],
              ${body.scheduled_at ?? null}::text::timestamptz, ${body.callee_time_zone ?? null}) c`;
          const [campaign] = await tx<CampaignRow[]>`
            select ${campaignColumns(tx)} from public.call_campaigns k
            where k.id = ${created.campaign_id}::uuid and k.org_id = ${key.orgId}::uuid`;
          return { status: 201, body: toApiCampaign(campaign) };
        })),
  );
  return json(answer.body, answer.status, {
    location: `/functions/v1/calls/campaigns/${answer.body.id}`,
    ...replayHeaders(answer),
  });
}
