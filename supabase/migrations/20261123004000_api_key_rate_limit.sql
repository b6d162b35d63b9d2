-- Setting an API key's chat rate limit.
--
-- api_keys.rate_limit_per_minute (20261123001100) bounds the requests a
-- minute a bot key makes to the chat endpoints, and the README documents it
-- as a setting (default 60, 1 to 10,000), but nothing set it: create_api_key
-- takes no limit and users have no update grant on api_keys, so only SQL by
-- hand could. Admins and up (api_keys.manage) now set it with
-- set_api_key_rate_limit. The update is audited as any change of the row is,
-- and the chat function reads the limit on the key's next request.

create function private.set_api_key_rate_limit(api_key_id uuid, per_minute integer)
returns public.api_keys
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.api_keys;
begin
  if per_minute is null or per_minute not between 1 and 10000 then
    raise exception 'per_minute must be between 1 and 10000' using errcode = 'invalid_parameter_value';
  end if;
  select * into target from public.api_keys k where k.id = set_api_key_rate_limit.api_key_id for update;
  if not found then
    raise exception 'API key not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(target.org_id, 'api_keys.manage');
  if target.revoked_at is not null then
    raise exception 'the API key is revoked' using errcode = 'invalid_parameter_value';
  end if;
  update public.api_keys k set rate_limit_per_minute = set_api_key_rate_limit.per_minute
  where k.id = target.id
  returning * into target;
  return target;
end;
$$;
revoke execute on function private.set_api_key_rate_limit(uuid, integer) from public;

create function public.set_api_key_rate_limit(api_key_id uuid, per_minute integer)
returns public.api_keys
language sql
security invoker
set search_path = ''
as $$
  select * from private.set_api_key_rate_limit(set_api_key_rate_limit.api_key_id, set_api_key_rate_limit.per_minute);
$$;
comment on function public.set_api_key_rate_limit(uuid, integer) is 'Sets how many requests a minute the key may make to the chat endpoints (1 to 10,000; admins and up).';

grant execute on function
  public.set_api_key_rate_limit(uuid, integer),
  private.set_api_key_rate_limit(uuid, integer)
to authenticated;
