/**
 * One chat turn, whatever the entry point (SSE for signed-in users, the
 * OpenAI-compatible endpoint for API keys, Telegram):
 * 1. prepare, before any model call: the caller may chat with the bot, the bot
 *    is enabled on the channel, the caller is within its rate limit and the
 *    org within its quota; the question is stored (private.chat_prepare);
 * 2. retrieve: the question's embedding against the org's documents (hybrid
 *    match, limited to the bot's collections) and the catalog's products.
 *    When the question cannot be embedded (EmbeddingProviderError: the
 *    provider down, rate limited or unreachable, its retries spent), the turn
 *    still answers: the documents are searched by full text alone
 *    (match_document_chunks_by_text), the failed embedding meters nothing
 *    (only tokens a provider reports spent before it failed), and a warning
 *    naming the conversation is logged. So is a question of an org whose
 *    plan's embedding tokens are used up (prepare says so): not embedded,
 *    the turn still answers;
 * 3. answer: the prompt from the bot's settings and the sources, streamed by
 *    the bot's provider; or, when the user asks for a person, the handoff;
 *    or, for a booking step, the appointment booked in a free slot (booking.ts);
 * 4. finish: the answer stored with tokens, latency, citations and finish
 *    reason, usage metered to the calling key (replacing the turn's quota
 *    reservation), and the conversation escalated when the user asked for a
 *    person or the sources held no answer (private.chat_finish, as the
 *    service: prepare authorised the turn). A failed metering of the
 *    question's embedding is logged and does not stop it. A turn whose client went away mid-answer finishes
 *    too, as `interrupted`: the model was called, so its tokens are metered
 *    (else cancelling would dodge the quota) and what was streamed is stored;
 *    gone before the provider took the request (while it answered 429 or 5xx
 *    and we waited to retry), nothing was billed, so nothing is metered.
 *    So does a turn whose model fails (ChatProviderError, its retries spent),
 *    as `error`: what was streamed before the failure is stored (empty if
 *    nothing was) and metered (the prompt once a try was accepted or text
 *    came; nothing when every try was refused), and the result
 *    carries the failure for the entry point to tell its client.
 *    A turn whose conversation was deleted meanwhile (its bot deleted) is
 *    metered without it (private.chat_meter_without_conversation), stores
 *    nothing, and fails with 410 `conversation_deleted`.
 *    An empty answer (a content filter, a reasoning model spending its whole
 *    budget) is stored empty with the model's finish reason, and metered.
 *    An answer is what can be stored (AnswerText): U+0000 dropped, and the
 *    model no longer read (its stream aborted) once it reaches 32,000
 *    characters, ending as `length`, metered as an interrupted turn is (no
 *    usage came). A `transfer` bot's answer stops short of 32,000 by the
 *    room its contact sentence takes in the longest language, so that a
 *    no-answer, even a cut one, still takes its contact and is escalated.
 *    The client is sent exactly what is stored. Should chat_finish refuse a
 *    turn all the same, its tokens are metered without a message
 *    (private.chat_meter_unstored_turn) and the turn fails.
 *    An answer records the question it answers (the prepared turn's), so the
 *    history puts it right after that question even when two turns of one
 *    conversation ran at once.
 */
import {
  AnswerText,
  buildChatMessages,
  type ChatMessage,
  type ChatProvider,
  ChatProviderError,
  chatProviderFor,
  type Citation,
  countPromptTokens,
  detectsHumanRequest,
  extractCitations,
  isNoAnswer,
  MAX_ANSWER_CHARS,
  type RetrievedChunk,
  type RetrievedProduct,
} from '../_shared/chat/index.ts';
import { botTexts } from '../_shared/chat/bot-texts.ts';
import { noAnswerLanguage } from '../_shared/chat/escalation.ts';
import { noAnswerContact, noAnswerContactRoom } from '../_shared/chat/no-answer-contact.ts';
import type { Sql } from '../_shared/db.ts';
import { type EmbeddingProvider, EmbeddingProviderError, interactiveProviderFromEnv } from '../_shared/embeddings/index.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { HttpError } from '../_shared/errors.ts';
import { isPostgresError } from '../_shared/pg-errors.ts';
import { countTokensUpTo } from '../_shared/text/tokens.ts';
import type { BookingRequest } from '../_shared/scheduling/booking-body.ts';
import { type BookingReply, bookingReply } from './booking.ts';
import { asService, type ChatPrincipal, inScope } from './principal.ts';
import * as q from './queries.ts';

