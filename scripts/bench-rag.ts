import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { benchRetrieval } from './bench/rag-retrieval.ts';

/**
 * `npm run bench:rag`: the knowledge base's benchmarks, each on its own
 * throwaway embedded stack, one after the other.
 * 1. retrieval (scripts/bench/rag-retrieval.ts): match_document_chunks over
 *    100,000 chunks in 20 orgs, latency and recall@10 against an exact scan;
 * 2. ingestion (scripts/bench/rag-ingest.ts, when present).
 * Prints figures and exits 0.
 */
await benchRetrieval();

const ingestModule = new URL('./bench/rag-ingest.ts', import.meta.url);
if (existsSync(fileURLToPath(ingestModule))) {
  console.log('');
  const { benchIngest } = (await import(ingestModule.href)) as { benchIngest: () => Promise<void> };
  await benchIngest();
} else {
  console.log('\nIngestion bench skipped: scripts/bench/rag-ingest.ts is not there yet.');
}
