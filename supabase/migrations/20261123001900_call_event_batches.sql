-- Call events in batches: the call-events function sends the events that
-- arrived together (functions/_shared/micro-batch.ts) as one statement
-- instead of one statement each, so a batch pays one parse, plan and round
-- trip. Each event is applied exactly as private.apply_call_event applies it
-- alone, in the given order; an error in any aborts the statement, and the
-- function then applies each event on its own.

create function private.apply_call_events(items jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  item jsonb;
  results jsonb := '[]'::jsonb;
begin
  if jsonb_typeof(apply_call_events.items) is distinct from 'array' then
    raise exception 'items must be an array of {org_id, event, payload}' using errcode = 'invalid_parameter_value';
  end if;
  for item in select e.value from jsonb_array_elements(apply_call_events.items) with ordinality as e (value, n) order by e.n loop
    results := results || jsonb_build_array(
      private.apply_call_event((item ->> 'org_id')::uuid, item -> 'event', item -> 'payload'));
  end loop;
  return results;
end;
$$;
comment on function private.apply_call_events(jsonb) is 'Applies [{org_id, event, payload}, ...] in order, each as private.apply_call_event does, and returns their results in the same order; any error aborts the whole statement. Service role.';

revoke execute on function private.apply_call_events(jsonb) from public;
grant execute on function private.apply_call_events(jsonb) to service_role;

-- The end-of-call transcript (`replace`) mostly repeats the live one: keep
-- the segments it repeats (no write, no broadcast), rewrite those that
-- differ, add the new and drop the ones it no longer has, instead of
-- deleting and inserting (and broadcasting) the whole transcript again.
create or replace function private.write_call_transcript(target_call public.calls, segments jsonb, mode text)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  written integer;
begin
  if segments is null or jsonb_typeof(segments) <> 'array' or jsonb_array_length(segments) = 0 then
    return 0;
  end if;
  if coalesce(mode, 'append') = 'replace' then
    with
    incoming as (
      select distinct on (p.seq) p.*
      from (
        select coalesce((s.value ->> 'seq')::integer, (s.ordinality - 1)::integer) as seq, s.ordinality,
          s.value ->> 'speaker' as speaker, s.value ->> 'text' as text,
          (s.value ->> 'start_ms')::integer as start_ms, (s.value ->> 'end_ms')::integer as end_ms,
          (s.value ->> 'stt_ms')::integer as stt_ms, (s.value ->> 'llm_ms')::integer as llm_ms, (s.value ->> 'tts_ms')::integer as tts_ms
        from jsonb_array_elements(segments) with ordinality s
      ) p
      order by p.seq, p.ordinality desc
    ),
    dropped as (
      delete from public.call_transcript_segments t
      where t.call_id = target_call.id and not exists (select 1 from incoming i where i.seq = t.seq)
    )
    insert into public.call_transcript_segments as t (org_id, call_id, seq, speaker, text, start_ms, end_ms, stt_ms, llm_ms, tts_ms)
    select target_call.org_id, target_call.id, i.seq, i.speaker, i.text, i.start_ms, i.end_ms, i.stt_ms, i.llm_ms, i.tts_ms
    from incoming i
    order by i.seq
    on conflict on constraint call_transcript_segments_position do update
      set speaker = excluded.speaker, text = excluded.text, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
          stt_ms = excluded.stt_ms, llm_ms = excluded.llm_ms, tts_ms = excluded.tts_ms
      where (t.speaker, t.text, t.start_ms, t.end_ms, t.stt_ms, t.llm_ms, t.tts_ms)
        is distinct from (excluded.speaker, excluded.text, excluded.start_ms, excluded.end_ms, excluded.stt_ms, excluded.llm_ms, excluded.tts_ms);
    get diagnostics written = row_count;
    update public.calls c set transcript_final = true where c.id = target_call.id and not c.transcript_final;
    return written;
  end if;
  if target_call.transcript_final then
    return 0;
  end if;

  insert into public.call_transcript_segments as t (org_id, call_id, seq, speaker, text, start_ms, end_ms, stt_ms, llm_ms, tts_ms)
  select distinct on (k.seq) target_call.org_id, target_call.id, k.seq, k.speaker, k.text, k.start_ms, k.end_ms, k.stt_ms, k.llm_ms, k.tts_ms
  from (
    select p.*,
      coalesce(p.given_seq, p.matched_seq,
        base.last_seq + (row_number() over (partition by p.given_seq is null and p.matched_seq is null order by p.ordinality))::integer
      ) as seq
    from (
      select (s.value ->> 'seq')::integer as given_seq, s.ordinality,
        s.value ->> 'speaker' as speaker, s.value ->> 'text' as text,
        (s.value ->> 'start_ms')::integer as start_ms, (s.value ->> 'end_ms')::integer as end_ms,
        (s.value ->> 'stt_ms')::integer as stt_ms, (s.value ->> 'llm_ms')::integer as llm_ms, (s.value ->> 'tts_ms')::integer as tts_ms,
        (select min(x.seq) from public.call_transcript_segments x
         where s.value ->> 'seq' is null and x.call_id = target_call.id
           and x.speaker = s.value ->> 'speaker' and x.start_ms = (s.value ->> 'start_ms')::integer) as matched_seq
      from jsonb_array_elements(segments) with ordinality s
    ) p
    cross join (select coalesce(max(x.seq), -1) as last_seq from public.call_transcript_segments x where x.call_id = target_call.id) base
  ) k
  order by k.seq, k.ordinality desc
  on conflict on constraint call_transcript_segments_position do update
    set speaker = excluded.speaker, text = excluded.text, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
        stt_ms = excluded.stt_ms, llm_ms = excluded.llm_ms, tts_ms = excluded.tts_ms
    -- An identical re-delivery writes (and broadcasts) nothing.
    where (t.speaker, t.text, t.start_ms, t.end_ms, t.stt_ms, t.llm_ms, t.tts_ms)
      is distinct from (excluded.speaker, excluded.text, excluded.start_ms, excluded.end_ms, excluded.stt_ms, excluded.llm_ms, excluded.tts_ms);
  get diagnostics written = row_count;
  return written;
end;
$$;
