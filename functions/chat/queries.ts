/**
 * The SQL of a chat turn. Each function takes a transaction already scoped to
 * the principal (see principal.ts), so RLS and the SQL functions' own checks
 * decide what the caller may do.
 */
import type { ChatFinishReason, Citation, RetrievedChunk, RetrievedProduct } from '../_shared/chat/index.ts';
import type { TransactionSql } from '../_shared/db.ts';
import { toPgDirection } from '../_shared/embeddings/index.ts';

export type ChatChannel = 'web' | 'telegram' | 'voice' | 'api';

export interface PreparedBot {
  id: string;
  name: string;
  slug: string;
  system_prompt: string;
  greeting: string | null;
  language: string;
  model: string;
  model_provider: 'openai' | 'offline';
  temperature: number;
  max_tokens: number;
  manager_contact: string | null;
  escalation_action: 'notify' | 'transfer' | 'log';
}

export type PrepareRefusalCode =
  | 'bot_disabled'
  | 'channel_not_enabled'
  | 'conversation_closed'
  | 'rate_limited'
  | 'quota_exceeded';

export type PrepareResult =
  | {
    ok: true;
    org_id: string;
    bot: PreparedBot;
    collection_ids: string[] | null;
    conversation_id: string;
    conversation_status: 'open' | 'escalated' | 'closed';
    user_message_id: number;
    history: { role: 'user' | 'assistant' | 'system'; content: string }[];
    /** False once the period's embedding tokens reach the plan's: the question is then not embedded. */
    embeddings_allowed: boolean;
  }
  | {
    ok: false;
    code: PrepareRefusalCode;
    message: string;
    retry_after?: number;
    resets_at?: string;
    /** Which limit a `rate_limited` refusal is: the end user's daily chat tokens, or (absent) a per-minute bucket. */
    limit?: 'end_user_daily_tokens';
  };

export interface PrepareArgs {
  botId: string;
  conversationId: string | null;
  channel: ChatChannel;
  externalUserId: string | null;
  apiKeyId: string | null;
  message: string;
  /**
   * The client's own id for the conversation (a voice platform's call id):
   * the bot's live conversation with it is continued, or started. Null for
   * others; `conversationId` wins over it.
   */
  externalConversationId: string | null;
  /**
   * The Telegram update the turn answers (its claim taken): the question is
   * linked to the claim as it is stored, and a turn claimed again after its
   * worker died resumes with the question already linked. Null for others.
   */
  telegramUpdateId: number | null;
}

/**
 * Authorises the turn, applies the refusals (disabled, channel, closed, rate
 * limit, quota), continues or opens the conversation and stores the question.
 */
export async function chatPrepare(tx: TransactionSql, args: PrepareArgs): Promise<PrepareResult> {
  const [row] = await tx<{ result: PrepareResult }[]>`
    select private.chat_prepare(${args.botId}, ${args.conversationId}, ${args.channel}::public.chat_channel,
      ${args.externalUserId}, ${args.apiKeyId}, ${args.message}, ${args.externalConversationId},
      ${args.telegramUpdateId}::bigint) as result`;
  const result = row.result;
  // numeric comes back as a string in JSON; the provider wants a number.
  if (result.ok) result.bot.temperature = Number(result.bot.temperature);
  return result;
}

/**
 * Why an answer ended, as stored (messages.finish_reason): the model's reason,
 * `interrupted` when the client went away mid-answer, or `error` when the
 * model failed.
 */
export type TurnFinishReason = ChatFinishReason | 'interrupted' | 'error';

export interface FinishArgs {
  conversationId: string;
  content: string;
  tokensIn: number;
  tokensOut: number;
  latencyMs: number;
  model: string;
  citations: Citation[];
  escalationReason: string | null;
  finishReason: TurnFinishReason;
  /** The API key that made this call (metered to it), or null for a user or Telegram. */
  apiKeyId: string | null;
  /** The question the answer answers (the prepared turn's user message): the history puts the answer after it. */
  questionMessageId: number;
}

export interface FinishResult {
  message_id: number;
  conversation_status: 'open' | 'escalated' | 'closed';
  escalated: boolean;
}

