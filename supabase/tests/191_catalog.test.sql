-- The product catalog (20261123001100_bots_and_chat.sql): the category tree
-- (no cycles, at most 8 levels, names unique per parent, a parent with
-- children is not deleted), products and their checks, search_products (full
-- text, typos through trigrams, category subtrees, price ranges, paging) and
-- who reads and writes (viewers read, members write).
begin;
create extension if not exists pgtap with schema extensions;

select plan(89);

-- Creates a category as the current user and remembers it as a fixture.
create function pg_temp.category(label text, org text, parent text, name text)
returns uuid
language sql
as $$
  with created as (
    insert into public.catalog_categories (org_id, parent_id, name) values (tests.fx(org), tests.fx(parent), name) returning id
  )
  select tests.remember(label, id) from created;
$$;
grant execute on function pg_temp.category(text, text, text, text) to public;

-- The names search_products returns, in its order.
create function pg_temp.found(
  query text default null, category text default null, include_subcategories boolean default true,
  min_price numeric default null, max_price numeric default null, active_only boolean default true,
  match_count integer default 10, offset_count integer default 0, org text default 'org_a'
)
returns text[]
language sql
as $$
  select coalesce(array_agg(s.name order by s.ordinality), '{}')
  from public.search_products(tests.fx(org), query, tests.fx(category), include_subcategories, min_price, max_price,
    active_only, match_count, offset_count) with ordinality s
$$;
grant execute on function pg_temp.found(text, text, boolean, numeric, numeric, boolean, integer, integer, text) to public;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@catalog.test')),
  ('member_a', tests.create_user('member-a@catalog.test')),
  ('viewer_a', tests.create_user('viewer-a@catalog.test')),
  ('owner_b', tests.create_user('owner-b@catalog.test')),
  ('ops', tests.create_user('ops@catalog.test', '{"platform_admin": true}'));
