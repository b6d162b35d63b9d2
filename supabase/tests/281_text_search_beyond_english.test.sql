-- The full-text half of retrieval for questions that are not in English
-- (20261123010900_text_search_beyond_english.sql): words of 2 or 3
-- characters holding a Hebrew, Arabic, kana, Han or Hangul letter are
-- searched for (not the short words of other alphabets: German "für",
-- Russian "для" find nothing), a full-width question is searched in its NFKC form too, and
-- a code's digits after a hyphen are searched alone; for the knowledge base
-- (match_document_chunks_by_text, the chat's text half without an
-- embedding, and match_document_chunks) and the catalog (match_products).
-- The rarest-first budget still applies to these words, and another org's
-- chunks never come back.
begin;
create extension if not exists pgtap with schema extensions;

select plan(29);

select tests.remember('owner_t', tests.create_user('beyond281-owner@t.test'));
select tests.remember('owner_u', tests.create_user('beyond281-owner@u.test'));
select tests.remember('org_t', tests.create_org('beyond281-t', tests.fx('owner_t')));
select tests.remember('org_u', tests.create_org('beyond281-u', tests.fx('owner_u')));
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status) values
  (gen_random_uuid(), tests.fx('org_t'), 'beyond281-faq.txt', 'text/plain', 10, tests.fx('org_t') || '/beyond281-faq.txt', 'ready'),
  (gen_random_uuid(), tests.fx('org_u'), 'beyond281-other.txt', 'text/plain', 10, tests.fx('org_u') || '/beyond281-other.txt', 'ready');
select tests.remember('doc_t', id) from public.documents where org_id = tests.fx('org_t');
select tests.remember('doc_u', id) from public.documents where org_id = tests.fx('org_u');

-- Org T: one chunk per language, three more holding 정책 (so it is the
-- commoner of 환불 and 정책), English filler, German and Russian chunks
-- holding their languages' "für" and "для", and an Arabic one holding a
-- 2-character word (رف, shelf). Org U holds every word.
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
select tests.fx('org_t'), tests.fx('doc_t'), n, 1, 1, content, 5,
  (array[n::real] || array_fill(1::real, array[1535]))::extensions.vector
from unnest(array[
  '환불 정책: 구매 후 14일 이내',
  'سعر شحن الطلب ثابت',
  '价格 运费 另计',
  'Replacement part SKU 1234 fits every model',
  '개인정보 정책',
  '배송 정책',
  '교환 정책',
  'Opening hours are nine to five on weekdays',
  'Delivery takes three days within the country',
  'Rabatt für Studenten und Schüler',
  'Скидка для студентов и пенсионеров',
  'رف خشبي للكتب'
]) with ordinality c(content, n);
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values (tests.fx('org_u'), tests.fx('doc_u'), 1, 1, 1, '환불 정책 سعر شحن 价格 运费 SKU 1234', 5,
  array_fill(1::real, array[1536])::extensions.vector);

-- The org's chunks the text half finds for a question, by their index.
create function pg_temp.found_by_text(org_id uuid, question text)
returns integer[]
language sql
as $$
  select coalesce(array_agg(c.chunk_index order by c.chunk_index), '{}')
  from public.match_document_chunks_by_text(org_id, question, 10) m
  join public.document_chunks c on c.id = m.chunk_id
$$;

-- The chunks the hybrid search ranks by text (text_rank set), by their index.
create function pg_temp.ranked_by_text(org_id uuid, question text)
returns integer[]
language sql
as $$
  select coalesce(array_agg(c.chunk_index order by c.chunk_index), '{}')
  from public.match_document_chunks(org_id, (array[50::real] || array_fill(1::real, array[1535]))::extensions.vector,
    question, 10) m
  join public.document_chunks c on c.id = m.chunk_id
  where m.text_rank is not null
$$;
grant execute on function pg_temp.found_by_text(uuid, text), pg_temp.ranked_by_text(uuid, text)
  to authenticated, service_role;

select tests.act_as('owner_t');
select is(pg_temp.found_by_text(tests.fx('org_t'), '환불 정책 알려주세요'), array[1, 5, 6, 7],
  'Korean: the chunks holding the 2-character words are found by text');
select is(pg_temp.found_by_text(tests.fx('org_t'), 'كم سعر شحن'), array[2],
  'Arabic: the chunk holding the 3-character words is found');
select is(pg_temp.found_by_text(tests.fx('org_t'), '价格 运费'), array[3],
  'Chinese: the chunk holding the 2-character words is found');
select is(pg_temp.found_by_text(tests.fx('org_t'), 'ＳＫＵ－１２３４'), array[4],
  'a full-width code finds the chunk writing it in ASCII');
select is(pg_temp.found_by_text(tests.fx('org_t'), 'Do you have SKU-1234?'), array[4],
  'a code joined by a hyphen finds the chunk writing it with a space');
select is(pg_temp.found_by_text(tests.fx('org_t'), 'delivery in three days?'), array[9],
  'an English question is searched as before');
select is(pg_temp.found_by_text(tests.fx('org_t'), 'is it ok to go?'), '{}'::integer[],
  'short ASCII words are still left out');
select is(pg_temp.found_by_text(tests.fx('org_t'), 'هل عندكم رف'), array[12],
  'Arabic: the chunk holding the 2-character word is found');