/** Chunks and products put before the model: enough to answer, few enough to keep the prompt short. */
const CHUNKS_PER_ANSWER = 5;
const PRODUCTS_PER_ANSWER = 3;
/** Stored as the answer's model when a booking step answered: no model was asked. */
const BOOKING_MODEL = 'booking';
/** Stored as the answer's model when the user asked for a person: no model was asked either. */
const HANDOFF_MODEL = 'handoff';

export interface ChatDeps {
  sql: () => Sql;
  env?: EnvReader;
  /** Defaults from the environment (OpenAI with a key, else offline). */
  embeddings?: EmbeddingProvider;
  chatProvider?: (model: { id: string; provider: 'openai' | 'offline' }) => ChatProvider;
}

export interface TurnInput {
  principal: ChatPrincipal;
  botId: string;
  conversationId: string | null;
  channel: q.ChatChannel;
  externalUserId: string | null;
  /** A voice platform's call id, keying the bot's conversation for that call (chat/completions only). */
  externalConversationId?: string | null;
  /** The Telegram update the turn answers (telegram-webhook.ts only; see PrepareArgs). */
  telegramUpdateId?: number | null;
  message: string;
  /**
   * Earlier turns as the client holds them (OpenAI-style clients resend the
   * whole conversation); null to use the conversation's stored messages.
   */
  history: ChatMessage[] | null;
  /** When the request arrived, for the stored latency. */
  startedAt: number;
  /** A booking step (see booking.ts): the turn books instead of asking the model. */
  booking?: BookingRequest | null;
  /**
   * The client's connection: aborted when it goes away, which stops the model
   * and finishes the turn as `interrupted` (stored and metered) instead of
   * failing it.
   */
  signal?: AbortSignal;
}

/**
 * Why the answer ended: the model's reason (`content_filter` and `length`
 * may come with no text at all), `interrupted` when the client went away
 * before the end (nobody reads the result then; it is what is stored), or
 * `error` when the model failed (the result's `failure` says how; the
 * content is what was streamed before, possibly nothing).
 */
export type TurnFinishReason = q.TurnFinishReason;

export type PreparedTurn = Extract<q.PrepareResult, { ok: true }>;

export interface TurnResult {
  messageId: number;
  content: string;
  citations: Citation[];
  tokensIn: number;
  tokensOut: number;
  latencyMs: number;
  model: string;
  finishReason: TurnFinishReason;
  conversationStatus: 'open' | 'escalated' | 'closed';
  escalated: boolean;
  /** What a booking step booked; null otherwise. */
  appointment: BookingReply['appointment'];
  /** Why the model failed, when `finishReason` is `error` (the answer is stored and metered all the same); else null. */
  failure: ChatProviderError | null;
}

export type TurnEvent = { type: 'delta'; text: string } | { type: 'result'; result: TurnResult };

/** What a refusal of chat_prepare answers over HTTP. */
function refusal(result: Extract<q.PrepareResult, { ok: false }>): HttpError {
  switch (result.code) {
    case 'rate_limited':
      // Which limit, for clients (and Telegram's wording) to tell a day's budget from a minute's bucket.
      return new HttpError(429, 'rate_limited', result.message, {
        'retry-after': String(result.retry_after ?? 60),
        ...(result.limit ? { 'x-ratelimit-scope': result.limit } : {}),
      });
    case 'quota_exceeded':
      return new HttpError(402, 'quota_exceeded', result.message);
    case 'conversation_closed':
      return new HttpError(409, 'conversation_closed', result.message);
    case 'bot_disabled':
    case 'channel_not_enabled':
      return new HttpError(403, result.code, result.message);
  }
}

/** Step 1. Throws the HTTP answer for a refusal; nothing is stored then. */
export async function prepareTurn(deps: ChatDeps, input: TurnInput): Promise<PreparedTurn> {
  const result = await inScope(deps.sql(), input.principal, (tx) =>
    q.chatPrepare(tx, {
      botId: input.botId,
      conversationId: input.conversationId,
      channel: input.channel,
      externalUserId: input.externalUserId,
      apiKeyId: input.principal.kind === 'service' ? input.principal.apiKeyId : null,
      message: input.message,
      externalConversationId: input.externalConversationId ?? null,
      telegramUpdateId: input.telegramUpdateId ?? null,
    }));
  if (!result.ok) throw refusal(result);
  return result;
}

/**
 * The reply when the user asks for a person, in the bot's language (English
 * for 'auto'); the bot's escalation action decides what it promises.
 */
