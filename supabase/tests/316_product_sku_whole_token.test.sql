-- A product's SKU names it only as a whole token of the question
-- (20261123014300_product_sku_whole_token.sql): not inside a word ("M" in
-- "much", "I'm"), a longer code ("TP-100", "ATP-10", "ЖTP-10") or a date
-- ("10" in "2024-10-05"); standing alone, bracketed, before punctuation, in
-- any case, full-width, or before Japanese or Korean it does. A SKU's own
-- punctuation is taken literally. match_products keeps its signature,
-- security, settings and grants.
begin;
create extension if not exists pgtap with schema extensions;

select plan(21);

select tests.remember('owner_k', tests.create_user('sku316-owner@k.test'));
select tests.remember('org_k', tests.create_org('sku316-k', tests.fx('owner_k')));

select tests.act_as('postgres');
insert into public.products (org_id, name, description, price, sku) values
  (tests.fx('org_k'), 'Mug', '', 8, 'M'),
  (tests.fx('org_k'), 'Gift card', '', 10, '10'),
  (tests.fx('org_k'), 'Premium Teapot', '', 45, 'TP-10'),
  (tests.fx('org_k'), 'Cable', '', 5, 'C[1]+');

-- The products match_products finds for a question in org K, by name, best first.
create function pg_temp.named(question text)
returns text[]
language sql
as $$
  select coalesce(array_agg(m.name order by m.score desc, m.name), '{}')
  from public.match_products(tests.fx('org_k'), question, 20) m
$$;
grant execute on function pg_temp.named(text) to authenticated;

select tests.act_as('owner_k');
select results_eq(
  $$select name, round(score::numeric, 2) from public.match_products(tests.fx('org_k'), 'How much does shipping cost to Germany?', 3)$$,
  $$values ('Mug', 0.50)$$,
  'the SKU "M" inside "much" adds nothing: the mug comes back only by its name''s trigrams (the "mu"), as before'
);
select is(pg_temp.named('I''m curious about delivery times'), '{}'::text[],
  'nor after an apostrophe inside a word ("I''m")');
select is(pg_temp.named('I ordered on 2024-10-05, where is it?'), '{}'::text[],
  'the SKU "10" inside a date names no product');
select is(pg_temp.named('Is TP-100 in stock?'), '{}'::text[],
  'the SKU TP-10 inside a longer code (TP-100) names no product');
select is(pg_temp.named('Is ATP-10 in stock?'), '{}'::text[],
  'nor after a letter (ATP-10)');
select is(pg_temp.named('Is ЖTP-10 in stock?'), '{}'::text[],
  'nor after a Cyrillic letter');
select is(pg_temp.named('Do you sell TP-10.5?'), '{}'::text[],
  'nor before a point and a digit (TP-10.5)');
select is(pg_temp.named('TP-10?'), array['Premium Teapot'],
  'a SKU before a question mark names its product (and its "10" not the gift card)');
select is(pg_temp.named('Do you have it (TP-10)'), array['Premium Teapot'],
  'a bracketed SKU names its product');
select is(pg_temp.named('I want the tp-10.'), array['Premium Teapot'],
  'a SKU in another case, before a full stop, names its product');
select is(pg_temp.named('Price of _TP-10_ please'), array['Premium Teapot'],
  'a SKU between underscores (markdown) names its product');
select is(pg_temp.named('ＴＰ－１０はありますか'), array['Premium Teapot'],
  'a full-width SKU followed by kana names its product');
select is(pg_temp.named('TP-10은 있나요?'), array['Premium Teapot'],
  'a SKU with a Korean particle written onto it names its product');
select is(pg_temp.named('Can I order one in size M'), array['Mug'],
  'a one-letter SKU standing alone still names its product');
select is(pg_temp.named('How much is the Premium Teapot?'), array['Premium Teapot', 'Mug'],
  'a product named by its name comes first, with no SKU''s +1 putting the mug above it');
select is(pg_temp.named('Do you have C[1]+ in blue?'), array['Cable'],
  'a SKU''s punctuation is matched literally');
select is(pg_temp.named('Do you have C11 in blue?'), '{}'::text[],
  'and not as a pattern');

select tests.act_as('postgres');
select is((select prosecdef from pg_catalog.pg_proc where oid = 'public.match_products(uuid, text, integer)'::regprocedure),
  false, 'match_products is still security invoker');
select is((select proconfig from pg_catalog.pg_proc where oid = 'public.match_products(uuid, text, integer)'::regprocedure),
  array['search_path=""', 'pg_trgm.word_similarity_threshold=0.5'], 'with its settings');
select ok(has_function_privilege('authenticated', 'public.match_products(uuid, text, integer)', 'execute'),
  'authenticated may still call it');
select ok(has_function_privilege('service_role', 'public.match_products(uuid, text, integer)', 'execute'),
  'as may the service role');

select * from finish();
rollback;
