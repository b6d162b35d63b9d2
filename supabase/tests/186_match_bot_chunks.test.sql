-- Retrieval by bot (20261123002800_match_bot_chunks.sql): the chunks of the
-- bot's collections, or of every document of its org when it has none; as the
-- caller, so a bot the caller cannot see is not found and another org's
-- chunks never come back.
begin;
create extension if not exists pgtap with schema extensions;

select plan(9);

insert into tests.fixtures values
  ('owner_b', tests.create_user('bot-chunks-owner@b.test')),
  ('member_b', tests.create_user('bot-chunks-member@b.test')),
  ('viewer_b', tests.create_user('bot-chunks-viewer@b.test')),
  ('owner_o', tests.create_user('bot-chunks-owner@o.test'));
insert into tests.fixtures values
  ('org_b', tests.create_org('bot-chunks-b', tests.fx('owner_b'))),
  ('org_o', tests.create_org('bot-chunks-o', tests.fx('owner_o')));
select tests.add_member(tests.fx('org_b'), tests.fx('member_b'), 'member');
select tests.add_member(tests.fx('org_b'), tests.fx('viewer_b'), 'viewer');

with c as (
  insert into public.collections (org_id, name) values (tests.fx('org_b'), 'Prices'), (tests.fx('org_b'), 'Staff only')
  returning id, name
)
select tests.remember(case c.name when 'Prices' then 'prices' else 'staff' end, c.id) from c;
with b as (
  insert into public.bots (org_id, name, slug) values (tests.fx('org_b'), 'Sales', 'sales'), (tests.fx('org_b'), 'Everything', 'everything')
  returning id, slug
)
select tests.remember('bot_' || b.slug, b.id) from b;
insert into public.bot_collections (bot_id, collection_id, org_id) values (tests.fx('bot_sales'), tests.fx('prices'), tests.fx('org_b'));
with b as (insert into public.bots (org_id, name, slug) values (tests.fx('org_o'), 'Other', 'other') returning id)
select tests.remember('bot_other', b.id) from b;

-- One document per collection, one outside any, and one in the other org; a
-- chunk each, all with the same direction, so the filter alone decides.
insert into public.documents (id, org_id, collection_id, name, mime_type, size_bytes, storage_path, status)
values
  (gen_random_uuid(), tests.fx('org_b'), tests.fx('prices'), 'prices.txt', 'text/plain', 10, tests.fx('org_b') || '/prices.txt', 'ready'),
  (gen_random_uuid(), tests.fx('org_b'), tests.fx('staff'), 'staff.txt', 'text/plain', 10, tests.fx('org_b') || '/staff.txt', 'ready'),
  (gen_random_uuid(), tests.fx('org_b'), null, 'loose.txt', 'text/plain', 10, tests.fx('org_b') || '/loose.txt', 'ready'),
  (gen_random_uuid(), tests.fx('org_o'), null, 'other.txt', 'text/plain', 10, tests.fx('org_o') || '/other.txt', 'ready');
insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
select d.org_id, d.id, d.collection_id, 0, 1, 1, 'the ' || d.name || ' chunk', 3, array_fill(1::real, array[1536])::extensions.vector
from public.documents d where d.org_id in (tests.fx('org_b'), tests.fx('org_o'));

create function pg_temp.names(bot text)
returns setof text
language sql
as $$
  select m.document_name from public.match_bot_chunks(tests.fx(bot), array_fill(1::real, array[1536])::extensions.vector, null, 10) m
$$;
grant execute on function pg_temp.names(text) to authenticated, service_role;

select tests.authenticate_as(tests.fx('member_b'));
select set_eq(
  $$select pg_temp.names('bot_sales')$$, array['prices.txt'],
  'a bot with collections retrieves from them only'
);
select set_eq(
  $$select pg_temp.names('bot_everything')$$, array['prices.txt', 'staff.txt', 'loose.txt'],
  'a bot with no collection retrieves from every document of its org'
);
select results_eq(
  $$select m.document_name, m.collection_id, m.page_start, m.vector_rank
    from public.match_bot_chunks(tests.fx('bot_sales'), array_fill(1::real, array[1536])::extensions.vector, 'prices', 5) m$$,
  $$values ('prices.txt', tests.fx('prices'), 1, 1)$$,
  'the results are match_document_chunks'' own, text half included'
);
select throws_ok(
  $$select pg_temp.names('bot_other')$$, 'PT404', 'bot not found',
  'another org''s bot is not found'
);
select throws_ok(
  $$select * from public.match_bot_chunks(gen_random_uuid(), array_fill(1::real, array[1536])::extensions.vector)$$,
  'PT404', 'bot not found',
  'an unknown bot is not found'
);
select throws_ok(
  $$select * from public.match_bot_chunks(tests.fx('bot_sales'), array_fill(1::real, array[1536])::extensions.vector, null, 0)$$,
  '22023', 'match_count must be between 1 and 50',
  'match_count is checked as for match_document_chunks'
);
select tests.clear_authentication();

select tests.authenticate_as(tests.fx('viewer_b'));
select throws_ok(
  $$select pg_temp.names('bot_sales')$$, 'PT404', 'bot not found',
  'a viewer, who may not see bots, does not find one'
);
select tests.clear_authentication();

select tests.authenticate_as_service_role();
select set_eq(
  $$select pg_temp.names('bot_sales')$$, array['prices.txt'],
  'the service role (bot endpoints) gets the bot''s collections'
);
select tests.clear_authentication();

select tests.authenticate_as_anon();
select throws_ok(
  $$select * from public.match_bot_chunks(gen_random_uuid(), array_fill(1::real, array[1536])::extensions.vector)$$,
  '42501', 'permission denied for function match_bot_chunks',
  'anonymous callers may not call it'
);
select tests.clear_authentication();

select * from finish();
rollback;