function handoffText(bot: q.PreparedBot): string {
  const texts = botTexts(bot.language);
  if (bot.escalation_action === 'transfer' && bot.manager_contact) return texts.handoffTransfer(bot.manager_contact);
  return bot.escalation_action === 'log' ? texts.handoffLog : texts.handoffNotify;
}

/**
 * Steps 2 to 4, as events: the answer's text as it comes, then the stored
 * result. A turn that ends without its result (an error after chat_prepare,
 * a refused chat_finish, a reader that stopped) gives its quota reservation
 * back, so tokens nothing spent do not count against the org for 10 minutes.
 */
export async function* answerTurn(deps: ChatDeps, input: TurnInput, turn: PreparedTurn): AsyncGenerator<TurnEvent> {
  let stored = false;
  try {
    for await (const event of answerSteps(deps, input, turn)) {
      if (event.type === 'result') stored = true;
      yield event;
    }
  } finally {
    if (!stored) {
      await asService(deps.sql(), input.principal, (tx) =>
        tx`select private.release_chat_reservation(${turn.conversation_id}::uuid, ${turn.user_message_id}::bigint)`).catch((error) =>
          console.error(`chat: conversation ${turn.conversation_id}: giving back the quota reservation failed`, error)
        );
    }
  }
}

async function* answerSteps(deps: ChatDeps, input: TurnInput, turn: PreparedTurn): AsyncGenerator<TurnEvent> {
  const env = deps.env ?? processEnv;
  const bot = turn.bot;
  const question = input.message.trim();
  let content = '';
  let tokensIn = 0;
  let tokensOut = 0;
  let model: string;
  let finishReason: TurnFinishReason = 'stop';
  let citations: Citation[] = [];
  let escalationReason: string | null = null;
  let pendingMetering: Promise<void> = Promise.resolve();
  let appointment: BookingReply['appointment'] = null;
  let failure: ChatProviderError | null = null;

  if (input.booking) {
    const reply = await bookingReply({
      sql: deps.sql,
      env,
      principal: input.principal,
      orgId: turn.org_id,
      botId: bot.id,
      conversationId: turn.conversation_id,
      language: bot.language,
      booking: input.booking,
    });
    content = reply.content;
    appointment = reply.appointment;
    model = BOOKING_MODEL;
    yield { type: 'delta', text: content };
  } else if (detectsHumanRequest(question)) {
    content = handoffText(bot);
    model = HANDOFF_MODEL;
    escalationReason = 'The user asked for a person.';
    yield { type: 'delta', text: content };
  } else {
    const { chunks, products, metering } = await retrieve(deps, input, turn, question);
    // Awaited before the answer is stored, not before the first token.
    pendingMetering = metering;
    const provider = (deps.chatProvider ?? ((m) => chatProviderFor(m, env)))({ id: bot.model, provider: bot.model_provider });
    model = provider.name === 'offline' ? 'offline' : bot.model;
    const messages = buildChatMessages({
      bot: { name: bot.name, systemPrompt: bot.system_prompt, language: bot.language, managerContact: bot.manager_contact },
      // An answer stored empty (the model gave no text) is left out there too (trimHistory skips blank turns).
      history: input.history ?? turn.history.filter((m): m is ChatMessage => m.role !== 'system'),
      question,
      chunks,
      products,
    });
    // A transfer bot appends its contact to a no-answer: the answer keeps room for it, so that with the contact it
    // is still storable (chat_finish refuses more than MAX_ANSWER_CHARS) and the client is sent what is stored.
    const transferContact = bot.escalation_action === 'transfer' ? bot.manager_contact : null;
    const answer = new AnswerText(MAX_ANSWER_CHARS - (transferContact ? noAnswerContactRoom(transferContact) : 0));
    // Everything the model sent, for counting its tokens when it sends no usage.
    let modelText = '';
    // Whether the provider took the request (a 2xx): only then was the prompt billed.
    let accepted = false;
    if (input.signal?.aborted) {
      // Gone before the model was asked: the turn ends stored as interrupted, with no model tokens.
      finishReason = 'interrupted';
    } else {
      try {
        for await (
          const delta of provider.stream({
            model: bot.model,
            messages,
            temperature: bot.temperature,
            maxTokens: bot.max_tokens,
            context: { chunks, products },
            language: bot.language,
            signal: input.signal,
            onAccepted: () => {
              accepted = true;
            },
          })
        ) {
          if (delta.type === 'delta') {
            modelText += delta.text;
            const text = answer.append(delta.text);
            content = answer.text;
            if (text !== '') yield { type: 'delta', text };
            if (answer.full) {
              // Leaving the loop stops the stream (the SDK aborts the request); no usage comes, so the
              // tokens are counted as for an interrupted turn: the prompt, and all the model sent.
              finishReason = 'length';
              tokensIn = countPromptTokens(messages);
              tokensOut = countTokensUpTo(modelText);
              break;
            }
          } else {
            tokensIn = delta.usage.tokensIn;
            tokensOut = delta.usage.tokensOut;
            finishReason = delta.finishReason;
          }
        }
      } catch (error) {
        if (input.signal?.aborted) {
          // The client went away mid-answer. The provider's usage comes only at the end of a stream, so
          // the tokens are ours to count: the whole prompt (the model read it) and the text streamed so far.
          // Gone while the provider still refused (429 or 5xx, waiting to retry): nothing was billed, as
          // when the retries run out.
          finishReason = 'interrupted';
          tokensIn = accepted || modelText !== '' ? countPromptTokens(messages) : 0;
          tokensOut = countTokensUpTo(modelText);
        } else if (error instanceof ChatProviderError) {
          // The model failed, its retries spent. The turn still ends: what was streamed is the answer,
          // stored as `error`. Metered as for `interrupted`: the prompt once a try was accepted (the model
          // read it) or text came, and that text; every try refused (an error status, a connection lost
          // before any answer): no tokens.
          finishReason = 'error';
          failure = error;
          tokensIn = accepted || modelText !== '' ? countPromptTokens(messages) : 0;
          tokensOut = countTokensUpTo(modelText);
        } else {
          throw error;
        }
      }
    }
    // A model may end with no text (content_filter, or length for a reasoning model that spent its
    // budget thinking): stored empty, with that reason, rather than refused.
    if (content.trim() === '') content = '';
    if (finishReason === 'interrupted' || finishReason === 'error' || content === '') {
      // Not taken for the "no answer" sentence (no escalation on a cut or empty answer); a partial answer
      // keeps the citations it got to.
      if (content !== '') citations = extractCitations(content, { chunks, products });
    } else if (isNoAnswer(content, bot.manager_contact)) {
      escalationReason = 'The knowledge base holds no answer.';
      if (transferContact) {
        // In the language of the sentence the model said: the bot's, or for 'auto' the one it picked for the user.
        const language = bot.language === 'auto' ? noAnswerLanguage(content, transferContact) ?? 'en' : bot.language;
        const contact = noAnswerContact(language, transferContact);
        content += contact;
        yield { type: 'delta', text: contact };
      }
    } else {
      // Not the no-answer, as just decided with the bot's contact: the answer is not read for it again.
      citations = extractCitations(content, { chunks, products }, false);
    }
  }

  // The embedding's metering is bookkeeping: its failure is logged, and the turn is stored and metered all the same.
  await pendingMetering.catch((error) =>
    console.error(`chat: conversation ${turn.conversation_id}: metering the question's embedding failed`, error)
  );
  const latencyMs = Math.max(0, Math.round(performance.now() - input.startedAt));
  // As the service: chat_prepare authorised the turn, and a user who loses chat.use while the answer streams must
  // not lose the answer or its metering. chat_finish credits a user's turn through the conversation's user_id.
  const finished = await finishTurn(deps, input, turn, {
    conversationId: turn.conversation_id,
    content,
    tokensIn,
    tokensOut,
    latencyMs,
    model,
    citations,
    escalationReason,
    finishReason,
    // Usage goes to the key that called, whichever key started the conversation.
    apiKeyId: input.principal.kind === 'service' ? input.principal.apiKeyId : null,
    questionMessageId: turn.user_message_id,
  });
  yield {
    type: 'result',
    result: {
      messageId: finished.message_id,
      content,
      citations,
      tokensIn,
      tokensOut,
      latencyMs,
      model,
      finishReason,
      conversationStatus: finished.conversation_status,
      escalated: finished.escalated,
      appointment,
      failure,
    },
  };
}

