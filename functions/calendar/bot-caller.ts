/**
 * A bot's API key on the bot routes (what a voice agent's tool calls or the
 * chat core send): verified as functions/chat does (private.verify_api_key),
 * with the scope the route needs (`calendar.read` to see availability,
 * `calendar.write` to book), and the bot must belong to the key's org; each
 * request takes one from the key's rate-limit bucket (the one its chat turns
 * and searches share). The work then runs as the service role with the key's
 * id as a claim, so the audit log names the key.
 */
import { apiKeyActorClaims, verifyKeyTakingRequest } from '../_shared/api-keys.ts';
import { asServiceRole, type Sql, type TransactionSql, withUserScope } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { mapCalendarErrors } from './errors.ts';

export interface BotCaller {
  apiKeyId: string;
  orgId: string;
  botId: string;
}

export async function authenticateBot(
  sql: Sql,
  req: Request,
  botId: string,
  scope: 'calendar.read' | 'calendar.write',
): Promise<BotCaller> {
  // Taken before anything is checked, so a refused request (a missing scope, an unknown bot) counts too.
  const key = await verifyKeyTakingRequest(sql, req, scope);
  const [bot] = await asServiceRole(sql, (tx) =>
    tx<{ id: string }[]>`select b.id from public.bots b where b.id = ${botId}::uuid and b.org_id = ${key.orgId}::uuid`);
  if (!bot) throw new HttpError(404, 'not_found', 'The bot was not found.');
  return { apiKeyId: key.apiKeyId, orgId: key.orgId, botId };
}

/** Runs `fn` as the service role acting for the key; our SQLSTATEs become HTTP errors. */
export function asBot<T>(sql: Sql, caller: BotCaller, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  return mapCalendarErrors(() => withUserScope(sql, apiKeyActorClaims(caller.apiKeyId), fn), {
    notFound: 'The bot, call or conversation was not found.',
  });
}
