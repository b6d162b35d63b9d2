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