select tests.remember('org_a', tests.create_org('catalog-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('catalog-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');

-- ---------------------------------------------------------------------------
-- Categories
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select lives_ok(
  $$select pg_temp.category('electronics', 'org_a', null, 'Electronics'),
           pg_temp.category('audio', 'org_a', 'electronics', 'Audio'),
           pg_temp.category('headphones', 'org_a', 'audio', 'Headphones'),
           pg_temp.category('garden', 'org_a', null, 'Garden')$$,
  'categories: a member builds a tree'
);
select results_eq(
  $$select name, parent_id from public.catalog_categories where org_id = tests.fx('org_a') order by name$$,
  $$values ('Audio', tests.fx('electronics')), ('Electronics', null), ('Garden', null), ('Headphones', tests.fx('audio'))$$,
  'categories: the tree as built'
);
select throws_ok(
  $$select pg_temp.category('dup', 'org_a', 'electronics', 'Audio')$$,
  '23505', null,
  'categories: names are unique under one parent'
);
select throws_ok(
  $$select pg_temp.category('dup', 'org_a', null, 'Garden')$$,
  '23505', null,
  'categories: and among the top-level ones (nulls not distinct)'
);
select lives_ok(
  $$select pg_temp.category('garden_audio', 'org_a', 'garden', 'Audio')$$,
  'categories: the same name under another parent is fine'
);
select throws_ok(
  $$select pg_temp.category('x', 'org_a', null, '')$$,
  '23514', 'new row for relation "catalog_categories" violates check constraint "catalog_categories_name_length"',
  'categories: a name is required'
);
select throws_ok(
  $$select pg_temp.category('x', 'org_a', null, ' Padded')$$,
  '23514', 'new row for relation "catalog_categories" violates check constraint "catalog_categories_name_length"',
  'categories: a name has no surrounding spaces'
);
select throws_ok(
  $$select pg_temp.category('x', 'org_a', null, repeat('c', 101))$$,
  '23514', 'new row for relation "catalog_categories" violates check constraint "catalog_categories_name_length"',
  'categories: a name has at most 100 characters'
);
select throws_ok(
  $$update public.catalog_categories set position = 2000000 where id = tests.fx('garden')$$,
  '23514', 'new row for relation "catalog_categories" violates check constraint "catalog_categories_position_range"',
  'categories: position stays within +-1,000,000'
);

-- Cycles and depth.
select throws_ok(
  $$update public.catalog_categories set parent_id = tests.fx('headphones') where id = tests.fx('electronics')$$,
  '22023', 'a category cannot be moved under itself or one of its subcategories',
  'categories: a category cannot move under its own descendant'
);
select throws_ok(
  $$update public.catalog_categories set parent_id = id where id = tests.fx('garden')$$,
  '22023', 'a category cannot be moved under itself or one of its subcategories',
  'categories: nor under itself'
);
select lives_ok(
  $$select pg_temp.category('l4', 'org_a', 'headphones', 'Level 4'),
           pg_temp.category('l5', 'org_a', 'l4', 'Level 5'),
           pg_temp.category('l6', 'org_a', 'l5', 'Level 6'),
           pg_temp.category('l7', 'org_a', 'l6', 'Level 7'),
           pg_temp.category('l8', 'org_a', 'l7', 'Level 8')$$,
  'categories: 8 levels deep is allowed'
);
select throws_ok(
  $$select pg_temp.category('l9', 'org_a', 'l8', 'Level 9')$$,
  '22023', 'categories nest at most 8 levels deep',
  'categories: a 9th level is refused'
);
-- Garden (1) with its child Audio (2) moved under Level 7 would reach level 9.
select throws_ok(
  $$update public.catalog_categories set parent_id = tests.fx('l7') where id = tests.fx('garden')$$,
  '22023', 'categories nest at most 8 levels deep',
  'categories: a move counts the subtree that comes along'
);
select lives_ok(
  $$update public.catalog_categories set parent_id = tests.fx('l6') where id = tests.fx('garden')$$,
  'categories: the same subtree fits one level higher'
);
update public.catalog_categories set parent_id = null where id = tests.fx('garden');

-- Another org's parent.
select tests.act_as('owner_b');
select pg_temp.category('b_root', 'org_b', null, 'B root');
select tests.act_as('member_a');
select throws_ok(
  $$insert into public.catalog_categories (org_id, parent_id, name) values (tests.fx('org_a'), tests.fx('b_root'), 'Smuggled')$$,
  '23503', null,
  'categories: a parent from another org is refused'
);

-- Deleting: a parent with children is refused; a leaf goes.
select throws_ok(
  $$delete from public.catalog_categories where id = tests.fx('electronics')$$,
  '23503', null,
  'categories: a category with subcategories is not deleted (move or delete them first)'
);
select lives_ok(
  $$delete from public.catalog_categories where id in (tests.fx('l8'), tests.fx('l7'), tests.fx('l6'), tests.fx('l5'), tests.fx('l4'))$$,
  'categories: a member deletes a branch, children and parents in one statement'
);

-- At most 1000 per org.
select tests.act_as('postgres');
insert into public.catalog_categories (org_id, parent_id, name)
select tests.fx('org_a'), tests.fx('garden'), 'Filler ' || i
from generate_series(1, 1000 - (select count(*) from public.catalog_categories where org_id = tests.fx('org_a'))) i;
select tests.act_as('member_a');
select throws_ok(
  $$select pg_temp.category('x', 'org_a', null, 'One too many')$$,
  '22023', 'an organization has at most 1000 catalog categories',
  'categories: the 1001st category of an org is refused'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select pg_temp.category('x', 'org_a', null, 'Probe')$$,
  '42501', null,
  'categories: to an outsider the full org answers 42501, not the limit'
);
select tests.act_as('postgres');
delete from public.catalog_categories where name like 'Filler %';

-- Who reads and writes categories.
select tests.act_as('viewer_a');
select results_eq(
  $$select count(*)::integer from public.catalog_categories$$,
  $$values (5)$$,
  'categories: a viewer reads the org''s categories'
);
select throws_ok(
  $$insert into public.catalog_categories (org_id, name) values (tests.fx('org_a'), 'Viewer''s')$$,
  '42501', null,
  'categories: a viewer cannot create'
);
select is_empty(
  $$update public.catalog_categories set name = 'Renamed' where id = tests.fx('garden') returning id$$,
  'categories: a viewer cannot rename'
);
select is_empty(
  $$delete from public.catalog_categories where id = tests.fx('garden_audio') returning id$$,
  'categories: a viewer cannot delete'
);
select tests.act_as('owner_b');
select is_empty($$select 1 from public.catalog_categories where org_id = tests.fx('org_a')$$, 'categories: another org reads none');
select tests.act_as('ops');
select isnt_empty($$select 1 from public.catalog_categories where org_id = tests.fx('org_a')$$, 'categories: a platform admin reads them');
select tests.act_as('postgres');
select results_eq(
  $$select action, actor_user_id from public.audit_log where table_name = 'catalog_categories' and record_id = tests.fx('electronics')::text$$,
  $$values ('insert', tests.fx('member_a'))$$,
  'categories: creation is audited with the member as the actor'
);

-- ---------------------------------------------------------------------------
-- Products
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select lives_ok(
  $$insert into public.products (org_id, category_id, name, description, price, sku, stock, url) values
      (tests.fx('org_a'), tests.fx('headphones'), 'Wireless Headphones X1', 'Noise cancelling over-ear headphones with 30 hours of battery', 199.00, 'WH-X1', 5, 'https://shop.example.com/wh-x1'),
      (tests.fx('org_a'), tests.fx('audio'), 'Studio Monitor Speakers', 'A pair of active speakers for the desk', 349.99, 'SMS-2', 0, null),
      (tests.fx('org_a'), tests.fx('electronics'), 'Laptop Pro 14', 'A light laptop for work and travel', 1499.00, 'LP14', 12, null),
      (tests.fx('org_a'), tests.fx('garden'), 'Garden Hose 20m', 'Flexible hose with a spray nozzle', 29.50, null, null, null),
      (tests.fx('org_a'), tests.fx('headphones'), 'Old Headphones', 'Discontinued wired model', 49, 'OLD-1', 0, null)$$,
  'products: a member adds products'
);
select lives_ok(
  $$insert into public.products (org_id, name, price, currency, url) values (tests.fx('org_a'), 'Cable', 5, 'EUR', 'http://shop.example.com/cable')$$,
  'products: one without a category, in euros'
);
update public.products set active = false where name = 'Old Headphones';
select results_eq(
  $$select description, currency::text, active, stock, sku, category_id from public.products where name = 'Cable'$$,
  $$values ('', 'EUR', true, null::integer, null::text, null::uuid)$$,
  'products: defaults are an empty description, active, stock and SKU not tracked'
);
select results_eq(
  $$select currency::text from public.products where name = 'Laptop Pro 14'$$,
  $$values ('USD')$$,
  'products: the currency defaults to USD'
);

select throws_ok($$insert into public.products (org_id, name, price) values (tests.fx('org_a'), '', 1)$$,
  '23514', 'new row for relation "products" violates check constraint "products_name_length"', 'products: a name is required');
select throws_ok($$insert into public.products (org_id, name, price) values (tests.fx('org_a'), repeat('p', 201), 1)$$,
  '23514', 'new row for relation "products" violates check constraint "products_name_length"', 'products: a name has at most 200 characters');
select throws_ok($$insert into public.products (org_id, name, price, description) values (tests.fx('org_a'), 'P', 1, repeat('d', 5001))$$,
  '23514', 'new row for relation "products" violates check constraint "products_description_length"', 'products: a description has at most 5000 characters');
select throws_ok($$insert into public.products (org_id, name, price) values (tests.fx('org_a'), 'P', -0.01)$$,
  '23514', 'new row for relation "products" violates check constraint "products_price_range"', 'products: a price is not negative');
select throws_ok($$insert into public.products (org_id, name, price) values (tests.fx('org_a'), 'P', 10000000000)$$,
  '22003', null, 'products: a price has at most 10 digits before the point');
select throws_ok($$insert into public.products (org_id, name) values (tests.fx('org_a'), 'P')$$,
  '23502', null, 'products: a price is required');
select throws_ok($$insert into public.products (org_id, name, price, currency) values (tests.fx('org_a'), 'P', 1, 'usd')$$,
  '23514', 'new row for relation "products" violates check constraint "products_currency_format"', 'products: a currency is three capital letters');
select throws_ok($$insert into public.products (org_id, name, price, currency) values (tests.fx('org_a'), 'P', 1, 'US')$$,
  '23514', 'new row for relation "products" violates check constraint "products_currency_format"', 'products: not two');
select throws_ok($$insert into public.products (org_id, name, price, stock) values (tests.fx('org_a'), 'P', 1, -1)$$,
  '23514', 'new row for relation "products" violates check constraint "products_stock_range"', 'products: stock is not negative');
select throws_ok($$insert into public.products (org_id, name, price, sku) values (tests.fx('org_a'), 'P', 1, '')$$,
  '23514', 'new row for relation "products" violates check constraint "products_sku_format"', 'products: a SKU is not empty');
select throws_ok($$insert into public.products (org_id, name, price, sku) values (tests.fx('org_a'), 'P', 1, repeat('S', 65))$$,
  '23514', 'new row for relation "products" violates check constraint "products_sku_format"', 'products: a SKU has at most 64 characters');
select throws_ok($$insert into public.products (org_id, name, price, sku) values (tests.fx('org_a'), 'P', 1, 'WH-X1')$$,
  '23505', null, 'products: a SKU is unique in the org');
select throws_ok($$insert into public.products (org_id, name, price, url) values (tests.fx('org_a'), 'P', 1, 'ftp://shop.example.com/p')$$,
  '23514', 'new row for relation "products" violates check constraint "products_url_format"', 'products: a link is http or https');
select throws_ok($$insert into public.products (org_id, name, price, url) values (tests.fx('org_a'), 'P', 1, 'https://x.example/' || repeat('a', 2000))$$,
  '23514', 'new row for relation "products" violates check constraint "products_url_format"', 'products: a link has at most 2000 characters');
select throws_ok($$insert into public.products (org_id, category_id, name, price) values (tests.fx('org_a'), tests.fx('b_root'), 'P', 1)$$,
  '23503', null, 'products: a category from another org is refused');
select throws_ok($$update public.products set search = null$$,
  '428C9', null, 'products: the search vector is generated, not written');
select tests.act_as('owner_b');
select lives_ok(
  $$insert into public.products (org_id, name, price, sku, description) values (tests.fx('org_b'), 'B Headphones', 10, 'WH-X1', 'headphones of org B')$$,
  'products: another org may use the same SKU'
);

-- Who reads and writes products.
select tests.act_as('viewer_a');
select results_eq($$select count(*)::integer from public.products$$, $$values (6)$$, 'products: a viewer reads the org''s products, inactive ones too');
select throws_ok($$insert into public.products (org_id, name, price) values (tests.fx('org_a'), 'P', 1)$$,
  '42501', null, 'products: a viewer cannot add');
select is_empty($$update public.products set price = 1 returning id$$, 'products: a viewer cannot change prices');
select is_empty($$delete from public.products returning id$$, 'products: a viewer cannot delete');
select tests.act_as('owner_b');
select is_empty($$select 1 from public.products where org_id = tests.fx('org_a')$$, 'products: another org reads none');
select tests.act_as('member_a');
select results_eq(
  $$update public.products set price = 189.00, stock = 4 where name = 'Wireless Headphones X1' returning price, stock$$,
  $$values (189.00::numeric(12,2), 4)$$,
  'products: a member changes price and stock'
);
select tests.act_as('postgres');
select results_eq(
  $$select actor_user_id, old_values ->> 'price', new_values ->> 'price' from public.audit_log
    where table_name = 'products' and action = 'update' and new_values ? 'price'$$,
  $$values (tests.fx('member_a'), '199.00', '189.00')$$,
  'products: the change is audited with old and new values'
);

-- ---------------------------------------------------------------------------
-- search_products (as a viewer: RLS decides)
-- ---------------------------------------------------------------------------

select tests.act_as('viewer_a');
select is(pg_temp.found('headphones'), array['Wireless Headphones X1'], 'search: by a word of the name (the inactive one left out)');
select is(pg_temp.found('headphnes'), array['Wireless Headphones X1'], 'search: a typo still finds it (trigram similarity of the name)');
select is(pg_temp.found('laptpo'), array['Laptop Pro 14'], 'search: another typo');
select is(pg_temp.found('WH-X1'), array['Wireless Headphones X1'], 'search: by SKU');
select is(pg_temp.found('battery'), array['Wireless Headphones X1'], 'search: by a word of the description');
select is(pg_temp.found('zzqx'), '{}'::text[], 'search: nothing matches nonsense');
select is(
  pg_temp.found('headphones', active_only => false),
  array['Wireless Headphones X1', 'Old Headphones'],
  'search: inactive products on request, ranked (name and description match above name alone)'
);
select ok(
  (select bool_and(score > 0) from public.search_products(tests.fx('org_a'), 'speakers')),
  'search: text matches have a positive score'
);
select results_eq(
  $$select name, category_name, score from public.search_products(tests.fx('org_a'), null, tests.fx('audio'))$$,
  $$values ('Studio Monitor Speakers', 'Audio', 0::double precision), ('Wireless Headphones X1', 'Headphones', 0)$$,
  'search: a category with its subcategories; without text, by name with score 0 and the category name'
);
select is(
  pg_temp.found(category => 'electronics'),
  array['Laptop Pro 14', 'Studio Monitor Speakers', 'Wireless Headphones X1'],
  'search: the whole subtree of a top category'
);
select is(
  pg_temp.found(category => 'electronics', include_subcategories => false),
  array['Laptop Pro 14'],
  'search: the category alone'
);
select is(
  pg_temp.found(min_price => 189, max_price => 349.99),
  array['Studio Monitor Speakers', 'Wireless Headphones X1'],
  'search: a price range, bounds included'
);
select is(pg_temp.found(max_price => 10), array['Cable'], 'search: a maximum price alone');
select is(
  pg_temp.found(),
  array['Cable', 'Garden Hose 20m', 'Laptop Pro 14', 'Studio Monitor Speakers', 'Wireless Headphones X1'],
  'search: everything active, by name'
);
select is(pg_temp.found(match_count => 2, offset_count => 2), array['Laptop Pro 14', 'Studio Monitor Speakers'], 'search: paged');
select is(pg_temp.found('headphones', org => 'org_b'), '{}'::text[], 'search: another org''s catalog is not visible');

select throws_ok($$select pg_temp.found(match_count => 0)$$, '22023', 'match_count must be between 1 and 50', 'search: match_count at least 1');
select throws_ok($$select pg_temp.found(match_count => 51)$$, '22023', 'match_count must be between 1 and 50', 'search: match_count at most 50');
select throws_ok($$select pg_temp.found(offset_count => -1)$$, '22023', 'offset_count must be between 0 and 10000', 'search: no negative offset');
select throws_ok($$select pg_temp.found(min_price => -1)$$, '22023', 'prices are not negative', 'search: no negative price');
select throws_ok($$select pg_temp.found(min_price => 10, max_price => 5)$$, '22023', 'min_price must not exceed max_price', 'search: min above max');
select throws_ok($$select pg_temp.found(repeat('q', 201))$$, '22023', 'a search text has at most 200 characters', 'search: a long text');
select throws_ok($$select pg_temp.found(category => 'b_root')$$, 'PT404', 'category not found', 'search: a category of another org is not found');
select tests.act_as('anon');
select throws_ok($$select * from public.search_products(tests.fx('org_a'))$$, '42501', 'permission denied for function search_products', 'search: anon may not search');
select tests.act_as('service_role');
select is(pg_temp.found('headphnes'), array['Wireless Headphones X1'], 'search: the service role (a bot) searches too');

-- A deleted category leaves its products uncategorised.
select tests.act_as('member_a');
select lives_ok($$delete from public.catalog_categories where id = tests.fx('garden_audio')$$, 'categories: a member deletes a leaf');
select lives_ok($$delete from public.catalog_categories where id = tests.fx('garden')$$, 'categories: and then its parent');
select results_eq(
  $$select category_id from public.products where name = 'Garden Hose 20m'$$,
  $$values (null::uuid)$$,
  'categories: the products of a deleted category stay, uncategorised'
);
select results_eq(
  $$delete from public.products where name = 'Cable' returning name$$,
  $$values ('Cable')$$,
  'products: a member deletes a product'
);

-- match_products: the products a chat question names
select tests.authenticate_as(tests.fx('viewer_a'));
select results_eq(
  $$select name from public.match_products(tests.fx('org_a'), 'Do you still sell the wireless headphones? How long does the battery last?', 3)$$,
  $$values ('Wireless Headphones X1')$$,
  'match_products: a word of the name in a question finds the product; inactive ones are left out'
);
select results_eq(
  $$select name from public.match_products(tests.fx('org_a'), 'is the studio monitr speaker in stock?', 3)$$,
  $$values ('Studio Monitor Speakers')$$,
  'match_products: the name with a typo and a singular still matches'
);
select results_eq(
  $$select name from public.match_products(tests.fx('org_a'), 'what does LP14 cost', 3)$$,
  $$values ('Laptop Pro 14')$$,
  'match_products: a quoted SKU finds its product'
);
select is_empty(
  $$select 1 from public.match_products(tests.fx('org_a'), 'what are your opening hours on sunday?', 3)$$,
  'match_products: a question naming no product finds none'
);
select tests.authenticate_as(tests.fx('owner_b'));
select is_empty(
  $$select 1 from public.match_products(tests.fx('org_a'), 'wireless headphones', 3)$$,
  'match_products: another org''s member finds nothing of org A'
);
select tests.clear_authentication();

select * from finish();
rollback;