/** Stores the answer, meters its tokens to the calling key and, with a reason, escalates the conversation (once). */
export async function chatFinish(tx: TransactionSql, args: FinishArgs): Promise<FinishResult> {
  const [row] = await tx<{ result: FinishResult }[]>`
    select private.chat_finish(${args.conversationId}, ${args.content}, ${args.tokensIn}, ${args.tokensOut},
      ${args.latencyMs}, ${args.model}, ${tx.json(args.citations as unknown as Parameters<typeof tx.json>[0])},
      ${args.escalationReason}, ${args.finishReason}, ${args.apiKeyId}, ${args.questionMessageId}::bigint) as result`;
  return row.result;
}

/**
 * Meters a turn chat_finish refused to store, to its conversation as
 * chat_finish would (private.chat_meter_unstored_turn; service role only):
 * the model answered, so the tokens count all the same.
 */
export async function chatMeterUnstoredTurn(
  tx: TransactionSql,
  args: { conversationId: string; model: string; tokensIn: number; tokensOut: number; apiKeyId: string | null },
): Promise<void> {
  await tx`select private.chat_meter_unstored_turn(${args.conversationId}, ${args.model}, ${args.tokensIn},
    ${args.tokensOut}, ${args.apiKeyId})`;
}

/**
 * Meters a turn whose conversation was deleted while it answered (its bot
 * deleted): no message, the tokens to the org, the key and the user
 * (private.chat_meter_without_conversation; service role only).
 */
export async function chatMeterWithoutConversation(
  tx: TransactionSql,
  args: {
    conversationId: string;
    orgId: string;
    botId: string;
    model: string;
    tokensIn: number;
    tokensOut: number;
    apiKeyId: string | null;
    userId: string | null;
  },
): Promise<void> {
  await tx`select private.chat_meter_without_conversation(${args.conversationId}, ${args.orgId}, ${args.botId},
    ${args.model}, ${args.tokensIn}, ${args.tokensOut}, ${args.apiKeyId}, ${args.userId})`;
}

/** A row of match_document_chunks (and of its text half, match_document_chunks_by_text). */
interface ChunkRow {
  chunk_id: string;
  document_id: string;
  document_name: string;
  page_start: number;
  page_end: number;
  content: string;
  score: number;
}

function retrievedChunk(row: ChunkRow): RetrievedChunk {
  return {
    chunkId: Number(row.chunk_id),
    documentId: row.document_id,
    documentName: row.document_name,
    pageStart: row.page_start,
    pageEnd: row.page_end,
    content: row.content,
    score: Number(row.score),
  };
}

/**
 * The hybrid (vector + full text) matches of the question, as the caller; `model` embedded the question, and
 * the vector half passes over chunks another model embedded.
 */
export async function matchChunks(
  tx: TransactionSql,
  orgId: string,
  embedding: number[],
  question: string,
  collectionIds: string[] | null,
  count: number,
  model: string,
): Promise<RetrievedChunk[]> {
  const rows = await tx<ChunkRow[]>`
    select chunk_id, document_id, document_name, page_start, page_end, content, score
    from public.match_document_chunks(${orgId}, ${toPgDirection(embedding)}::integer[]::extensions.vector, ${question}, ${count},
      ${collectionIds}::uuid[], ${model})`;
  return rows.map(retrievedChunk);
}

/**
 * The full-text matches of the question alone, as the caller: retrieval for a
 * question that could not be embedded (the embedding provider failed).
 */
export async function matchChunksByText(
  tx: TransactionSql,
  orgId: string,
  question: string,
  collectionIds: string[] | null,
  count: number,
): Promise<RetrievedChunk[]> {
  const rows = await tx<ChunkRow[]>`
    select chunk_id, document_id, document_name, page_start, page_end, content, score
    from public.match_document_chunks_by_text(${orgId}, ${question}, ${count}, ${collectionIds}::uuid[])`;
  return rows.map(retrievedChunk);
}

/** Catalog products the question names, as the caller. */
export async function matchProducts(
  tx: TransactionSql,
  orgId: string,
  question: string,
  count: number,
): Promise<RetrievedProduct[]> {
  const rows = await tx<
    {
      id: string;
      name: string;
      description: string;
      price: string;
      currency: string;
      url: string | null;
      stock: number | null;
    }[]
  >`select id, name, description, price::text as price, currency, url, stock
    from public.match_products(${orgId}, ${question}, ${count})`;
  return rows.map((row) => ({
    productId: row.id,
    name: row.name,
    description: row.description,
    price: row.price,
    currency: row.currency,
    url: row.url,
    stock: row.stock,
  }));
}

