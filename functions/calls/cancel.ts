/**
 * POST /functions/v1/calls/:id/cancel: cancels a queued call of the key's org
 * through public.cancel_call. The call is looked up in the key's org first
 * (the service role may cancel any call): another org's call is not found,
 * as an unknown id is. A call already canceled by a user is answered again
 * by cancel_call (a retry after a lost answer); one that ended otherwise, or
 * may already be ringing, is a 409 `not_cancelable` with cancel_call's reason.
 */
import type { ApiKeyPrincipal } from '../_shared/api-keys.ts';
import type { Sql } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { json } from '../_shared/http.ts';
import { httpErrorFromPostgres, isPostgresError } from '../_shared/pg-errors.ts';
import { asKey } from './caller.ts';
import { callColumns, type CallRow, toApiCall } from './representation.ts';
import { callNotFound } from './retrieve.ts';

export async function cancelCall(sql: Sql, key: ApiKeyPrincipal, id: string): Promise<Response> {
  let call: CallRow | undefined;
  try {
    call = await asKey(sql, key, async (tx) => {
      // Locked, so the call found in the key's org is the one cancelled.
      const [mine] = await tx`select 1 from public.calls c where c.id = ${id}::uuid and c.org_id = ${key.orgId}::uuid for update`;
      if (!mine) return undefined;
      const [cancelled] = await tx<CallRow[]>`select ${callColumns(tx)} from public.cancel_call(${id}::uuid) c`;
      return cancelled;
    });
  } catch (error) {
    if (isPostgresError(error) && error.code === '23514') throw new HttpError(409, 'not_cancelable', error.message);
    throw httpErrorFromPostgres(error, { notFound: 'The call was not found.' });
  }
  if (!call) throw callNotFound();
  return json(toApiCall(call));
}
