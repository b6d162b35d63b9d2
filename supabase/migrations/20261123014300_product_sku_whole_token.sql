-- A product's SKU names it only as a whole token of the question.
--
-- match_products took a product as named when its SKU was anywhere in the
-- question (strpos), and scored that +1, above a word of the name. A catalog
-- with short SKUs had junk come first and become the answer's sources (cited
-- when the answer has no markers): a mug with the SKU "M" for "How much does
-- shipping cost?", a gift card with the SKU "10" for "I ordered on
-- 2024-10-05". Now the SKU must stand on its own: not run on into a letter or
-- digit, nor into a code's joining character (- _ . / or an apostrophe) with a
-- letter or digit beyond it. So "TP-10?", "(TP-10)", "TP-10." and "_TP-10_"
-- name TP-10; "TP-100", "ATP-10", "TP-10.5" and "2024-10-05" (for "10") do
-- not, nor "I'm" for "M". Any alphabet's letters join (ЖTP-10 is not TP-10),
-- except Han, kana and Hangul (the ranges selective_query_terms keeps short
-- words of): Japanese and Chinese put no space after a code, and Korean
-- writes its particles onto it ("SKU-1234はありますか", "TP-10은").
--
-- The catalog lets a SKU hold any character (products_sku_format checks its
-- length and outer spaces only), so the SKU is found as a literal, case-
-- insensitively: the question is split at its places (string_to_array), and
-- two fixed patterns test the text on each side. A pattern built from each SKU
-- was compiled once per candidate product (Postgres caches 32): a question of
-- 250 numbers against 10,000 numeric SKUs took 4.6 s, against 2.2 s before
-- (a review of this fix). The substring test stays first.
--
-- Not done: a SKU that is a word or a number of the question's prose ("10"
-- in "Do you ship within 10 days?") is still a whole token, and still names
-- its product; the question does not say whether it quotes a SKU.

-- Latest definition: 20261123010900_text_search_beyond_english.sql; only the
-- SKU's test is new. Its grants (authenticated, service_role) stay.
create or replace function public.match_products(org_id uuid, question text, match_count integer default 3)
returns setof public.product_search_result
language plpgsql
stable
security invoker
set search_path = ''
set pg_trgm.word_similarity_threshold = 0.5
as $$
declare
  asked text := left(btrim(coalesce(match_products.question, '')), 1000);
  folded text;
  name_words tsquery;
  -- A letter or digit a SKU would run on into: any but Han, kana and Hangul.
  joining_letter constant text := '(?![\u3040-\u30FF\u3400-\u9FFF\uAC00-\uD7AF])[[:alnum:]]';
  -- What may not stand just before a SKU (the end of the text before it) or just after it (the start of the text
  -- after it). Fixed patterns, so Postgres compiles each once (its regex cache), not once per product.
  joined_before constant text := '(' || joining_letter || '|' || joining_letter || '[-_./''’])$';
  joined_after constant text := '^(' || joining_letter || '|[-_./''’]' || joining_letter || ')';
begin
  if match_products.org_id is null then
    raise exception 'org_id is required' using errcode = 'invalid_parameter_value';
  end if;
  if match_count is null or match_count not between 1 and 20 then
    raise exception 'match_count must be between 1 and 20' using errcode = 'invalid_parameter_value';
  end if;
  if asked = '' then
    return;
  end if;
  -- A full-width SKU or name (ＳＫＵ－１２３４) is compared in its ASCII form
  -- too; a line break keeps the two forms from running into one word.
  folded := pg_catalog.normalize(asked, 'NFKC');
  if folded <> asked then
    asked := asked || E'\n' || folded;
  end if;
  -- Restricted to weight A: the words of the name, not of the description.
  select pg_catalog.to_tsquery('simple', string_agg(distinct pg_catalog.quote_literal(v.word) || ':A', ' | '))
  into name_words
  from unnest(pg_catalog.tsvector_to_array(pg_catalog.to_tsvector('simple', asked))) w
  cross join lateral (values (w), (case when w ~ '^[-+][0-9]' then pg_catalog.substr(w, 2) end)) v(word)
  where length(v.word) >= 4 or (length(v.word) >= 2 and v.word ~ '[\u0590-\u06FF\u3040-\u30FF\u3400-\u9FFF\uAC00-\uD7AF]');

  return query
  select p.id, p.org_id, p.category_id, p.name, p.description, p.price, p.currency::text, p.stock, p.sku, p.url,
    p.active, p.created_at, p.updated_at, c.name,
    (coalesce(ts_rank_cd(p.search, name_words), 0) + extensions.word_similarity(p.name, asked)
      + case when s.sku_named then 1 else 0 end)::double precision
  from public.products p
  left join public.catalog_categories c on c.id = p.category_id
  -- The SKU stands alone at one of its places in the question: the text around it does not run on into it.
  cross join lateral (
    select coalesce(strpos(lower(asked), lower(p.sku)) > 0 and exists (
      select 1
      from (
        select a.piece, pg_catalog.lead(a.piece) over (order by a.n) as next_piece
        from unnest(pg_catalog.string_to_array(lower(asked), lower(p.sku))) with ordinality a(piece, n)
      ) o
      where o.next_piece is not null
        and pg_catalog.right(o.piece, 2) !~ joined_before
        and pg_catalog.left(o.next_piece, 2) !~ joined_after
    ), false)
  ) s(sku_named)
  where p.org_id = match_products.org_id
    and p.active
    and ((name_words is not null and p.search @@ name_words)
      or p.name operator(extensions.<%) asked
      or s.sku_named)
  order by 15 desc, p.name, p.id
  limit match_count;
end;
$$;
comment on function public.match_products(uuid, text, integer) is 'Active products a chat question names (a word of the name, the name with typos, or the SKU as a whole token of the question), ranked, as the caller: a retrieval source for bots beside the documents.';
