-- Actions safe to repeat (20261123011400_retry_safe_actions.sql): accept_invitation sent again by its
-- acceptor answers their membership; a retried re-ingestion of a ready document that fails keeps its chunks
-- (ready, last_failure_reason, document.failed with status ready) unless the file was uploaded since or the
-- document had none; narrowing an endpoint's event_types cancels its queued deliveries of the types left out,
-- but not replays or test sends.
begin;
create extension if not exists pgtap with schema extensions;

select plan(28);

-- How a call ends: 'ok' or SQLSTATE: message.
create function pg_temp.outcome(call text)
returns text
language plpgsql
as $$
begin
  execute call;
  return 'ok';
exception when others then
  return sqlstate || ': ' || sqlerrm;
end;
$$;
grant execute on function pg_temp.outcome(text) to public;

-- A document's ingestion state and its live and staged chunks, read as postgres.
create function pg_temp.doc(fixture text)
returns text
language sql
stable
as $$
  select concat_ws(' / ', d.status, 'progress ' || d.progress, 'chunks ' || d.chunk_count,
    'live ' || (select count(*) from public.document_chunks c where c.document_id = d.id),
    'staged ' || (select count(*) from private.document_chunk_staging s where s.document_id = d.id),
    'failure ' || coalesce(d.failure_reason, '-'), 'last ' || coalesce(d.last_failure_reason, '-'),
    'retried ' || (d.retried_at is not null))
  from public.documents d where d.id = tests.fx(fixture)
$$;
grant execute on function pg_temp.doc(text) to public;

-- A document with two live chunks (ready) or none (failed), as an earlier run left it.
create function pg_temp.document(name text, status public.document_status)
returns void
language plpgsql
as $$
begin
  perform tests.remember(name, gen_random_uuid());
  insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress, page_count,
                                chunk_count, failure_reason, ingested_at)
  values (tests.fx(name), tests.fx('org'), name || '.txt', 'text/plain', 10, tests.fx('org') || '/' || name || '.txt',
          status, case when status = 'ready' then 100 else 0 end, 1, case when status = 'ready' then 2 else 0 end,
          case when status = 'failed' then 'The file is empty.' end, case when status = 'ready' then now() end);
  if status = 'ready' then
    insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
    select tests.fx('org'), tests.fx(name), i, 1, 1, 'retry-safe-287 chunk ' || i, 4,
      array_fill(0.1::real, array[1536])::extensions.vector
    from generate_series(0, 1) i;
  end if;
end;
$$;
grant execute on function pg_temp.document(text, public.document_status) to public;

-- Retries as the owner, starts the run and stages a chunk as the ingest function would; answers the run.
create function pg_temp.retry_and_start(name text)
returns uuid
language plpgsql
as $$
declare
  run uuid;
begin
  perform tests.act_as('owner');
  perform public.retry_document(tests.fx(name));
  perform tests.act_as('service_role');
  select b.run_id into run from private.begin_ingest_step(tests.fx(name)) b;
  perform tests.act_as('postgres');
  insert into private.document_chunk_staging (run_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
  values (run, tests.fx(name), 0, 1, 1, 'staged', 1, array_fill(0.2::real, array[1536])::extensions.vector);
  return run;
end;
$$;
grant execute on function pg_temp.retry_and_start(text) to public;

create function pg_temp.fail(name text, run uuid, reason text)
returns boolean
language plpgsql
as $$
declare
  failed boolean;
begin
  perform tests.act_as('service_role');
  failed := private.fail_ingest(tests.fx(name), run, reason);
  perform tests.act_as('postgres');
  return failed;
end;
$$;
grant execute on function pg_temp.fail(text, uuid, text) to public;

delete from vault.secrets where name in ('project_url', 'service_role_key');
select tests.remember('owner', tests.create_user('owner@retry-safe-287.test'));
select tests.remember('invitee', tests.create_user('invitee@retry-safe-287.test'));
select tests.remember('other', tests.create_user('other@retry-safe-287.test'));
select tests.remember('org', tests.create_org('retry-safe-287', tests.fx('owner')));

-- ===========================================================================
-- 1. accept_invitation sent again by its acceptor
-- ===========================================================================

select tests.act_as('owner');
select set_config('fx.token', i.token, true) from public.invite_member(tests.fx('org'), 'invitee@retry-safe-287.test', 'member') i;
select tests.act_as('invitee');
select set_config('fx.joined', to_jsonb(m)::text, true) from public.accept_invitation(current_setting('fx.token')) m;
select is(
  (select to_jsonb(m) from public.accept_invitation(current_setting('fx.token')) m),
  current_setting('fx.joined')::jsonb,
  'accept_invitation: the acceptor sending the token again gets the same membership back, not 22023'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.memberships where org_id = tests.fx('org') and user_id = tests.fx('invitee')), 1,
  'accept_invitation: the repeat adds no membership'
);
select tests.act_as('other');
select is(
  pg_temp.outcome($$select public.accept_invitation(current_setting('fx.token'))$$),
  '22023: this invitation was already used',
  'accept_invitation: anyone else is still told the invitation was used'
);
select tests.act_as('postgres');
delete from public.memberships where org_id = tests.fx('org') and user_id = tests.fx('invitee');
select tests.act_as('invitee');
select is(
  pg_temp.outcome($$select public.accept_invitation(current_setting('fx.token'))$$),
  '22023: this invitation was already used',
  'accept_invitation: an acceptor who has left since cannot rejoin with the used token'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.memberships where org_id = tests.fx('org') and user_id = tests.fx('invitee')), 0,
  'accept_invitation: and is not a member again'
);

