/**
 * GET /functions/v1/calls/:id: one call of the key's org with its transcript
 * (the segments in order); a call of another org is not found, as an unknown id is.
 */
import type { ApiKeyPrincipal } from '../_shared/api-keys.ts';
import type { Sql } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { json } from '../_shared/http.ts';
import { asKey } from './caller.ts';
import { callColumns, type CallRow, toApiCall } from './representation.ts';

interface SegmentRow {
  seq: number;
  speaker: string;
  text: string;
  start_ms: number;
  end_ms: number;
  stt_ms: number | null;
  llm_ms: number | null;
  tts_ms: number | null;
}

export const callNotFound = () => new HttpError(404, 'not_found', 'The call was not found.');

export async function retrieveCall(sql: Sql, key: ApiKeyPrincipal, id: string): Promise<Response> {
  const { call, segments } = await asKey(sql, key, async (tx) => {
    const [call] = await tx<CallRow[]>`
      select ${callColumns(tx)} from public.calls c where c.id = ${id}::uuid and c.org_id = ${key.orgId}::uuid`;
    const segments = call
      ? await tx<SegmentRow[]>`
          select s.seq, s.speaker, s.text, s.start_ms, s.end_ms, s.stt_ms, s.llm_ms, s.tts_ms
          from public.call_transcript_segments s
          where s.call_id = ${id}::uuid and s.org_id = ${key.orgId}::uuid
          order by s.seq`
      : [];
    return { call, segments };
  });
  if (!call) throw callNotFound();
  return json({ ...toApiCall(call), transcript: segments });
}
