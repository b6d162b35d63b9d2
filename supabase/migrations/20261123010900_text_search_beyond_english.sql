-- The full-text half of retrieval for questions that are not in English.
--
-- The text half (private.selective_query_terms, which match_document_chunks
-- and match_document_chunks_by_text take their words from, and
-- public.match_products for the catalog) kept a question's words of 4
-- characters or more: short English words are the ones every chunk holds.
-- Korean, Chinese and Arabic write whole words in 2 or 3 characters (환불
-- 정책, 价格 运费, سعر شحن), so such questions had no words at all and the
-- chunks holding them were never found by text. A word holding a letter of
-- those scripts (Hebrew, Arabic, kana, Han, Hangul: U+0590-06FF,
-- U+3040-30FF, U+3400-9FFF, U+AC00-D7AF) is now kept from 2 characters.
-- Not any non-ASCII letter: the short words of Latin, Cyrillic and Greek
-- alphabets are mostly the function words every text holds, as in English
-- ("für", "для", "más"), and match_products, which has no rarest-first
-- budget, found "Hülle für iPhone 15" for "Gibt es einen Rabatt für
-- Studenten?" by "für". The knowledge search's budget (20261123002600)
-- would mostly drop such a word, but only once it does not fit, so it is
-- left out there too.
--
-- A question typed with a Japanese or Chinese input method often holds
-- full-width letters and digits (ＳＫＵ－１２３４), which the parser reads as
-- other words than the 'sku' '1234' of a chunk. The question's words are now
-- also taken from its NFKC normal form, which folds them to ASCII. Its own
-- words are kept as well: the chunks' fts column is not normalised (that
-- would rewrite every chunk), so a chunk written in full-width is still
-- found by a question written the same way. The parser reads a hyphen or
-- plus before digits as a sign ('SKU-1234' is 'sku' and '-1234'); in a
-- question it joins a code, so a signed number's digits are looked up alone
-- too ('1234', as a chunk reading "SKU 1234" holds them).
--
-- Not done: a run of Han or kana characters, which the parser makes one
-- word (Chinese and Japanese put no spaces between words), is not also
-- tried as a prefix. Looking up prefixes in private.chunk_term_counts needs
-- a range scan per run (in an order the org's collation does not promise
-- for prefixes), and the budget would have to count every word a prefix
-- expands to; splitting such runs needs a segmenter the database does not
-- have.

-- Latest definition: 20261123003500_text_half_follows_rls_bypass.sql; only
-- the words taken from the question are new. Written out here and in
-- match_products rather than in a helper: a SQL function with its own
-- search_path is not inlined, and calling one cost 0.3 ms a search on PGlite
-- (0.08 ms for the whole lookup before, 0.10 ms with the words inline).
create or replace function private.selective_query_terms(org_id uuid, query_text text, budget integer)
returns text[]
language sql
stable
security definer
set search_path = ''
as $$
  select pg_catalog.array_agg(s.term order by s.chunks, s.term)
  from (
    select c.term, c.chunks,
      sum(c.chunks) over (order by c.chunks, c.term) as running
    from (
      select distinct v.word as term
      from (select left(query_text, 2000) as asked) a
      cross join lateral (select left(pg_catalog.normalize(a.asked, 'NFKC'), 2000) as folded) f
      cross join lateral unnest(pg_catalog.tsvector_to_array(
        pg_catalog.to_tsvector('simple', a.asked)
        || pg_catalog.to_tsvector('simple', case when f.folded <> a.asked then f.folded else '' end)
      )) w
      cross join lateral (values (w), (case when w ~ '^[-+][0-9]' then pg_catalog.substr(w, 2) end)) v(word)
      where length(v.word) >= 4 or (length(v.word) >= 2 and v.word ~ '[\u0590-\u06FF\u3040-\u30FF\u3400-\u9FFF\uAC00-\uD7AF]')
    ) q
    join private.chunk_term_counts c on c.org_id = selective_query_terms.org_id and c.term = q.term
    -- The service role too: bot API keys and Telegram chat as it.
    where auth.role() is not distinct from 'service_role'
      or (select private.caller_bypasses_rls())
      or selective_query_terms.org_id = any (array(select private.readable_org_ids('knowledge.read')))
  ) s
  where s.running <= budget;
$$;
comment on function private.selective_query_terms(uuid, text, integer) is 'match_document_chunks'' text half: the query''s words (of 4 characters or more, or 2 or more with a Hebrew, Arabic, kana, Han or Hangul letter, from the query and its NFKC form; a signed number''s digits alone too) the org''s chunks hold, rarest first while their chunk counts add up to budget at most (null when none); only for the service role, roles that bypass RLS, and orgs the caller may read.';

-- Latest definition: 20261123001100_bots_and_chat.sql; only the question's
-- NFKC form beside it (for its words, the name's similarity and the SKU) and
-- the words kept (as in selective_query_terms above) are new.
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
      + case when p.sku is not null and strpos(lower(asked), lower(p.sku)) > 0 then 1 else 0 end)::double precision
  from public.products p
  left join public.catalog_categories c on c.id = p.category_id
  where p.org_id = match_products.org_id
    and p.active
    and ((name_words is not null and p.search @@ name_words)
      or p.name operator(extensions.<%) asked
      or (p.sku is not null and strpos(lower(asked), lower(p.sku)) > 0))
  order by 15 desc, p.name, p.id
  limit match_count;
end;
$$;
