-- The text half of a hybrid search keeps the query's selective words
-- (20261123002600_selective_text_search.sql): per-org word counts kept exact
-- as chunks are inserted, changed and deleted; the words whose chunks add up
-- to the budget, rarest first; only for orgs the caller may read. The text
-- half itself (private.text_matches, definer so that the full-text index is
-- usable) applies the chunks' read policy: nothing for anyone else.
begin;
create extension if not exists pgtap with schema extensions;

select plan(26);

insert into tests.fixtures values
  ('owner_t', tests.create_user('terms-owner@t.test')),
  ('owner_u', tests.create_user('terms-owner@u.test')),
  ('stranger', tests.create_user('terms-stranger@t.test'));
insert into tests.fixtures values
  ('org_t', tests.create_org('selective-terms-t', tests.fx('owner_t'))),
  ('org_u', tests.create_org('selective-terms-u', tests.fx('owner_u')));
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status)
values
  (gen_random_uuid(), tests.fx('org_t'), 'catalog.txt', 'text/plain', 10, tests.fx('org_t') || '/catalog.txt', 'ready'),
  (gen_random_uuid(), tests.fx('org_t'), 'notes.txt', 'text/plain', 10, tests.fx('org_t') || '/notes.txt', 'ready'),
  (gen_random_uuid(), tests.fx('org_u'), 'other.txt', 'text/plain', 10, tests.fx('org_u') || '/other.txt', 'ready');
insert into tests.fixtures select 'doc_' || split_part(name, '.', 1), id from public.documents
where org_id in (tests.fx('org_t'), tests.fx('org_u'));

-- The org's words as counted from its chunks, to compare the counts with.
create function pg_temp.raw_counts(org_id uuid)
returns table (term text, chunks integer)
language sql
as $$
  select w, count(*)::integer
  from public.document_chunks c, unnest(tsvector_to_array(c.fts)) w
  where c.org_id = raw_counts.org_id
  group by w
$$;

-- 1,100 catalog chunks: "acme" in every one, "widget" in every other (550),
-- "sprocket" in 3; 20 notes chunks. Directions differ in their first value.
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
select tests.fx('org_t'), tests.fx('doc_catalog'), n, 1 + n / 10, 1 + n / 10,
  'acme catalog entry ' || n || case when n % 2 = 0 then ' widget' else '' end
    || case when n in (7, 70, 700) then ' sprocket' else '' end,
  5, (array[n::real] || array_fill(1::real, array[1535]))::extensions.vector
from generate_series(1, 1100) n;
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
select tests.fx('org_t'), tests.fx('doc_notes'), n, 1, 1, 'acme notes about sprocket care ' || n, 5,
  (array[-n::real] || array_fill(1::real, array[1535]))::extensions.vector
from generate_series(1, 20) n;
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values (tests.fx('org_u'), tests.fx('doc_other'), 0, 1, 1, 'sprocket widget elsewhere', 3,
  array_fill(1::real, array[1536])::extensions.vector);

select set_eq(
  $$select term, chunks from private.chunk_term_counts where org_id = tests.fx('org_t')$$,
  $$select * from pg_temp.raw_counts(tests.fx('org_t'))$$,
  'after inserts, the counts are those of the chunks'
);
select results_eq(
  $$select chunks from private.chunk_term_counts where org_id = tests.fx('org_t') and term in ('acme', 'widget', 'sprocket') order by term$$,
  $$values (1120), (23), (550)$$,
  'acme in all 1,120 chunks, sprocket in 23, widget in 550'
);

update public.document_chunks set content = content || ' gearbox'
where org_id = tests.fx('org_t') and document_id = tests.fx('doc_notes') and chunk_index <= 5;
update public.document_chunks set content = replace(content, ' widget', '')
where org_id = tests.fx('org_t') and document_id = tests.fx('doc_catalog') and chunk_index <= 100;
select set_eq(
  $$select term, chunks from private.chunk_term_counts where org_id = tests.fx('org_t')$$,
  $$select * from pg_temp.raw_counts(tests.fx('org_t'))$$,
  'after changing the text of some chunks, the counts follow'
);

insert into public.collections (id, org_id, name) values (gen_random_uuid(), tests.fx('org_t'), 'moved');
update public.document_chunks set collection_id = (select id from public.collections where org_id = tests.fx('org_t'))
where org_id = tests.fx('org_t') and document_id = tests.fx('doc_notes');
select set_eq(
  $$select term, chunks from private.chunk_term_counts where org_id = tests.fx('org_t')$$,
  $$select * from pg_temp.raw_counts(tests.fx('org_t'))$$,
  'moving chunks to a collection changes no count'
);

delete from public.document_chunks where org_id = tests.fx('org_t') and document_id = tests.fx('doc_notes');
select set_eq(
  $$select term, chunks from private.chunk_term_counts where org_id = tests.fx('org_t')$$,
  $$select * from pg_temp.raw_counts(tests.fx('org_t'))$$,
  'after deleting a document''s chunks, the counts follow'
);
select is_empty(
  $$select 1 from private.chunk_term_counts where org_id = tests.fx('org_t') and term in ('notes', 'gearbox', 'care')$$,
  'words no chunk holds any more have no row (no zero counts)'
);

