/**
 * What tests set up before placing calls: a bot and an org ready to dial
 * out, and a time zone where calls go out now.
 */
import { type Sql, withUserScope } from '../../functions/_shared/db.ts';
import type { ChatOrg } from './chat-fixtures.ts';

/** A zone where it is now mid-day, so callee quiet hours never push a test call to tomorrow. */
export function middayZone(): string {
  const offset = Math.max(-12, Math.min(14, 13 - new Date().getUTCHours()));
  // Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3.
  return offset === 0 ? 'Etc/UTC' : `Etc/GMT${offset > 0 ? '-' : '+'}${Math.abs(offset)}`;
}

/** The bot's provider assistant and the org's vapi phone number, as an admin sets them. */
export async function outboundSetup(sql: Sql, target: ChatOrg, botId: string, phoneNumberId: string): Promise<void> {
  await sql`update public.bots set voice_assistant_id = ${`asst-${phoneNumberId}`} where id = ${botId}`;
  await withUserScope(sql, target.claims.admin, async (tx) => {
    await tx`select public.create_call_provider_secret(${target.id}, 'vapi')`;
    await tx`select public.set_call_provider_outbound(${target.id}, 'vapi', ${phoneNumberId})`;
  });
}
