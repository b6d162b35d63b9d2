/**
 * POST /functions/v1/knowledge/search: the org's knowledge base searched as
 * the chat does (match_document_chunks: vector and full-text ranks fused), for
 *  - an API key with `knowledge.read` (a voice agent's or a server's tool
 *    call): its own org, at the key's rate limit (the bucket the chat
 *    endpoints take from), run as the service role with the key as actor;
 *  - a signed-in user with `knowledge.read` in `org_id` (viewers and up), run
 *    as the user, so the chunks' policies decide.
 * `bot_id` searches what that bot answers from (match_bot_chunks), and
 * `collection_ids` those collections. The query's embedding is metered to the
 * org as any other (kind `embedding`), and refused (402 `quota_exceeded`, as
 * every plan quota) before anything is embedded once the org's embedding
 * tokens of the period are used up. The vector half passes over chunks of
 * documents another model embedded (the query's model is passed on; those of
 * unknown model are kept); the full-text half does not.
 */
import { z } from 'zod';
import type { AuthOptions } from '../_shared/auth.ts';
import { asServiceRole, type Sql } from '../_shared/db.ts';
import { type EmbeddingProvider, EmbeddingProviderError, toPgDirection } from '../_shared/embeddings/index.ts';
import { embeddingQuotaRefusal } from '../_shared/embeddings/quota.ts';
import { HttpError } from '../_shared/errors.ts';
import { trimmedText } from '../_shared/text/code-points.ts';
import { hasNoNul, NUL_MESSAGE } from '../_shared/text/nul.ts';
import { json, readJson } from '../_shared/http.ts';
import { asCaller, authenticateCaller, type Caller, callerOrg, takeUserRateLimit } from './caller.ts';

/** As long as a chat question may be (MAX_QUESTION_CHARS of the chat function). */
const MAX_QUERY_CHARS = 8000;
/** The match functions' own bounds. */
const MAX_MATCH_COUNT = 50;
const MAX_COLLECTIONS = 100;

const uuid = z.guid();

export const searchBody = z
  .strictObject({
    query: trimmedText(MAX_QUERY_CHARS, `has at most ${MAX_QUERY_CHARS} characters`)
      .pipe(z.string().min(1, 'must not be empty').refine(hasNoNul, NUL_MESSAGE)),
    org_id: uuid.optional(),
    match_count: z.number().int().min(1).max(MAX_MATCH_COUNT).default(10),
    collection_ids: z.array(uuid).min(1).max(MAX_COLLECTIONS).optional(),
    bot_id: uuid.optional(),
  })
  .refine((body) => !(body.bot_id && body.collection_ids), {
    message: 'bot_id and collection_ids cannot be combined (a bot searches its own collections)',
  });
type SearchBody = z.infer<typeof searchBody>;

export interface SearchResult {
  chunk_id: number;
  document_id: string;
  document_name: string;
  collection_id: string | null;
  page_start: number;
  page_end: number;
  content: string;
  score: number;
  vector_rank: number | null;
  text_rank: number | null;
}

const SEARCH_ERRORS = { forbidden: 'You may not search this knowledge base.', notFound: 'The bot was not found.' };

/**
 * The org searched (callerOrg); a bot must be in it, checked as the caller
 * (a user sees only bots of orgs they may read) before anything is embedded:
 * match_bot_chunks searches the bot's own org, and the embedding is metered
 * to this one with the bot, which usage_events_bot_fk holds to the same org.
 */
async function orgToSearch(sql: Sql, caller: Caller, body: SearchBody): Promise<string> {
  const orgId = await callerOrg(sql, caller, body.org_id, 'knowledge.read');
  const botId = body.bot_id;
  if (botId) {
    const [bot] = await asCaller(
      sql,
      caller,
      (tx) => tx<{ id: string }[]>`select b.id from public.bots b where b.id = ${botId}::uuid and b.org_id = ${orgId}::uuid`,
      SEARCH_ERRORS,
    );
    if (!bot) throw new HttpError(404, 'not_found', SEARCH_ERRORS.notFound);
  }
  return orgId;
}

/**
 * Meters the query's embedding (record_usage meters a key, bot or user deleted
 * meanwhile as none, and nothing for an org deleted meanwhile). Bookkeeping, as
 * the chat's: a failure is logged, and the search that was served (or its 503)
 * is answered all the same.
 */
async function meter(sql: Sql, caller: Caller, orgId: string, body: SearchBody, model: string, tokens: number): Promise<void> {
  if (tokens <= 0) return;
  try {
    await asServiceRole(sql, (tx) =>
      tx`select private.record_usage(${orgId}::uuid, 'embedding', ${model}, ${tokens}, 0, null,
        ${caller.kind === 'key' ? caller.key.apiKeyId : null}::uuid, ${body.bot_id ?? null}::uuid, null,
        ${caller.kind === 'user' ? caller.claims.sub : null}::uuid)`);
  } catch (error) {
    console.error(`knowledge/search: org ${orgId}: metering the query's embedding (${tokens} tokens) failed`, error);
  }
}

export async function searchKnowledge(
  sql: Sql,
  req: Request,
  embeddings: EmbeddingProvider,
  options: AuthOptions,
): Promise<Response> {
  const caller = await authenticateCaller(sql, req, options, 'knowledge.read');
  const body = await readJson(req, searchBody);
  const orgId = await orgToSearch(sql, caller, body);
  await takeUserRateLimit(sql, caller, 'knowledge_search');
  // After the limiter, as chat_prepare: a request refused for quota keeps its hit.
  const refusal = await embeddingQuotaRefusal(sql, orgId);
  if (refusal) throw new HttpError(402, 'quota_exceeded', refusal.message);

  let embedded;
  try {
    embedded = await embeddings.embed([body.query]);
  } catch (error) {
    if (!(error instanceof EmbeddingProviderError)) throw error;
    await meter(sql, caller, orgId, body, embeddings.model, error.tokensSpent);
    throw new HttpError(503, 'embeddings_unavailable', 'The query could not be embedded; try again.', { 'retry-after': '5' }, {
      cause: error,
    });
  }
  const direction = toPgDirection(embedded.vectors[0]);
  const [rows] = await Promise.all([
    asCaller(sql, caller, (tx) =>
      body.bot_id
        ? tx<SearchResult[]>`
            select chunk_id, document_id, document_name, collection_id, page_start, page_end, content, score,
              vector_rank, text_rank
            from public.match_bot_chunks(${body.bot_id}::uuid, ${direction}::integer[]::extensions.vector, ${body.query},
              ${body.match_count}, ${embeddings.model})`
        : tx<SearchResult[]>`
            select chunk_id, document_id, document_name, collection_id, page_start, page_end, content, score,
              vector_rank, text_rank
            from public.match_document_chunks(${orgId}::uuid, ${direction}::integer[]::extensions.vector, ${body.query},
              ${body.match_count}, ${body.collection_ids ?? null}::uuid[], ${embeddings.model})`, SEARCH_ERRORS),
    meter(sql, caller, orgId, body, embeddings.model, embedded.tokens),
  ]);
  return json({
    object: 'list',
    data: rows.map((row) => ({ ...row, chunk_id: Number(row.chunk_id), score: Number(row.score) })),
    model: embeddings.model,
    usage: { embedding_tokens: embedded.tokens },
  });
}