-- Now: acme 1,100, widget 500, sprocket 3.
select tests.act_as('owner_t');
select is(
  private.selective_query_terms(tests.fx('org_t'), 'Acme: a sprocket or a widget?', 1000),
  array['sprocket', 'widget'],
  'the words whose chunks add up to the budget, rarest first; the word every chunk holds is left out'
);
select is(
  private.selective_query_terms(tests.fx('org_t'), 'Acme: a sprocket or a widget?', 400),
  array['sprocket'],
  'a smaller budget keeps fewer words'
);
select is(
  private.selective_query_terms(tests.fx('org_t'), 'acme catalog', 1000),
  null::text[],
  'no word selective enough: none'
);
select is(
  private.selective_query_terms(tests.fx('org_t'), 'gizmo sprocket', 1000),
  array['sprocket'],
  'a word no chunk holds is left out'
);

select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org_t'),
     (array[7::real] || array_fill(1::real, array[1535]))::extensions.vector, 'acme sprocket', 10)
   where text_rank is not null),
  3, 'the hybrid search ranks by its selective word alone: the 3 sprocket chunks have a text rank'
);
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org_t'),
     (array[7::real] || array_fill(1::real, array[1535]))::extensions.vector, 'acme catalog entry', 10)
   where text_rank is null),
  10, 'words in more chunks than the budget: the search is by vector alone'
);

select tests.act_as('postgres');
update public.document_chunks set collection_id = (select id from public.collections where org_id = tests.fx('org_t'))
where org_id = tests.fx('org_t') and document_id = tests.fx('doc_catalog') and chunk_index = 700;
insert into tests.fixtures values
  ('viewer_t', tests.create_user('terms-viewer@t.test'));
select tests.add_member(tests.fx('org_t'), tests.fx('viewer_t'), 'viewer');

select tests.act_as('viewer_t');
select is(
  (select count(*)::integer from private.text_matches(tests.fx('org_t'), to_tsquery('simple', 'sprocket'), null, 40)),
  3, 'the text half as a viewer: the 3 chunks holding the word'
);
select results_eq(
  $$select chunk_index from private.text_matches(tests.fx('org_t'), to_tsquery('simple', 'sprocket'),
      array[(select id from public.collections where org_id = tests.fx('org_t'))], 40) t
    join public.document_chunks c on c.id = t.id$$,
  $$values (700)$$,
  'with a collection filter, only the collection''s chunk'
);

-- Bot API keys and Telegram chat as the service role.
select tests.act_as('service_role');
select is(
  private.selective_query_terms(tests.fx('org_t'), 'Acme: a sprocket or a widget?', 1000),
  array['sprocket', 'widget'],
  'the service role gets the selective words too'
);
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org_t'),
     (array[7::real] || array_fill(1::real, array[1535]))::extensions.vector, 'acme sprocket', 10)
   where text_rank is not null),
  3, 'and its hybrid search ranks the sprocket chunks by text'
);

-- The service role without JWT claims (an edge function's asServiceRole, a
-- cron job), and postgres itself: roles that bypass RLS read the chunks
-- through the vector half, so the text half answers them too.
select tests.act_as('postgres');
set local role service_role;
select is(
  private.selective_query_terms(tests.fx('org_t'), 'Acme: a sprocket or a widget?', 1000),
  array['sprocket', 'widget'],
  'the service role without claims gets the selective words'
);
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org_t'),
     (array[7::real] || array_fill(1::real, array[1535]))::extensions.vector, 'acme sprocket', 10)
   where text_rank is not null),
  3, 'and its hybrid search ranks the sprocket chunks by text'
);
reset role;
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org_t'),
     (array[7::real] || array_fill(1::real, array[1535]))::extensions.vector, 'acme sprocket', 10)
   where text_rank is not null),
  3, 'as does postgres'
);

select tests.act_as('stranger');
select is(
  private.selective_query_terms(tests.fx('org_t'), 'sprocket widget', 1000),
  null::text[],
  'someone outside the org learns nothing of its words'
);
select is_empty(
  $$select 1 from private.text_matches(tests.fx('org_t'), to_tsquery('simple', 'sprocket | acme'), null, 40)$$,
  'nor reads its chunks through the text half'
);
select is_empty(
  $$select 1 from public.match_document_chunks(tests.fx('org_t'),
      (array[7::real] || array_fill(1::real, array[1535]))::extensions.vector, 'acme sprocket', 10)$$,
  'and its hybrid search finds nothing'
);
select tests.act_as('owner_u');
select is(
  private.selective_query_terms(tests.fx('org_t'), 'sprocket widget', 1000),
  null::text[],
  'nor does the owner of another org'
);
select is_empty(
  $$select 1 from private.text_matches(tests.fx('org_t'), to_tsquery('simple', 'sprocket | widget'), null, 40)$$,
  'who reads none of its chunks through the text half either'
);

select tests.act_as('postgres');
delete from public.documents where id = tests.fx('doc_catalog');
select set_eq(
  $$select term, chunks from private.chunk_term_counts where org_id = tests.fx('org_t')$$,
  $$select * from pg_temp.raw_counts(tests.fx('org_t'))$$,
  'deleting a document (its chunks go by cascade) takes its words out of the counts'
);
delete from public.organizations where id = tests.fx('org_u');
select is_empty(
  $$select 1 from private.chunk_term_counts where org_id = tests.fx('org_u')$$,
  'a deleted org keeps no counts'
);

select * from finish();
rollback;