-- ===========================================================================
-- 2. A retried re-ingestion that fails keeps the document's chunks
-- ===========================================================================

select pg_temp.document('kept', 'ready');
select tests.remember('kept_run', pg_temp.retry_and_start('kept'));
select is(pg_temp.doc('kept'), 'processing / progress 0 / chunks 2 / live 2 / staged 1 / failure - / last - / retried true',
  'retry_document marks the re-run (retried_at); the live chunks stay while it runs');
select ok(pg_temp.fail('kept', tests.fx('kept_run'), 'Ingestion kept failing; try again later.'),
  'fail_ingest takes the retried run');
select is(pg_temp.doc('kept'),
  'ready / progress 100 / chunks 2 / live 2 / staged 0 / failure - / last Ingestion kept failing; try again later. / retried false',
  'a failed re-run of a ready document drops only its staging: ready on its 2 chunks, the reason in last_failure_reason');
select is(
  (select payload from public.events where type = 'document.failed' and payload ->> 'document_id' = tests.fx('kept')::text),
  jsonb_build_object('document_id', tests.fx('kept'), 'name', 'kept.txt',
    'reason', 'Ingestion kept failing; try again later.', 'status', 'ready'),
  'document.failed says the document stays ready'
);
select is(
  (select count(*)::integer from public.events where type = 'document.ready' and payload ->> 'document_id' = tests.fx('kept')::text), 0,
  'and no document.ready is claimed'
);
select tests.act_as('owner');
select is(
  (select last_failure_reason from public.documents where id = tests.fx('kept')), 'Ingestion kept failing; try again later.',
  'members read last_failure_reason'
);
select public.retry_document(tests.fx('kept'));
select tests.act_as('postgres');
select is(pg_temp.doc('kept'), 'queued / progress 0 / chunks 2 / live 2 / staged 0 / failure - / last - / retried true',
  'a new retry clears last_failure_reason');
-- A queued retry whose request was lost, failed by the sweeper without a run (run_id null).
select ok(pg_temp.fail('kept', null, 'Ingestion kept failing; try again later.'), 'fail_ingest without a run');
select is(pg_temp.doc('kept'),
  'ready / progress 100 / chunks 2 / live 2 / staged 0 / failure - / last Ingestion kept failing; try again later. / retried false',
  'a retried document that fails before any step read the file keeps its chunks too');

-- An upload after the retry: the file may have changed, so the run's failure fails the document.
select pg_temp.document('uploaded', 'ready');
select tests.remember('uploaded_run', pg_temp.retry_and_start('uploaded'));
insert into storage.objects (bucket_id, name, metadata)
values ('knowledge', tests.fx('org') || '/uploaded.txt', '{"size": 10, "mimetype": "text/plain"}');
select is(pg_temp.doc('uploaded'), 'queued / progress 0 / chunks 2 / live 2 / staged 1 / failure - / last - / retried false',
  'an upload over a retried document clears retried_at');
select tests.act_as('owner');
select throws_ok(
  $$select public.retry_document(tests.fx('uploaded'))$$,
  '22023', 'only a failed or ready document can be ingested again (it is queued)',
  'retry_document of a document an upload queued is refused as before (only a retry''s repeat is answered)'
);
select tests.act_as('postgres');
select ok(pg_temp.fail('uploaded', null, 'The file is not UTF-8 text.'), 'fail_ingest takes the upload''s run');
select is(pg_temp.doc('uploaded'), 'failed / progress 0 / chunks 0 / live 0 / staged 0 / failure The file is not UTF-8 text. / last - / retried false',
  'a failed run after an upload fails the document and drops its chunks, as before');
select is(
  (select payload from public.events where type = 'document.failed' and payload ->> 'document_id' = tests.fx('uploaded')::text),
  jsonb_build_object('document_id', tests.fx('uploaded'), 'name', 'uploaded.txt', 'reason', 'The file is not UTF-8 text.'),
  'its document.failed is as before'
);

-- A failed document (no chunks) retried and failing again: failed, as before.
select pg_temp.document('never', 'failed');
select tests.remember('never_run', pg_temp.retry_and_start('never'));
select ok(pg_temp.fail('never', tests.fx('never_run'), 'Ingestion kept failing; try again later.'), 'fail_ingest takes the run');
select is(pg_temp.doc('never'),
  'failed / progress 0 / chunks 0 / live 0 / staged 0 / failure Ingestion kept failing; try again later. / last - / retried false',
  'a retried document without chunks fails as before');

