-- The text half of match_document_chunks (20261123002600_text_half_skips_common_words.sql)
-- takes the query's words rarest first while the chunks they match add up
-- to 1,000 at most: a word in more chunks than that is not ranked (every
-- chunk it matches would be), the rarer words still are.
begin;
create extension if not exists pgtap with schema extensions;

select plan(5);

insert into tests.fixtures values ('owner_w', tests.create_user('words-owner@w.test'));
insert into tests.fixtures values ('org_w', tests.create_org('common-words-w', tests.fx('owner_w')));
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status)
values (gen_random_uuid(), tests.fx('org_w'), 'all.txt', 'text/plain', 10, tests.fx('org_w') || '/all.txt', 'ready');
insert into tests.fixtures select 'doc_w', id from public.documents where org_id = tests.fx('org_w');

-- 1,200 chunks naming the business; 3 of them also about refunds, 600 about
-- parking. Zero vectors: the graph leaves them out (no direction), so the
-- vector half finds nothing and only the text half ranks.
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
select tests.fx('org_w'), tests.fx('doc_w'), n, 1, 1,
  'Acmecorp ' || case when n % 400 = 0 then 'refunds within thirty days' when n % 2 = 0 then 'parking behind the shop' else 'opening hours' end,
  4, array_fill(0::real, array[1536])::extensions.vector
from generate_series(1, 1200) n;

create temp table probe on commit drop as select array_fill(0::real, array[1536])::extensions.vector as q;
grant select on probe to public;

select tests.act_as('owner_w');

select results_eq(
  $$select count(*)::integer, count(*) filter (where content like '%refunds%')::integer
    from public.match_document_chunks(tests.fx('org_w'), (select q from probe), 'Acmecorp refunds', 10)
    where text_rank is not null$$,
  $$values (3, 3)$$,
  'a word in all 1,200 chunks is not ranked; the rare word in the same question is: its 3 chunks, and only them'
);
select results_eq(
  $$select count(*)::integer, count(*) filter (where content like '%parking%')::integer
    from public.match_document_chunks(tests.fx('org_w'), (select q from probe), 'Acmecorp parking', 10)
    where text_rank is not null$$,
  $$values (10, 10)$$,
  'a word in 600 chunks (under the limit) still ranks'
);
select is(
  (select count(*)::integer
   from public.match_document_chunks(tests.fx('org_w'), (select q from probe), 'refunds parking Acmecorp', 50)
   where text_rank is not null and content not like '%refunds%' and content not like '%parking%'),
  0, 'rarest first: refunds (3) and parking (600) fit in 1,000 together, Acmecorp (1,200) does not'
);
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org_w'), (select q from probe), 'Acmecorp', 10)),
  0, 'with only the common word, the search is by vector alone (here: nothing)'
);
select is(
  (select count(*)::integer
   from public.match_document_chunks(tests.fx('org_w'), (select q from probe), 'refunds', 10)
   where text_rank is not null),
  3, 'the rare word alone ranks its chunks'
);

select * from finish();
rollback;