/**
 * Meters the question's embedding (service role only). A bot, key,
 * conversation or user deleted while the question was embedded is metered as
 * none, and nothing for an org deleted meanwhile (record_usage, 20261123014100).
 */
export async function recordEmbeddingUsage(
  tx: TransactionSql,
  usage: { orgId: string; model: string; tokens: number; apiKeyId: string | null; botId: string; conversationId: string; userId: string | null },
): Promise<void> {
  await tx`select private.record_usage(${usage.orgId}, 'embedding', ${usage.model}, ${usage.tokens}, 0, null,
    ${usage.apiKeyId}, ${usage.botId}, ${usage.conversationId}, ${usage.userId})`;
}

/** The bot an OpenAI-style `model` names in the key's org: its slug or id (service role only). */
export async function botForApiKey(tx: TransactionSql, model: string, orgId: string): Promise<string | null> {
  const [row] = await tx<{ bot_id: string | null }[]>`select private.bot_for_api_key(${model}, ${orgId}) as bot_id`;
  return row.bot_id;
}

export interface TelegramBot {
  org_id: string;
  bot_token: string;
  secret_token: string;
  enabled: boolean;
  telegram_enabled: boolean;
  greeting: string | null;
  /** The bot's language: what the webhook writes itself is in it (botTexts). */
  language: string;
}

/** A bot's Telegram credentials and what the webhook answers with, for the webhook (service role only). */
export async function telegramBot(tx: TransactionSql, botId: string): Promise<TelegramBot | null> {
  const [row] = await tx<TelegramBot[]>`
    select org_id, bot_token, secret_token, enabled, telegram_enabled, greeting, language
    from private.telegram_bot_for_webhook(${botId})`;
  return row ?? null;
}

/** The org's enabled bots that answer over the API, for GET /v1/models (service role; the key names the org). */
export async function listApiBots(tx: TransactionSql, orgId: string): Promise<{ slug: string; created_at: string }[]> {
  return await tx<{ slug: string; created_at: string }[]>`
    select b.slug, b.created_at from public.bots b
    where b.org_id = ${orgId} and b.enabled and 'api' = any (b.channels)
    order by b.slug`;
}

/** How a Telegram update was taken on (private.claim_telegram_update). */
export interface TelegramClaim {
  /** The turn is this delivery's to run. */
  claimed: boolean;
  /** Not claimed, and the turn's answer is stored but not yet sent: its text. */
  answer: string | null;
  /** Not claimed, and another delivery's lease holds with nothing settled: its remaining seconds (at least 1). */
  retry_after_seconds: number | null;
}

/**
 * Takes a Telegram update on once per bot (service role only): claimed for the
 * first delivery, and for a redelivery once the claim's lease ran out with
 * nothing settled (its worker died); otherwise not claimed, with the stored
 * answer's text when the turn got that far, or the live lease's remaining
 * seconds when nothing is settled yet.
 */
export async function claimTelegramUpdate(tx: TransactionSql, botId: string, updateId: number): Promise<TelegramClaim> {
  const [row] = await tx<TelegramClaim[]>`
    select claimed, answer, retry_after_seconds from private.claim_telegram_update(${botId}, ${updateId})`;
  return row;
}

/**
 * Unlinks a delivered answer from its update and settles the claim (service
 * role only; also once a refusal or failure was told in the chat): the link
 * means "stored, not yet sent", so a later redelivery (Telegram retries when
 * our 200 came late) does not send it a second time, nor run the turn again.
 */
export async function telegramUpdateSent(tx: TransactionSql, botId: string, updateId: number): Promise<void> {
  await tx`select private.telegram_update_answered(${botId}, ${updateId}, null)`;
}

/**
 * Ends a claim's lease when its turn failed before anything was answered, so
 * Telegram's redelivery runs it (service role only); a question the turn
 * stored stays linked, and the redelivery resumes with it.
 */
export async function releaseTelegramUpdate(tx: TransactionSql, botId: string, updateId: number): Promise<void> {
  await tx`select private.release_telegram_update(${botId}, ${updateId})`;
}
