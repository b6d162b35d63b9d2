/**
 * The knowledge base operations that need more than SQL, and the documents
 * API for servers holding an API key. People upload from the frontend
 * straight to Storage (the upload queues ingestion) and read documents
 * through PostgREST under RLS; deleting a document also removes its file,
 * which only the Storage API can do, and a search needs the query embedded.
 *
 *   GET    /functions/v1/knowledge/documents           200 the key's org's documents, newest first, filtered,
 *                                                       cursor-paged; an API key with knowledge.read (list.ts)
 *   GET    /functions/v1/knowledge/documents/:id       200 one document of the key's org; knowledge.read (retrieve.ts)
 *   POST   /functions/v1/knowledge/documents           202 the document, queued; an API key with knowledge.write
 *                                                       sends a file's bytes (upload.ts)
 *   POST   /functions/v1/knowledge/documents/:id/retry 202 a failed document of the key's org, queued again;
 *                                                       knowledge.write; 409 not_retryable unless failed (retry.ts)
 *   DELETE /functions/v1/knowledge/documents/:id       204; a user: 403 below admin, 404 when not visible;
 *                                                       an API key with knowledge.write: its org's documents
 *   POST   /functions/v1/knowledge/search              200 ranked chunks; an API key with knowledge.read,
 *                                                       or a user with knowledge.read in org_id (search.ts)
 *   POST   /functions/v1/knowledge/products/search     200 catalog products; an API key with catalog.read,
 *                                                       or a user with catalog.read in org_id (products.ts)
 *   POST   /functions/v1/knowledge/reembed             202 { queued, remaining }: ready documents not embedded by
 *                                                       the deployment's model queued again; an API key with
 *                                                       knowledge.write, or a user with it in org_id (reembed.ts)
 *
 * List, read and retry take API keys only (a user token is a 401
 * api_key_required); every key request takes from the key's one rate-limit
 * bucket. Documents show as representation.ts has them.
 *
 * The gateway does not check tokens here (verify_jwt = false): API keys are
 * not JWTs. Every route verifies its caller itself.
 */
import { getSql, type Sql } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { HttpError } from '../_shared/errors.ts';
import { createHandler } from '../_shared/handler.ts';
import { lazyServiceClient } from '../_shared/service-storage.ts';
import { embeddingModelFromEnv, type EmbeddingProvider, interactiveProviderFromEnv } from '../_shared/embeddings/index.ts';
import { authenticateCaller } from './caller.ts';
import { deleteDocument, type KnowledgeStore } from './documents.ts';
import { listDocuments } from './list.ts';
import { searchProducts } from './products.ts';
import { reembedDocuments } from './reembed.ts';
import { retrieveDocument } from './retrieve.ts';
import { retryDocument } from './retry.ts';
import { matchRoute } from './router.ts';
import { searchKnowledge } from './search.ts';
import { uploadDocument } from './upload.ts';

export interface KnowledgeDeps {
  sql: () => Sql;
  env?: EnvReader;
  store?: KnowledgeStore;
  embeddings?: EmbeddingProvider;
}

export function createKnowledgeHandler(deps: KnowledgeDeps): (req: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const store = deps.store ?? serviceRoleStore(env);
  // The model a query is embedded with, what the documents' chunks must match: the document routes need it
  // alone, not a provider.
  const currentModel = () => deps.embeddings?.model ?? embeddingModelFromEnv(env);
  return createHandler(async (req) => {
    const route = matchRoute(req.method, new URL(req.url).pathname);
    switch (route.name) {
      case 'listDocuments':
        return await listDocuments(deps.sql(), req, currentModel());
      case 'retrieveDocument':
        return await retrieveDocument(deps.sql(), req, route.id, currentModel());
      case 'retryDocument':
        return await retryDocument(deps.sql(), req, route.id, currentModel());
      case 'uploadDocument':
        return await uploadDocument(deps.sql(), req, store, currentModel(), { env });
      case 'deleteDocument': {
        // Users delete as often as they click; a key's request was taken from its bucket when it was verified.
        const caller = await authenticateCaller(deps.sql(), req, { env }, 'knowledge.write');
        await deleteDocument(deps.sql(), caller, store, route.id);
        return new Response(null, { status: 204 });
      }
      case 'search':
        return await searchKnowledge(deps.sql(), req, deps.embeddings ?? interactiveProviderFromEnv(env), { env });
      case 'searchProducts':
        return await searchProducts(deps.sql(), req, { env });
      case 'reembed':
        return await reembedDocuments(deps.sql(), req, currentModel(), { env });
    }
  }, { env });
}

function serviceRoleStore(env: EnvReader): KnowledgeStore {
  const client = lazyServiceClient(env);
  const bucket = () => client().storage.from('knowledge');
  return {
    async upload(path, bytes, contentType) {
      // A copy: Blob takes views of a plain ArrayBuffer only, and the type of `bytes` does not promise one.
      const { error } = await bucket().upload(path, new Blob([new Uint8Array(bytes)], { type: contentType }), { contentType });
      if (error) throw error;
    },
    async remove(path) {
      // Removing an object that is already gone is not an error (a retried delete).
      const { error } = await bucket().remove([path]);
      if (error) {
        throw new HttpError(503, 'storage_unavailable', 'The file could not be removed; try again.', { 'retry-after': '5' }, {
          cause: error,
        });
      }
    },
  };
}

export const handler = createKnowledgeHandler({ sql: () => getSql() });
