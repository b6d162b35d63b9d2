-- Knowledge base integrity (20261123003400_knowledge_integrity.sql):
--   1. org:<org>:uploads is received by viewers and up but sent on by no
--      user, so nobody can forge the document statuses the database
--      broadcasts there; the documents trigger still broadcasts whoever's
--      action changed the document.
--   2. match_document_chunks and match_bot_chunks refuse a null or all-zero
--      query_embedding (22023) instead of returning unranked chunks.
--   3. documents, upload_batches and document_chunks link only to projects
--      and collections of their own org (composite foreign keys), whoever
--      writes them; deleting the target still clears just the link.
begin;
create extension if not exists pgtap with schema extensions;

select plan(40);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@integrity.test')),
  ('member_a', tests.create_user('member-a@integrity.test')),
  ('viewer_a', tests.create_user('viewer-a@integrity.test')),
  ('owner_b', tests.create_user('owner-b@integrity.test'));
select tests.remember('org_a', tests.create_org('integrity-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('integrity-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');

with c as (
  insert into public.collections (org_id, name)
  values (tests.fx('org_a'), 'A prices'), (tests.fx('org_a'), 'A spare'), (tests.fx('org_b'), 'B prices')
  returning id, org_id, name
)
select tests.remember(case c.name when 'A prices' then 'coll_a' when 'A spare' then 'coll_a2' else 'coll_b' end, c.id) from c;
with p as (
  insert into public.projects (org_id, name) values (tests.fx('org_a'), 'A import'), (tests.fx('org_b'), 'B import')
  returning id, org_id
)
select tests.remember(case when p.org_id = tests.fx('org_a') then 'proj_a' else 'proj_b' end, p.id) from p;

-- The topic of an org's channel, set as the Realtime server sets it for a join.
create function pg_temp.join_topic(org text, channel text)
returns text
language sql
as $$ select set_config('realtime.topic', 'org:' || tests.fx(org)::text || ':' || channel, true) $$;
grant execute on function pg_temp.join_topic(text, text) to public;

-- A 1536-dimension embedding whose first components are the arguments.
create function pg_temp.vec(variadic parts real[])
returns extensions.vector
language sql
immutable
as $$ select array_cat(parts, array_fill(0::real, array[1536 - cardinality(parts)]))::extensions.vector(1536) $$;
grant execute on function pg_temp.vec(real[]) to public;

-- ---------------------------------------------------------------------------
-- 1. org:<org>:uploads: no user sends, viewers and up receive
-- ---------------------------------------------------------------------------

-- A status the database itself broadcast (as postgres, like the trigger).
insert into realtime.messages (topic, extension, event, payload, private)
values ('org:' || tests.fx('org_a') || ':uploads', 'broadcast', 'UPDATE', '{"record": {"status": "ready"}}', true);

select tests.act_as('member_a');
select pg_temp.join_topic('org_a', 'uploads');
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private)
    values (realtime.topic(), 'broadcast', 'UPDATE', '{"record": {"status": "failed", "failure_reason": "forged"}}', true)$$,
  '42501', 'new row violates row-level security policy "narrowed channels are sent on with their permission" for table "messages"',
  'uploads: a member cannot broadcast a document status on their org''s uploads channel'
);
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'presence', 'track', '{}', true)$$,
  '42501', 'new row violates row-level security policy "narrowed channels are sent on with their permission" for table "messages"',
  'uploads: nor send presence there'
);
select tests.act_as('owner_a');
select pg_temp.join_topic('org_a', 'uploads');
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'UPDATE', '{}', true)$$,
  '42501', 'new row violates row-level security policy "narrowed channels are sent on with their permission" for table "messages"',
  'uploads: nor can the owner'
);
-- Only the uploads channel is closed to users: another channel of the org is not.
select pg_temp.join_topic('org_a', 'team');
select lives_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'hello', '{}', true)$$,
  'uploads: the owner still sends on the org''s other channels'
);
select tests.act_as('member_a');
select pg_temp.join_topic('org_a', 'team');
select lives_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'hello', '{}', true)$$,
  'uploads: and so does a member'
);

