/**
 * What tests set up before placing calls: a bot and an org ready to dial
 * out, and a time zone where calls go out now.
 */
import { asServiceRole, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { type ChatOrg, createApiKey } from './chat-fixtures.ts';

/** A zone where it is now mid-day, so callee quiet hours never push a test call to tomorrow. */
export function middayZone(): string {
  const offset = Math.max(-12, Math.min(14, 13 - new Date().getUTCHours()));
  // Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3.
  return offset === 0 ? 'Etc/UTC' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
}

/** An outbound call from the bot to the number, queued by the org's admin in a zone where it goes out now. */
export async function createOutboundCall(sql: Sql, org: ChatOrg, botId: string, toNumber: string): Promise<string> {
  return withUserScope(sql, org.claims.admin, async (tx) => {
    const [row] = await tx<{ id: string }[]>`
      select id from public.create_outbound_call(${org.id}, ${botId}, ${toNumber}, null, ${middayZone()})`;
    return row.id;
  });
}

/**
 * The org's vapi secret (made by its admin) and the bot's provider assistant
 * and the org's vapi phone number. The two ids live on the platform's shared
 * Vapi account, so only the service role sets them (20261123008400); each
 * belongs to one org, so callers pass ids unique to their test file.
 */
export async function outboundSetup(sql: Sql, target: ChatOrg, botId: string, phoneNumberId: string): Promise<void> {
  await withUserScope(sql, target.claims.admin, (tx) => tx`select public.create_call_provider_secret(${target.id}, 'vapi')`);
  await provisionVoiceIds(sql, target.id, botId, `asst-${phoneNumberId}`, phoneNumberId);
}

/** Sets the bot's assistant id and the org's vapi phone number id as the platform does: as the service role. */
export async function provisionVoiceIds(
  sql: Sql,
  orgId: string,
  botId: string,
  assistantId: string,
  phoneNumberId: string,
): Promise<void> {
  await asServiceRole(sql, async (tx) => {
    await tx`update public.bots set voice_assistant_id = ${assistantId} where id = ${botId}`;
    await tx`select public.set_call_provider_outbound(${orgId}, 'vapi', ${phoneNumberId})`;
  });
}

export interface CallsApiKeys {
  /** calls.read and calls.write in the org. */
  writer: string;
  writerId: string;
  /** calls.read only, in the org. */
  reader: string;
  /** Both scopes, in the org whose listings are paged. */
  lister: string;
  /** Both scopes, in another org. */
  other: string;
}

/**
 * The API keys the calls API tests use, with a limit high enough that the
 * tests never meet it (what they queue is never dialled).
 */
export async function callsApiKeys(sql: Sql, orgs: { org: ChatOrg; listOrg: ChatOrg; other: ChatOrg }): Promise<CallsApiKeys> {
  const writer = await createApiKey(sql, orgs.org, ['calls.read', 'calls.write']);
  const keys = {
    writer: writer.key,
    writerId: writer.id,
    reader: (await createApiKey(sql, orgs.org, ['calls.read'])).key,
    lister: (await createApiKey(sql, orgs.listOrg, ['calls.read', 'calls.write'])).key,
    other: (await createApiKey(sql, orgs.other, ['calls.read', 'calls.write'])).key,
  };
  await sql`update public.api_keys set rate_limit_per_minute = 1000
            where org_id in (${orgs.org.id}, ${orgs.listOrg.id}, ${orgs.other.id})`;
  return keys;
}
