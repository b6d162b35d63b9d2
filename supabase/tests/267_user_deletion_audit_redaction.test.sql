-- 20261123009400: deleting a user (delete_user, or the auth.users row
-- directly) redacts the audit rows of the invitations they accepted and the
-- calendar connections they made, in every org, including the rows written
-- later (the revocation pass deleting the connection); the chains still
-- verify and other people's rows keep their values.
begin;
create extension if not exists pgtap with schema extensions;

select plan(45);

select tests.remember('owner', tests.create_user('owner@redact267.test'));
select tests.remember('joiner', tests.create_user('joiner@redact267.test'));
select tests.remember('joiner2', tests.create_user('joiner2@redact267.test'));
select tests.remember('leaver', tests.create_user('leaver@redact267.test'));
select tests.remember('keeper', tests.create_user('keeper@redact267.test'));
select tests.remember('org', tests.create_org('redact267-org', tests.fx('owner')));
select tests.remember('org2', tests.create_org('redact267-org2', tests.fx('owner')));

-- Invites as the owner and accepts as the invitee; the invitation's id.
create function pg_temp.join(org text, email text, joiner text) returns uuid language plpgsql as $$
declare
  token text;
  invitation uuid;
begin
  perform tests.act_as('owner');
  select i.id, i.token into strict invitation, token from public.invite_member(tests.fx(org), email, 'member') i;
  perform tests.act_as(joiner);
  perform public.accept_invitation(token);
  perform tests.act_as('postgres');
  return invitation;
end;
$$;
grant execute on function pg_temp.join(text, text, text) to public;

-- A connected Google calendar made by the given user, with a token row, as a connect leaves it (262).
create function pg_temp.connection(org text, who text, email text) returns uuid language plpgsql as $$
declare
  id uuid;
begin
  insert into public.calendar_connections (org_id, provider, account_email, account_subject, external_calendar_id, connected_by)
  values (tests.fx(org), 'google', email, 'sub-' || email, 'primary', tests.fx(who))
  returning calendar_connections.id into id;
  insert into private.calendar_tokens (connection_id, ciphertext) values (id, 'v1.sealed-' || email);
  return id;
end;
$$;

-- Audit rows, of any org, whose text holds the string anywhere.
create function pg_temp.mentions(needle text) returns int language sql as $$
  select count(*)::int from public.audit_log a where strpos(to_jsonb(a)::text, needle) > 0
$$;

-- A record's audit rows: 'rows/redacted', a redacted row counting only with its values and salt gone.
create function pg_temp.redaction(org text, table_name text, record text) returns text language sql as $$
  select count(*) || '/' || count(*) filter (
    where a.redacted_at is not null and a.old_values is null and a.new_values is null and a.values_salt is null
      and a.values_hash is not null)
  from public.audit_log a
  where a.org_id = tests.fx(org) and a.table_name = redaction.table_name and a.record_id = tests.fx(record)::text
$$;

-- What a commit does: the deferred redaction runs.
create function pg_temp.commit_redactions() returns void language plpgsql as $$
begin
  set constraints private.audit_redaction_requests_redact immediate;
  set constraints private.audit_redaction_requests_redact deferred;
end;
$$;

create function pg_temp.chain_valid(org text) returns boolean language plpgsql as $$
declare
  answer boolean;
begin
  perform tests.act_as('service_role');
  select c.valid and c.rows_checked = (select count(*) from public.audit_log a where a.org_id = tests.fx(org))
  into answer from public.verify_audit_chain(tests.fx(org)) c;
  perform tests.act_as('postgres');
  return answer;
end;
$$;
grant execute on function pg_temp.chain_valid(text) to public;

select tests.remember('inv_joiner', pg_temp.join('org', 'joiner@redact267.test', 'joiner'));
select tests.remember('inv_joiner_org2', pg_temp.join('org2', 'joiner@redact267.test', 'joiner'));
select tests.remember('inv_joiner2', pg_temp.join('org', 'joiner2@redact267.test', 'joiner2'));
select tests.remember('inv_leaver', pg_temp.join('org', 'leaver@redact267.test', 'leaver'));
select tests.remember('inv_keeper', pg_temp.join('org', 'keeper@redact267.test', 'keeper'));
select tests.remember('conn_joiner', pg_temp.connection('org', 'joiner', 'joiner.cal@redact267.test'));
select tests.remember('conn_joiner2', pg_temp.connection('org', 'joiner2', 'joiner2.cal@redact267.test'));
select tests.remember('conn_leaver', pg_temp.connection('org', 'leaver', 'leaver.cal@redact267.test'));
select tests.remember('conn_keeper', pg_temp.connection('org', 'keeper', 'keeper.cal@redact267.test'));

select ok(
  pg_temp.mentions('joiner@redact267.test') >= 2 and pg_temp.mentions('joiner.cal@redact267.test') >= 1
    and pg_temp.mentions('joiner2@redact267.test') >= 1 and pg_temp.mentions('joiner2.cal@redact267.test') >= 1,
  'fixture: the invitations'' and connections'' audit rows hold the addresses'
);