select pg_temp.join_topic('org_a', 'uploads');
select results_eq(
  $$select payload -> 'record' ->> 'status' from realtime.messages where topic = realtime.topic()$$,
  $$values ('ready')$$,
  'uploads: a member still receives the channel (and no forged status reached it)'
);
select tests.act_as('viewer_a');
select pg_temp.join_topic('org_a', 'uploads');
select isnt_empty(
  $$select 1 from realtime.messages where topic = realtime.topic()$$,
  'uploads: a viewer still receives the channel'
);
select tests.act_as('owner_b');
select pg_temp.join_topic('org_a', 'uploads');
select is_empty(
  $$select 1 from realtime.messages$$,
  'uploads: another org''s owner still does not'
);

select tests.act_as('service_role');
select pg_temp.join_topic('org_a', 'uploads');
select lives_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'service', '{}', true)$$,
  'uploads: the service role still sends on the channel'
);
select lives_ok(
  $$select private.broadcast_to_org(tests.fx('org_a'), 'uploads', 'service', '{}')$$,
  'uploads: and broadcasts on it with broadcast_to_org'
);

-- The documents trigger broadcasts a member's changes: a new batch, then a retry.
select tests.act_as('member_a');
select tests.remember('doc_upload', (
  select d.id from public.create_upload_batch(tests.fx('org_a'),
    '[{"name": "prices.pdf", "mime_type": "application/pdf", "size_bytes": 1000}]'::jsonb) d
));
select tests.act_as('postgres');
select is(
  (select count(*)::integer from realtime.messages
   where topic = 'org:' || tests.fx('org_a') || ':uploads' and event = 'INSERT'
     and payload -> 'record' ->> 'id' = tests.fx('doc_upload')::text),
  1,
  'uploads: the document a member registered is broadcast on the channel'
);
update public.documents set status = 'failed', failure_reason = 'The file is encrypted.' where id = tests.fx('doc_upload');
select tests.act_as('member_a');
select lives_ok(
  $$select public.retry_document(tests.fx('doc_upload'))$$,
  'uploads: a member retries a failed document'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from realtime.messages
   where topic = 'org:' || tests.fx('org_a') || ':uploads' and event = 'UPDATE'
     and payload -> 'record' ->> 'id' = tests.fx('doc_upload')::text and payload -> 'record' ->> 'status' = 'queued'),
  1,
  'uploads: the member''s retry is broadcast as the document queued again'
);

-- ---------------------------------------------------------------------------
-- 2. A query embedding is required and must not be all zeros
-- ---------------------------------------------------------------------------

insert into public.documents (id, org_id, collection_id, name, mime_type, size_bytes, storage_path, status)
values (gen_random_uuid(), tests.fx('org_a'), tests.fx('coll_a'), 'hours.txt', 'text/plain', 10, tests.fx('org_a') || '/hours.txt', 'ready');
insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
select d.org_id, d.id, d.collection_id, 0, 1, 1, 'opening hours are nine to five', 6, pg_temp.vec(1, 0)
from public.documents d where d.storage_path = tests.fx('org_a') || '/hours.txt';
with b as (insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'Front desk', 'front-desk') returning id)
select tests.remember('bot_a', b.id) from b;