select is(private.selective_query_terms(tests.fx('org_t'), 'Gibt es einen Rabatt für Studenten?', 1000),
  array['rabatt', 'studenten'],
  'German: "für" is left out as short English words are, though chunks hold it');
select is(private.selective_query_terms(tests.fx('org_t'), 'Есть ли скидка для студентов?', 1000),
  array['скидка', 'студентов'],
  'Russian: as is "для"');

select is(pg_temp.ranked_by_text(tests.fx('org_t'), '환불 정책'), array[1, 5, 6, 7],
  'the hybrid search ranks the Korean chunks by text too');
select is(pg_temp.ranked_by_text(tests.fx('org_t'), 'ＳＫＵ－１２３４'), array[4],
  'and the chunk a full-width code names');

select is(private.selective_query_terms(tests.fx('org_t'), '환불 정책', 1000), array['환불', '정책'],
  'the words rarest first: 환불 (1 chunk), then 정책 (4)');
select is(private.selective_query_terms(tests.fx('org_t'), '환불 정책', 3), array['환불'],
  'the budget leaves out the commoner word');
select is(private.selective_query_terms(tests.fx('org_t'), '환불 정책', 0), null::text[],
  'and both when even the rarest is over it');

select tests.act_as('service_role');
select is(pg_temp.found_by_text(tests.fx('org_t'), 'سعر شحن'), array[2],
  'the service role (bot API keys, Telegram) finds them too, in the org it names only');

select tests.act_as('owner_u');
select is(pg_temp.found_by_text(tests.fx('org_t'), '환불 정책 سعر شحن 价格 运费 ＳＫＵ－１２３４'), '{}'::integer[],
  'another org''s owner finds none of org T''s chunks by text');
select is(private.selective_query_terms(tests.fx('org_t'), '환불 정책', 1000), null::text[],
  'nor learns its words');
select is(pg_temp.found_by_text(tests.fx('org_u'), '환불 정책'), array[1],
  'and finds its own org''s chunk');

-- ---------------------------------------------------------------------------
-- The catalog
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
insert into public.products (org_id, name, description, price, sku) values
  (tests.fx('org_t'), '운동화 세트 프리미엄 에디션', '', 59, null),
  (tests.fx('org_t'), '蓝牙 耳机 主动降噪 旗舰版', '', 20, null),
  (tests.fx('org_t'), 'Replacement part', '', 9, 'SKU-1234'),
  (tests.fx('org_t'), 'Hülle für iPhone 15', '', 19, null),
  (tests.fx('org_t'), 'Чехол для iPhone 15', '', 19, null),
  (tests.fx('org_t'), 'رف خشبي للكتب', '', 45, null),
  (tests.fx('org_t'), '가방 가죽 여행용', '', 80, null),
  (tests.fx('org_u'), '운동화 세트 프리미엄 에디션', '', 59, null);

select tests.act_as('owner_t');
select results_eq(
  $$select name from public.match_products(tests.fx('org_t'), '운동화 있나요?', 3)$$,
  $$values ('운동화 세트 프리미엄 에디션')$$,
  'catalog: a Korean word of 3 characters of a longer name finds the product'
);
select results_eq(
  $$select name from public.match_products(tests.fx('org_t'), '有 耳机 吗', 3)$$,
  $$values ('蓝牙 耳机 主动降噪 旗舰版')$$,
  'catalog: as does a Chinese word of 2 characters'
);
select results_eq(
  $$select name, score >= 1 from public.match_products(tests.fx('org_t'), 'ＳＫＵ－１２３４はありますか', 3)$$,
  $$values ('Replacement part', true)$$,
  'catalog: a full-width SKU finds its product, scored as a quoted SKU'
);
select results_eq(
  $$select name from public.match_products(tests.fx('org_t'), '가방 있어요?', 3)$$,
  $$values ('가방 가죽 여행용')$$,
  'catalog: a Korean word of 2 characters finds its product'
);
select results_eq(
  $$select name from public.match_products(tests.fx('org_t'), 'هل عندكم رف؟', 3)$$,
  $$values ('رف خشبي للكتب')$$,
  'catalog: as does an Arabic one'
);
select is_empty(
  $$select 1 from public.match_products(tests.fx('org_t'), 'what are your opening hours on sunday?', 3)$$,
  'catalog: a question naming no product finds none'
);
select is_empty(
  $$select 1 from public.match_products(tests.fx('org_t'), 'Gibt es einen Rabatt für Studenten?', 3)$$,
  'catalog: a German question finds no product by its "für"'
);
select is_empty(
  $$select 1 from public.match_products(tests.fx('org_t'), 'Есть ли скидка для студентов?', 3)$$,
  'catalog: nor a Russian one by its "для"'
);
select results_eq(
  $$select name from public.match_products(tests.fx('org_t'), 'Haben Sie eine Hülle?', 3)$$,
  $$values ('Hülle für iPhone 15')$$,
  'catalog: a German word of 4 characters or more still finds its product'
);
select tests.act_as('owner_u');
select results_eq(
  $$select org_id from public.match_products(tests.fx('org_t'), '운동화 있나요?', 3)
    union all select org_id from public.match_products(tests.fx('org_u'), '운동화 있나요?', 3)$$,
  $$values (tests.fx('org_u'))$$,
  'catalog: another org''s owner finds only their own product'
);

select * from finish();
rollback;
