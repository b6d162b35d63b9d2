-- The org graphs are built with ef_construction 128 (pgvector's default is
-- 64; m stays 16). Graph construction is randomised, and with 64 some builds
-- of a 25,000-chunk org left neighbours a search could not reach: recall@10
-- at ef_search 40 ranged from 0.956 to 0.988 over builds of the same data,
-- and raising ef_search to 200 only brought the worst build to 0.969. With
-- 128 the same data gives 0.990, searches cost the same, and a build takes
-- about a third longer (npm run bench:rag: 162 s for 100,000 chunks instead of
-- 123-129 s; an inserted chunk pays the same share).
--
-- On a database that already holds chunks this rebuilds every org's graph in
-- the migration's transaction (a partitioned index cannot be built
-- concurrently), taking a lock that blocks writes to document_chunks until it
-- ends: apply it in a quiet hour.

drop index public.document_chunks_embedding_idx;
create index document_chunks_embedding_idx on public.document_chunks
  using hnsw (embedding extensions.vector_cosine_ops) with (m = 16, ef_construction = 128);
