/**
 * The idempotency key of a create that mirrors an appointment (see
 * EventCreateOptions): every attempt at the same event sends the same key, so
 * a retry after a lost answer finds the event the lost attempt made; an event
 * made anew because the last one (`replaced`) vanished at the provider gets
 * another key, since Google keeps a deleted event's id taken.
 */
import { sha256Hex } from '../sha256.ts';

export async function eventKey(appointmentId: string, replaced: string | null): Promise<string> {
  if (replaced === null) return appointmentId.replaceAll('-', '').toLowerCase();
  return (await sha256Hex(new TextEncoder().encode(`${appointmentId}\n${replaced}`))).slice(0, 32);
}