-- ---------------------------------------------------------------------------
-- 1. delete_user
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select is(private.delete_user(tests.fx('joiner')), true, 'delete_user deletes the user');
select tests.act_as('postgres');
select ok(pg_temp.mentions('joiner@redact267.test') > 0, 'until the commit the rows keep their values');
select pg_temp.commit_redactions();

select is(pg_temp.mentions('joiner@redact267.test'), 0, 'delete_user: their e-mail is in no audit row any more');
select is(pg_temp.mentions('joiner.cal@redact267.test'), 0, 'delete_user: nor their calendar account');
select ok(pg_temp.redaction('org', 'invitations', 'inv_joiner') ~ '^([1-9][0-9]*)/\1$',
  'delete_user: every row of their invitation is redacted (values and salt gone, values_hash kept)');
select ok(pg_temp.redaction('org2', 'invitations', 'inv_joiner_org2') ~ '^([1-9][0-9]*)/\1$',
  'delete_user: in every org they joined');
select ok(pg_temp.redaction('org', 'calendar_connections', 'conn_joiner') ~ '^([1-9][0-9]*)/\1$',
  'delete_user: every row of their connection is redacted');
select ok(exists (
  select 1 from public.audit_log a
  where a.org_id = tests.fx('org') and a.table_name = 'audit_log' and a.redacted_at is null
    and (a.new_values ->> 'redacted_rows')::int > 0
    and a.new_values -> 'records' @> jsonb_build_array(
      jsonb_build_object('table_name', 'invitations', 'record_id', tests.fx('inv_joiner')::text),
      jsonb_build_object('table_name', 'calendar_connections', 'record_id', tests.fx('conn_joiner')::text))
), 'delete_user: a redaction record names the records and counts the rows');
select is(pg_temp.chain_valid('org'), true, 'delete_user: the org''s chain verifies');
select is(pg_temp.chain_valid('org2'), true, 'delete_user: the other org''s chain verifies');
select is(pg_temp.redaction('org', 'invitations', 'inv_keeper') ~ '/0$', true,
  'another member''s invitation rows are untouched');
select ok(pg_temp.mentions('keeper@redact267.test') > 0 and pg_temp.mentions('keeper.cal@redact267.test') > 0,
  'and keep their addresses');
select is(pg_temp.redaction('org', 'calendar_connections', 'conn_keeper') ~ '/0$', true,
  'another member''s connection rows are untouched');

-- The revocation pass deletes the connection after its connector is gone.
select tests.act_as('service_role');
select is(private.finish_calendar_grant_revocation(tests.fx('conn_joiner'), null), 'deleted',
  'the revocation pass deletes the deleted user''s connection');
select tests.act_as('postgres');
select ok(exists (
  select 1 from public.audit_log a
  where a.table_name = 'calendar_connections' and a.record_id = tests.fx('conn_joiner')::text and a.action = 'delete'
    and a.redacted_at is null and a.old_values ->> 'account_email' = 'joiner.cal@redact267.test'
), 'until the commit its delete row holds the account');
select pg_temp.commit_redactions();
select is(pg_temp.mentions('joiner.cal@redact267.test'), 0, 'the pass: the delete row of the connection is redacted at the commit');
select ok(pg_temp.redaction('org', 'calendar_connections', 'conn_joiner') ~ '^([1-9][0-9]*)/\1$',
  'the pass: every row of the connection is redacted');
select is(pg_temp.chain_valid('org'), true, 'the pass: the chain verifies');

-- ---------------------------------------------------------------------------
-- 2. The Auth admin API: the auth.users row deleted directly
-- ---------------------------------------------------------------------------