-- A retried run that finishes: the marker goes.
select pg_temp.document('finished', 'ready');
select tests.remember('finished_run', pg_temp.retry_and_start('finished'));
select tests.act_as('service_role');
select is(private.finish_ingest(tests.fx('finished'), tests.fx('finished_run')), 1, 'finish_ingest swaps in the staged chunk');
select tests.act_as('postgres');
select is(pg_temp.doc('finished'), 'ready / progress 100 / chunks 1 / live 1 / staged 0 / failure - / last - / retried false',
  'a finished retried run clears retried_at');

-- ===========================================================================
-- 4. Narrowing an endpoint's event_types
-- ===========================================================================

select tests.act_as('owner');
select tests.remember('ep', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org'), 'https://narrow.retry-safe-287.example.com/h', null, null) c;
select tests.remember('ep_other', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org'), 'https://other.retry-safe-287.example.com/h', null, null) c;
select private.send_test_webhook(tests.fx('ep'));
select tests.act_as('postgres');
-- Fanned out to both endpoints (every type).
select private.emit_event(tests.fx('org'), 'member.joined', jsonb_build_object('user_id', tests.fx('other'), 'role', 'viewer'));
select private.emit_event(tests.fx('org'), 'document.ready', jsonb_build_object('document_id', tests.fx('kept'), 'name', 'kept.txt'));
select private.emit_event(tests.fx('org'), 'document.failed',
  jsonb_build_object('document_id', tests.fx('never'), 'name', 'never.txt', 'reason', 'x'));
insert into public.webhook_deliveries (org_id, endpoint_id, event_id, replay_of)
select d.org_id, d.endpoint_id, d.event_id, d.id from public.webhook_deliveries d
join public.events ev on ev.id = d.event_id
where d.endpoint_id = tests.fx('ep') and ev.type = 'document.failed';
update public.webhook_deliveries set attempt_count = 2 where endpoint_id = tests.fx('ep') and replay_of is null;

create temp table before_narrowing as
select d.id, d.endpoint_id, ev.type, d.replay_of is not null as replay, d.status
from public.webhook_deliveries d join public.events ev on ev.id = d.event_id
where d.org_id = tests.fx('org');

select tests.act_as('owner');
select private.update_webhook_endpoint(tests.fx('ep'), null, null, array['member.joined', 'document.ready'], null);
select tests.act_as('postgres');
select is(
  (select array_agg(distinct x.line order by x.line) from (
     select b.type || case when b.replay then ' replay' else '' end || ': ' || d.status as line
     from before_narrowing b join public.webhook_deliveries d on d.id = b.id where b.endpoint_id = tests.fx('ep')) x),
  array['document.failed replay: pending', 'document.failed: canceled', 'document.ready: pending',
        'member.joined: pending', 'webhook.test: pending'],
  'narrowing cancels the queued deliveries of the types left out; replays, test sends and kept types go on'
);
select is(
  (select count(*)::integer from before_narrowing b join public.webhook_deliveries d on d.id = b.id
   where b.endpoint_id = tests.fx('ep') and d.status = 'canceled' and d.next_attempt_at is null and d.locked_until is null),
  (select count(*)::integer from before_narrowing b where b.endpoint_id = tests.fx('ep') and b.type = 'document.failed' and not b.replay),
  'every one of them, retrying ones too, canceled as a disabled endpoint''s are (no next attempt, no lease)'
);
select is(
  (select count(*)::integer from before_narrowing b join public.webhook_deliveries d on d.id = b.id
   where b.endpoint_id = tests.fx('ep_other') and d.status <> 'pending'), 0,
  'another endpoint''s deliveries are untouched'
);

-- ===========================================================================
-- 5. Webhooks turned off for a type in the org's notification preferences
-- ===========================================================================

select tests.act_as('owner');
update public.org_settings
set notification_preferences = '{"*": {"in_app": ["owner", "admin"], "webhook": true}, "member.joined": {"webhook": false}}'
where org_id = tests.fx('org');
select tests.act_as('postgres');
select is(
  (select array_agg(distinct x.line order by x.line) from (
     select b.type || case when b.replay then ' replay' else '' end || ': ' || d.status as line
     from before_narrowing b join public.webhook_deliveries d on d.id = b.id where b.endpoint_id = tests.fx('ep_other')) x),
  array['document.failed: pending', 'document.ready: pending', 'member.joined: canceled'],
  'turning webhooks off for a type cancels its queued deliveries on every endpoint; other types go on'
);
select is(
  (select array_agg(distinct x.line order by x.line) from (
     select b.type || case when b.replay then ' replay' else '' end || ': ' || d.status as line
     from before_narrowing b join public.webhook_deliveries d on d.id = b.id where b.endpoint_id = tests.fx('ep')) x),
  array['document.failed replay: pending', 'document.failed: canceled', 'document.ready: pending',
        'member.joined: canceled', 'webhook.test: pending'],
  'replays and test sends are not touched by it'
);

select * from finish();
rollback;
