import { benchIngest } from './bench/rag-ingest.ts';
import { benchRetrieval } from './bench/rag-retrieval.ts';

/**
 * `npm run bench:rag`: the knowledge base's benchmarks, each on its own
 * throwaway embedded stack, one after the other.
 * 1. retrieval (scripts/bench/rag-retrieval.ts): match_document_chunks over
 *    100,000 chunks in 20 orgs, latency and recall@10 against an exact scan;
 * 2. ingestion (scripts/bench/rag-ingest.ts): pages per second and the time
 *    from upload to searchable.
 * Prints figures and exits 0.
 */
await benchRetrieval();
console.log('');
await benchIngest();