-- As the Auth server does, with its own role (here the test's).
select lives_ok($$delete from auth.users where id = tests.fx('joiner2')$$, 'the auth.users row is deleted directly');
select pg_temp.commit_redactions();
select is(pg_temp.mentions('joiner2@redact267.test'), 0, 'auth.users delete: their e-mail is in no audit row any more');
select is(pg_temp.mentions('joiner2.cal@redact267.test'), 0, 'auth.users delete: nor their calendar account');
select ok(pg_temp.redaction('org', 'invitations', 'inv_joiner2') ~ '^([1-9][0-9]*)/\1$',
  'auth.users delete: every row of their invitation is redacted');
select tests.act_as('service_role');
select is(private.finish_calendar_grant_revocation(tests.fx('conn_joiner2'), 'provider unreachable'), 'pending',
  'a failed attempt of the pass');
select tests.act_as('postgres');
update private.calendar_grant_revocations set attempts = 5 where connection_id = tests.fx('conn_joiner2');
select tests.act_as('service_role');
select is(private.finish_calendar_grant_revocation(tests.fx('conn_joiner2'), 'provider unreachable'), 'given_up',
  'the pass gives up: status_reason updated, connection deleted');
select tests.act_as('postgres');
select pg_temp.commit_redactions();
select is(pg_temp.mentions('joiner2.cal@redact267.test'), 0, 'the pass: its update and delete rows are redacted');
select ok(pg_temp.redaction('org', 'calendar_connections', 'conn_joiner2') ~ '^([1-9][0-9]*)/\1$',
  'the pass: every row of the connection is redacted');
select is(pg_temp.chain_valid('org'), true, 'auth.users delete: the chain verifies');

-- ---------------------------------------------------------------------------
-- 3. delete_account, the pass, then delete_user
-- ---------------------------------------------------------------------------

select tests.act_as('leaver');
select lives_ok($$select public.delete_account()$$, 'the leaver asks for their account to be deleted');
select tests.act_as('service_role');
select is(private.finish_calendar_grant_revocation(tests.fx('conn_leaver'), null), 'deleted',
  'the pass deletes their connection while the user still exists');
select tests.act_as('postgres');
select pg_temp.commit_redactions();
select ok(pg_temp.mentions('leaver.cal@redact267.test') > 0, 'a leaver who still exists keeps their rows');
select tests.act_as('service_role');
select is(private.delete_user(tests.fx('leaver')), true, 'then delete_user');
select tests.act_as('postgres');
select pg_temp.commit_redactions();
select is(pg_temp.mentions('leaver@redact267.test') + pg_temp.mentions('leaver.cal@redact267.test'), 0,
  'their invitation and the connection deleted before are redacted, found by its audit rows');
select is(pg_temp.chain_valid('org'), true, 'the chain verifies');

-- ---------------------------------------------------------------------------
-- 4. Who may redact
-- ---------------------------------------------------------------------------

select set_config('private.audit_redaction_records', tests.fx('org')::text, true);
select throws_ok($$update public.audit_log set old_values = null, new_values = null, values_salt = null, redacted_at = now()
  where org_id = tests.fx('org') and table_name = 'invitations' and record_id = tests.fx('inv_keeper')::text$$,
  '42501', null, 'with the flag, a record without a request cannot be redacted');
select set_config('private.audit_redaction_records', '', true);
select tests.act_as('owner');
select throws_ok($$select private.redact_audit_records(tests.fx('org'), 'invitations', array[tests.fx('inv_keeper')::text])$$,
  '42501', null, 'an owner cannot ask for a redaction');
select tests.act_as('service_role');
select throws_ok($$select private.redact_audit_records(tests.fx('org'), 'audit_log', array['x'])$$,
  '22023', null, 'redaction records cannot be redacted');
select throws_ok($$select private.redact_audit_records(gen_random_uuid(), 'invitations', array['x'])$$,
  '22023', null, 'an org that does not exist is refused');
select results_eq(
  $$select redacted_rows > 0, kept_rows from private.redact_audit_records(tests.fx('org'), 'invitations', array[tests.fx('inv_keeper')::text])$$,
  $$values (true, 0::bigint)$$,
  'the service role redacts a record''s rows'
);
select tests.act_as('postgres');
select is(pg_temp.mentions('keeper@redact267.test'), 0, 'its rows are redacted');
select is(pg_temp.chain_valid('org'), true, 'and the chain verifies');

-- ---------------------------------------------------------------------------
-- 5. A connection another member took over keeps its history
-- ---------------------------------------------------------------------------

-- Alice connects the team calendar, Bob re-authorises it (the row is updated in
-- place, connected_by Bob), disconnects it and the pass deletes it; then
-- Alice's account goes: the rows of Bob's actions are not hers to erase.
select tests.remember('alice', tests.create_user('alice@redact267.test'));
select tests.remember('bob', tests.create_user('bob@redact267.test'));
select tests.remember('org3', tests.create_org('redact267-org3', tests.fx('owner')));
select tests.add_member(tests.fx('org3'), tests.fx('alice'), 'admin');
select tests.add_member(tests.fx('org3'), tests.fx('bob'), 'admin');
select tests.act_as('service_role');
select tests.remember('team', private.save_calendar_connection(tests.fx('org3'), tests.fx('alice'), null, 'google',
  'team@redact267.test', 'primary', '{}', 'v1.team-a', now() + interval '1 hour', 'sub-team267'));
select is(private.save_calendar_connection(tests.fx('org3'), tests.fx('bob'), null, 'google',
  'team@redact267.test', 'primary', '{}', 'v1.team-b', now() + interval '1 hour', 'sub-team267'), tests.fx('team'),
  'a reconnect by another member updates the connection in place');
select tests.act_as('bob');
select lives_ok($$select * from public.disconnect_calendar(tests.fx('team'))$$, 'the new connector disconnects it');
select tests.act_as('service_role');
select private.delete_calendar_connection(tests.fx('team'));
select lives_ok($$select private.delete_user(tests.fx('alice'))$$, 'then the first connector''s account is deleted');
select tests.act_as('postgres');
select pg_temp.commit_redactions();
select ok(pg_temp.redaction('org3', 'calendar_connections', 'team') like '%/0',
  'the connection another member took over keeps its audit values');

select * from finish();
rollback;