class ConversationGone extends Error {}

/**
 * Step 4, private.chat_finish. A conversation deleted while the bot answered
 * (its bot deleted, which deletes its conversations and their reservations)
 * has nowhere to store the answer: the turn is metered all the same, to the
 * org, the key and the user (the model spent the tokens, and deleting the bot
 * must not make answers free), and the client gets 410 `conversation_deleted`.
 * A turn chat_finish refuses for any other reason is metered too, to its
 * conversation, and fails as ours (500, or `internal_error` ending a stream;
 * the reservation is given back by answerTurn).
 */
async function finishTurn(deps: ChatDeps, input: TurnInput, turn: PreparedTurn, args: q.FinishArgs): Promise<q.FinishResult> {
  try {
    return await asService(deps.sql(), input.principal, async (tx) => {
      try {
        return await q.chatFinish(tx, args);
      } catch (error) {
        // chat_finish's only no_data_found: the conversation is gone. Told apart here, before asService
        // makes every no_data_found a 404; thrown, so that the failed transaction rolls back.
        throw isPostgresError(error) && error.code === 'P0002' ? new ConversationGone() : error;
      }
    });
  } catch (error) {
    if (!(error instanceof ConversationGone)) {
      await asService(deps.sql(), input.principal, (tx) => q.chatMeterUnstoredTurn(tx, args)).catch((meterError) =>
        console.error(`chat: conversation ${args.conversationId}: metering a turn chat_finish refused failed`, meterError)
      );
      // Ours, not the client's: a 500, not the 422 a raw invalid_parameter_value would be taken for.
      throw new Error(`chat: conversation ${args.conversationId}: chat_finish refused the turn`, { cause: error });
    }
  }
  await asService(deps.sql(), input.principal, (tx) =>
    q.chatMeterWithoutConversation(tx, {
      conversationId: args.conversationId,
      orgId: turn.org_id,
      botId: turn.bot.id,
      model: args.model,
      tokensIn: args.tokensIn,
      tokensOut: args.tokensOut,
      apiKeyId: args.apiKeyId,
      userId: input.principal.kind === 'user' ? input.principal.claims.sub : null,
    }));
  throw new HttpError(
    410,
    'conversation_deleted',
    'The conversation was deleted (with its bot) while the bot answered; the answer was not stored.',
  );
}

