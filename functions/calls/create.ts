/**
 * POST /functions/v1/calls: queues an outbound call from one of the key's
 * org's bots through public.create_outbound_call (which normalizes the
 * number, checks the bot's outbound setup and finds the first slot inside
 * business and callee hours). 201 with the call; a bot of another org is not
 * found (the function looks the bot up in the key's org only), a bot that
 * does not answer on the voice channel is a 422 voice_channel_disabled; the
 * plan's call minutes used up is a 402. With an Idempotency-Key, a retry of
 * the same request answers the first call again instead of placing another.
 */
import { z } from 'zod';
import type { ApiKeyPrincipal } from '../_shared/api-keys.ts';
import type { Sql } from '../_shared/db.ts';
import { json, readJson } from '../_shared/http.ts';
import { answerOnce, idempotencyKeyFrom, replayHeaders } from '../_shared/idempotency.ts';
import { asKey } from './caller.ts';
import { mapCreationErrors } from './creation-errors.ts';
import { callColumns, type CallRow, toApiCall } from './representation.ts';
import { scheduledAt } from './scheduled-at.ts';

export const createCallBody = z.strictObject({
  bot_id: z.guid(),
  // Normalized and checked (E.164) by the database, which words the refusal.
  to_number: z.string().min(1).max(64),
  scheduled_at: scheduledAt.optional(),
  callee_time_zone: z.string().min(1).max(64).optional(),
});

export async function createCall(sql: Sql, key: ApiKeyPrincipal, req: Request): Promise<Response> {
  const idempotencyKey = idempotencyKeyFrom(req);
  const body = await readJson(req, createCallBody);
  const answer = await mapCreationErrors(
    () =>
      asKey(sql, key, (tx) =>
        answerOnce(tx, key.apiKeyId, idempotencyKey, { route: 'POST /calls', body }, async () => {
          const [call] = await tx<CallRow[]>`
            select ${callColumns(tx)}
            from public.create_outbound_call(${key.orgId}::uuid, ${body.bot_id}::uuid, ${body.to_number},
              ${body.scheduled_at ?? null}::text::timestamptz, ${body.callee_time_zone ?? null}) c`;
          return { status: 201, body: toApiCall(call) };
        })),
  );
  return json(answer.body, answer.status, {
    location: `/functions/v1/calls/${answer.body.id}`,
    ...replayHeaders(answer),
  });
}