select tests.act_as('member_a');
select throws_ok(
  $$select * from public.match_document_chunks(tests.fx('org_a'), null)$$,
  '22023', 'query_embedding is required',
  'match_document_chunks: a null query_embedding is refused'
);
select throws_ok(
  $$select * from public.match_document_chunks(tests.fx('org_a'), null, 'opening hours', 5)$$,
  '22023', 'query_embedding is required',
  'match_document_chunks: with a query text too'
);
select throws_ok(
  $$select * from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(0))$$,
  '22023', 'query_embedding must not be all zeros',
  'match_document_chunks: an all-zero query_embedding is refused'
);
select throws_ok(
  $$select * from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(0), 'opening hours', 5, array[tests.fx('coll_a')])$$,
  '22023', 'query_embedding must not be all zeros',
  'match_document_chunks: with a query text and a collection filter too'
);
select results_eq(
  $$select content, vector_rank from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(0, 1e-3), null, 5)$$,
  $$values ('opening hours are nine to five', 1)$$,
  'match_document_chunks: any embedding with a direction, however short, is searched'
);
select throws_ok(
  $$select * from public.match_bot_chunks(tests.fx('bot_a'), null)$$,
  '22023', 'query_embedding is required',
  'match_bot_chunks: a null query_embedding is refused'
);
select throws_ok(
  $$select * from public.match_bot_chunks(tests.fx('bot_a'), pg_temp.vec(0), 'opening hours')$$,
  '22023', 'query_embedding must not be all zeros',
  'match_bot_chunks: an all-zero query_embedding is refused'
);
select throws_ok(
  $$select * from public.match_bot_chunks(gen_random_uuid(), null)$$,
  '22023', 'query_embedding is required',
  'match_bot_chunks: the input is checked before the bot is looked up'
);
select results_eq(
  $$select content from public.match_bot_chunks(tests.fx('bot_a'), pg_temp.vec(1, 0), 'opening hours', 5)$$,
  $$values ('opening hours are nine to five')$$,
  'match_bot_chunks: a valid embedding is searched as before'
);
select tests.act_as('service_role');
select throws_ok(
  $$select * from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(0))$$,
  '22023', 'query_embedding must not be all zeros',
  'match_document_chunks: the service role gets the same refusal'
);

-- ---------------------------------------------------------------------------
-- 3. Links stay within the org, whoever writes them
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
select throws_ok(
  format($$insert into public.documents (org_id, collection_id, name, mime_type, size_bytes, storage_path)
    values (%L, %L, 'x.txt', 'text/plain', 10, %L)$$, tests.fx('org_a'), tests.fx('coll_b'), tests.fx('org_a') || '/x1.txt'),
  '23503', 'insert or update on table "documents" violates foreign key constraint "documents_collection_fk"',
  'documents: a document cannot be put in another org''s collection'
);
select throws_ok(
  format($$insert into public.documents (org_id, project_id, name, mime_type, size_bytes, storage_path)
    values (%L, %L, 'x.txt', 'text/plain', 10, %L)$$, tests.fx('org_a'), tests.fx('proj_b'), tests.fx('org_a') || '/x2.txt'),
  '23503', 'insert or update on table "documents" violates foreign key constraint "documents_project_fk"',
  'documents: nor in another org''s project'
);
select throws_ok(
  format($$update public.documents set collection_id = %L where storage_path = %L$$, tests.fx('coll_b'), tests.fx('org_a') || '/hours.txt'),
  '23503', 'insert or update on table "documents" violates foreign key constraint "documents_collection_fk"',
  'documents: nor moved there by an update'
);
select throws_ok(
  format($$insert into public.upload_batches (org_id, collection_id) values (%L, %L)$$, tests.fx('org_a'), tests.fx('coll_b')),
  '23503', 'insert or update on table "upload_batches" violates foreign key constraint "upload_batches_collection_fk"',
  'upload_batches: a batch cannot target another org''s collection'
);
select throws_ok(
  format($$insert into public.upload_batches (org_id, project_id) values (%L, %L)$$, tests.fx('org_a'), tests.fx('proj_b')),
  '23503', 'insert or update on table "upload_batches" violates foreign key constraint "upload_batches_project_fk"',
  'upload_batches: nor another org''s project'
);
select throws_like(
  format($$insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
    select d.org_id, d.id, %L, 1, 1, 1, 'x', 1, pg_temp.vec(1) from public.documents d where d.storage_path = %L$$,
    tests.fx('coll_b'), tests.fx('org_a') || '/hours.txt'),
  '%violates foreign key constraint "document_chunks_collection_fk"%',
  'document_chunks: a chunk cannot be tagged with another org''s collection'
);
select throws_ok(
  format($$update public.collections set org_id = %L where id = %L$$, tests.fx('org_b'), tests.fx('coll_a')),
  '23503', null,
  'collections: a collection in use cannot move to another org under its documents'
);