/**
 * The question's embedding, or null when the provider failed (its retries
 * spent): the turn then retrieves by full text alone. Tokens a provider
 * reports spent before failing are metered all the same; a failed request
 * of one question spends none, so meters nothing.
 */
async function embedQuestion(
  embeddings: EmbeddingProvider,
  question: string,
  conversationId: string,
): Promise<{ vector: number[] | null; tokens: number }> {
  try {
    const embedded = await embeddings.embed([question]);
    return { vector: embedded.vectors[0], tokens: embedded.tokens };
  } catch (error) {
    if (!(error instanceof EmbeddingProviderError)) throw error;
    console.warn(
      `chat: conversation ${conversationId}: the question could not be embedded; answering from a full-text search only`,
      error,
    );
    return { vector: null, tokens: error.tokensSpent };
  }
}

/**
 * Step 2: the question's sources, read as the caller; the embedding's tokens
 * metered as the service (the metering is returned, not awaited). The
 * question is embedded only once prepare has let the turn through: an
 * embedding is a model call, and a refused turn must not spend one.
 */
async function retrieve(
  deps: ChatDeps,
  input: TurnInput,
  turn: PreparedTurn,
  question: string,
): Promise<{ chunks: RetrievedChunk[]; products: RetrievedProduct[]; metering: Promise<void> }> {
  const embeddings = deps.embeddings ?? interactiveProviderFromEnv(deps.env ?? processEnv);
  const embedded = turn.embeddings_allowed
    ? await embedQuestion(embeddings, question, turn.conversation_id)
    : { vector: null, tokens: 0 };
  const sources = inScope(deps.sql(), input.principal, async (tx) => ({
    chunks: embedded.vector
      ? await q.matchChunks(tx, turn.org_id, embedded.vector, question, turn.collection_ids, CHUNKS_PER_ANSWER, embeddings.model)
      : await q.matchChunksByText(tx, turn.org_id, question, turn.collection_ids, CHUNKS_PER_ANSWER),
    products: await q.matchProducts(tx, turn.org_id, question, PRODUCTS_PER_ANSWER),
  }));
  if (embedded.vector === null && embedded.tokens === 0) return { ...(await sources), metering: Promise.resolve() };
  const metered = asService(deps.sql(), input.principal, (tx) =>
    q.recordEmbeddingUsage(tx, {
      orgId: turn.org_id,
      model: embeddings.model,
      tokens: embedded.tokens,
      apiKeyId: input.principal.kind === 'service' ? input.principal.apiKeyId : null,
      botId: turn.bot.id,
      conversationId: turn.conversation_id,
      userId: input.principal.kind === 'user' ? input.principal.claims.sub : null,
    }));
  // Marked handled here, so a failed search does not leave it unobserved; the caller still awaits it.
  metered.catch(() => undefined);
  return { ...(await sources), metering: metered };
}
