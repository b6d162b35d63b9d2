-- A calendar connect whose code exchange failed in a way worth retrying keeps its sign-in link usable.
--
-- The callback uses the OAuth state (private.consume_calendar_oauth_state, committed on its own) before it
-- exchanges the code. When the provider's token endpoint throttled (503 "try again in N s", with Retry-After),
-- could not be reached or failed (502 "try again"), loading the same callback again, as told, answered 400
-- state_used, although the provider never redeemed the code and a retry would have worked.
--
-- The callback now gives such a state back. Consuming in the transaction that parks the tokens instead would hold
-- the state's row lock across the provider's answer (three attempts of up to 10 s each and the waits between), keeping a
-- connection busy for a browser. Giving back keeps the single use: while one callback holds the state, a
-- concurrent one still hears state_used and never exchanges the code, and a state is given back only by the
-- callback that marked it (its used_at, the now() of the transaction that consumed it), only while unexpired.
-- An invalid_grant (the code is spent or wrong) or any other refusal keeps it used. Were the provider to have
-- redeemed the code after all (an answer lost to a timeout), the retry hears invalid_grant (400 code_rejected)
-- and the provider revokes what it issued for the replayed code (RFC 6749 §4.1.2).
--
-- The purge is unchanged: begin_calendar_connection deletes states by expires_at only, and a state is given back
-- only before it expires.

create function private.give_back_calendar_oauth_state(jti uuid, used_at timestamptz)
returns boolean
language sql
security definer
set search_path = ''
as $$
  with given_back as (
    update private.calendar_oauth_states s set used_at = null
    where s.jti = give_back_calendar_oauth_state.jti
      and s.used_at = give_back_calendar_oauth_state.used_at
      and s.expires_at > pg_catalog.now()
    returning s.jti
  )
  select exists (select 1 from given_back);
$$;
comment on function private.give_back_calendar_oauth_state(uuid, timestamptz) is 'Makes a used OAuth state usable again after a code exchange the provider did not carry out (throttled, unreachable, 5xx): only while the state is unexpired and still marked used at used_at (the now() of the transaction that consumed it). True when given back. Service role.';

revoke execute on function private.give_back_calendar_oauth_state(uuid, timestamptz) from public, anon, authenticated, service_role;
grant execute on function private.give_back_calendar_oauth_state(uuid, timestamptz) to service_role;