select tests.act_as('service_role');
select throws_ok(
  format($$insert into public.documents (org_id, collection_id, name, mime_type, size_bytes, storage_path)
    values (%L, %L, 'x.txt', 'text/plain', 10, %L)$$, tests.fx('org_a'), tests.fx('coll_b'), tests.fx('org_a') || '/x3.txt'),
  '23503', 'insert or update on table "documents" violates foreign key constraint "documents_collection_fk"',
  'documents: the service role cannot link across orgs either'
);
select throws_ok(
  format($$insert into public.upload_batches (org_id, project_id, collection_id) values (%L, %L, %L)$$,
    tests.fx('org_b'), tests.fx('proj_a'), tests.fx('coll_a')),
  '23503', null,
  'upload_batches: nor can it, for a batch'
);

-- The same org's links are accepted, and deleting the target clears only the link.
select tests.act_as('postgres');
select lives_ok(
  format($$insert into public.upload_batches (id, org_id, project_id, collection_id) values (%L, %L, %L, %L)$$,
    tests.remember('batch_a', gen_random_uuid()), tests.fx('org_a'), tests.fx('proj_a'), tests.fx('coll_a2')),
  'upload_batches: a batch targets its own org''s project and collection'
);
select lives_ok(
  format($$insert into public.documents (id, org_id, batch_id, project_id, collection_id, name, mime_type, size_bytes, storage_path, status)
    values (%L, %L, %L, %L, %L, 'menu.txt', 'text/plain', 10, %L, 'ready')$$,
    tests.remember('doc_menu', gen_random_uuid()), tests.fx('org_a'), tests.fx('batch_a'), tests.fx('proj_a'), tests.fx('coll_a2'),
    tests.fx('org_a') || '/menu.txt'),
  'documents: a document goes in its own org''s project and collection'
);
select lives_ok(
  format($$insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
    values (%L, %L, %L, 0, 1, 1, 'soup of the day', 4, pg_temp.vec(0, 1))$$, tests.fx('org_a'), tests.fx('doc_menu'), tests.fx('coll_a2')),
  'document_chunks: a chunk is tagged with its own org''s collection'
);
select tests.act_as('service_role');
select lives_ok(
  format($$update public.documents set collection_id = %L where id = %L$$, tests.fx('coll_a'), tests.fx('doc_upload')),
  'documents: the service role moves a document to another collection of its org'
);

select tests.act_as('postgres');
delete from public.collections where id = tests.fx('coll_a2');
delete from public.projects where id = tests.fx('proj_a');
select results_eq(
  $$select org_id, project_id, collection_id, name from public.documents where id = tests.fx('doc_menu')$$,
  $$values (tests.fx('org_a'), null::uuid, null::uuid, 'menu.txt')$$,
  'documents: deleting the collection and the project keeps the document, in its org, without them'
);
select results_eq(
  $$select org_id, project_id, collection_id from public.upload_batches where id = tests.fx('batch_a')$$,
  $$values (tests.fx('org_a'), null::uuid, null::uuid)$$,
  'upload_batches: and the batch'
);
select results_eq(
  $$select org_id, collection_id, content from public.document_chunks where document_id = tests.fx('doc_menu')$$,
  $$values (tests.fx('org_a'), null::uuid, 'soup of the day')$$,
  'document_chunks: and the chunk'
);

-- An org created now gets a chunk partition attached with the key in force.
select tests.remember('org_c', tests.create_org('integrity-c', tests.fx('owner_b')));
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status)
values (tests.remember('doc_c', gen_random_uuid()), tests.fx('org_c'), 'c.txt', 'text/plain', 10, tests.fx('org_c') || '/c.txt', 'ready');
select throws_like(
  format($$insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
    values (%L, %L, %L, 0, 1, 1, 'x', 1, pg_temp.vec(1))$$, tests.fx('org_c'), tests.fx('doc_c'), tests.fx('coll_a')),
  '%violates foreign key constraint "document_chunks_collection_fk"%',
  'document_chunks: a partition attached after the migration refuses another org''s collection too'
);

select * from finish();
rollback;
