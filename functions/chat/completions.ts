/**
 * POST /chat/v1/chat/completions: OpenAI's chat completions for bot API keys
 * (scope chat.write), so the official SDKs and voice platforms' "custom LLM"
 * settings work unchanged. `model` names the bot (its slug or id) in the
 * key's org. The last message must be the user's; earlier user and assistant
 * messages are the history (clients like these resend the whole
 * conversation); system messages are ignored, the bot's prompt rules. `user`
 * keeps one conversation per end user, and limits that end user to 60 turns
 * a minute of the key's (chat_prepare's `api_key:<id>:user:<user>` bucket,
 * taken with the key's: one caller behind a shared key cannot spend it for
 * the others); `x-conversation-id` continues a given one, and every answer
 * carries it back. `x-chat-channel: voice` records a
 * voice agent's turns as such. Errors use OpenAI's error body.
 *
 * A voice platform's "custom LLM" (Vapi) calls once per turn of a phone call,
 * resending the history, with the call in the body: `call.id` (1 to 200
 * characters once trimmed; the rest of `call`, `phoneNumber`, `customer` and
 * `metadata` are accepted and dropped). Every turn of one call is then one
 * conversation: the bot's live conversation with that call id, started by the
 * first turn (two first turns at once find the same one; the id is the bot's,
 * so another org's key never reaches it). `x-conversation-id` still wins when
 * given, but a conversation of a call (or of an end user, `user`) is
 * continued only by a turn naming that call (that user): naming none or
 * another is refused, 422 `invalid_request`, as chat_prepare refuses it;
 * `user` is not used to key such a conversation. A turn with a call id
 * is recorded on the voice channel (the bot must answer on it, else 403
 * `channel_not_enabled`), whatever `x-chat-channel` says.
 *
 * A model that fails (its retries spent) before its first token is answered
 * as OpenAI answers a failed request: 503 (429, 5xx or a lost connection
 * upstream; Retry-After when the provider asked for a pause) or 502 (the
 * provider refused the request), code `model_unavailable`, streamed or not;
 * the stream's headers wait for the first token for that. One that fails
 * after it ends the stream as OpenAI does, with an error object as a `data:`
 * event and no `[DONE]` (not streamed: the same 503). Either way the turn is
 * stored and metered, finish reason `error` (see core.ts). A bot deleted
 * while it answers leaves the turn metered but not stored: 410
 * `conversation_deleted`, or that error object ending the stream.
 *
 * Asks a bot cannot meet (n > 1, logprobs, top_logprobs, response_format
 * other than text, tool_choice required or naming a function) are 400
 * `unsupported_parameter` with `param` naming the field, before anything is
 * stored (see unsupportedParameter). A NUL (U+0000) in `user`, `call.id`
 * or a user or assistant message is a bad body (400), counted as one. An
 * answer is cut at 32,000 characters (finish reason `length`; see core.ts).
 */
import { apiKeyFromRequest, requireScope, verifyApiKey } from '../_shared/api-keys.ts';
import type { ChatMessage, ChatProviderError } from '../_shared/chat/index.ts';
import { HttpError } from '../_shared/errors.ts';
import { json } from '../_shared/http.ts';
import { takeRateLimit } from '../_shared/rate-limit.ts';
import {
  type ChatCompletionRequest,
  chatCompletion,
  chunkBuilder,
  completionMeta,
  contentText,
  type FinishReason,
  MAX_CHAT_COMPLETION_BODY_BYTES,
  SSE_DONE,
  sseData,
  sseError,
  unsupportedParameter,
} from '../_shared/openai-wire.ts';
import { createSseWriter, sseResponse } from '../_shared/sse.ts';
import {
  answerTurn,
  type ChatDeps,
  prepareTurn,
  type TurnEvent,
  type TurnFinishReason,
  type TurnInput,
  type TurnResult,
} from './core.ts';
import { asService } from './principal.ts';
import { botForApiKey, listApiBots } from './queries.ts';
import { chatCompletionBody, readChatBody, uuid } from './schemas.ts';
import { streamError } from './web-chat.ts';

async function keyPrincipal(deps: ChatDeps, req: Request) {
  const key = await verifyApiKey(deps.sql(), apiKeyFromRequest(req));
  await countingRefusals(deps, key.apiKeyId, async () => requireScope(key, 'chat.write'));
  return key;
}

/**
 * A turn takes from the key's bucket in the statement that prepares it
 * (private.chat_prepare, so a served turn costs no extra round trip); every
 * request refused without that hit still takes one, here, so a key cannot be
 * spent on refusals without limit: one refused before chat_prepare (a key
 * without chat.write, a bad body, an unknown model), one chat_prepare refuses
 * before its take_rate_limit (bot_disabled, channel_not_enabled,
 * conversation_closed), and one it raises (an unknown conversation, another
 * channel's: the raise rolls its hit back). `tookOne` names the refusals
 * that did pass the limiter. Past the limit the answer is the 429.
 */
async function countingRefusals<T>(
  deps: ChatDeps,
  apiKeyId: string,
  fn: () => Promise<T>,
  tookOne: (refusal: HttpError) => boolean = () => false,
): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof HttpError && !tookOne(error)) await takeRateLimit(deps.sql(), { apiKeyId });
    throw error;
  }
}

/**
 * chat_prepare's refusals past its take_rate_limit, returned (its statement
 * commits): quota_exceeded keeps its hit, and the 429 is the limiter's own
 * answer (a refused hit is not counted, and taking again would only be
 * refused).
 */
const PREPARE_TOOK_ONE = new Set(['rate_limited', 'quota_exceeded']);

/** The question (the last message, the user's) and the history before it. */
function splitMessages(request: ChatCompletionRequest): { question: string; history: ChatMessage[] } {
  const last = request.messages[request.messages.length - 1];
  const question = contentText(last.content).trim();
  if (last.role !== 'user' || question === '') {
    throw new HttpError(400, 'invalid_request', 'The last message must be a non-empty user message.');
  }
  const history: ChatMessage[] = [];
  for (const message of request.messages.slice(0, -1)) {
    const text = contentText(message.content).trim();
    if ((message.role === 'user' || message.role === 'assistant') && text !== '') {
      history.push({ role: message.role, content: text });
    }
  }
  return { question, history };
}

/**
 * OpenAI's finish reason for ours. `interrupted` is only ever read by nobody
 * (the client went away), so it is told as what OpenAI sends for a stopped
 * answer; `error` is never told as a finish reason (the client gets an error
 * instead), and is mapped only for completeness.
 */
function wireFinishReason(reason: TurnFinishReason): FinishReason {
  return reason === 'interrupted' || reason === 'error' ? 'stop' : reason;
}

/**
 * The answer to a model that failed: 503 when trying again may work (429,
 * 5xx, a lost connection; with Retry-After when the provider asked for a
 * pause), 502 when the provider refused the request. The turn is already
 * stored; its conversation id comes back as on every answer.
 */
function modelFailure(failure: ChatProviderError, headers: Record<string, string>): HttpError {
  const { code, message } = streamError(failure);
  const answerHeaders: Record<string, string> = { ...headers };
  if (failure.retryAfterSeconds !== undefined) answerHeaders['retry-after'] = String(failure.retryAfterSeconds);
  return new HttpError(failure.retryable ? 503 : 502, code, message, answerHeaders, { cause: failure });
}

export async function completions(deps: ChatDeps, req: Request, requestId: string): Promise<Response> {
  const startedAt = performance.now();
  const key = await keyPrincipal(deps, req);
  const principal = { kind: 'service', apiKeyId: key.apiKeyId } as const;
  const { request, question, history, conversationHeader, botId } = await countingRefusals(deps, key.apiKeyId, async () => {
    const request = await readChatBody(req, chatCompletionBody, { maxBytes: MAX_CHAT_COMPLETION_BODY_BYTES });
    const unsupported = unsupportedParameter(request);
    if (unsupported) throw unsupported;
    const { question, history } = splitMessages(request);
    const conversationHeader = req.headers.get('x-conversation-id');
    if (conversationHeader !== null && !uuid.safeParse(conversationHeader).success) {
      throw new HttpError(400, 'invalid_request', 'x-conversation-id must be a uuid.');
    }
    const botId = await asService(deps.sql(), principal, (tx) => botForApiKey(tx, request.model, key.orgId));
    if (!botId) {
      throw new HttpError(404, 'model_not_found', `The model "${request.model}" does not name a bot of this organization.`);
    }
    return { request, question, history, conversationHeader, botId };
  });
  // Trimmed by the schema. A given conversation id wins over the call's; the call is still named, since a
  // call's conversation is continued only by a turn of that call.
  const callId = request.call?.id ?? null;
  const input: TurnInput = {
    principal,
    botId,
    conversationId: conversationHeader,
    externalConversationId: callId,
    channel: callId !== null || req.headers.get('x-chat-channel') === 'voice' ? 'voice' : 'api',
    // The call keys its conversation, not the end user (the database takes one key for a new conversation).
    externalUserId: callId !== null ? null : request.user || null,
    message: question,
    history,
    startedAt,
    signal: req.signal,
  };
  const turn = await countingRefusals(deps, key.apiKeyId, () => prepareTurn(deps, input), (refusal) =>
    PREPARE_TOOK_ONE.has(refusal.code));
  const meta = completionMeta(request.model);
  const headers = { 'x-conversation-id': turn.conversation_id };

  if (!request.stream) {
    let result: TurnResult | undefined;
    for await (const event of answerTurn(deps, input, turn)) {
      if (event.type === 'result') result = event.result;
    }
    if (!result) throw new Error('The turn ended without a result');
    // Stored and metered as `error`; the client, which saw none of it, gets the failure.
    if (result.failure) throw modelFailure(result.failure, headers);
    // An empty answer is answered as OpenAI answers it: empty content and the finish reason saying why.
    return json(
      chatCompletion(meta, {
        content: result.content,
        finishReason: wireFinishReason(result.finishReason),
        usage: { tokensIn: result.tokensIn, tokensOut: result.tokensOut },
      }),
      200,
      headers,
    );
  }

  // The client's connection as the turn sees it: the request's until the stream exists, then the stream's.
  const gone = new AbortController();
  const requestGone = () => gone.abort(req.signal.reason);
  if (req.signal.aborted) requestGone();
  else req.signal.addEventListener('abort', requestGone, { once: true });
  const streamed: TurnInput = { ...input, signal: gone.signal };
  // The first event (a token, or the result of a turn without any) comes before the response, so that a
  // model failing before its first token is answered with an error status, as OpenAI answers, not a 200.
  const events = answerTurn(deps, streamed, turn)[Symbol.asyncIterator]();
  let next: IteratorResult<TurnEvent>;
  try {
    next = await events.next();
  } finally {
    req.signal.removeEventListener('abort', requestGone);
  }
  if (!next.done && next.value.type === 'result' && next.value.result.failure) {
    throw modelFailure(next.value.result.failure, headers);
  }

  // Made only once the answer has begun: a writer's keep-alive timer runs until it is closed, and a refusal
  // or failure above never opens (so never closes) a stream.
  const writer = createSseWriter();
  writer.signal.addEventListener('abort', () => gone.abort(writer.signal.reason), { once: true });

  const chunks = chunkBuilder(meta, { includeUsage: request.stream_options?.include_usage === true });
  void (async () => {
    try {
      await writer.write(sseData(chunks.start()));
      let failed = false;
      for (; !next.done; next = await events.next()) {
        const event = next.value;
        if (event.type === 'delta') {
          await writer.write(sseData(chunks.content(event.text)));
          continue;
        }
        const { result } = event;
        if (result.failure) {
          // Cut after the first token: what was streamed is stored (as `error`) and metered; the client gets
          // what OpenAI sends when a stream fails, and no finish reason or [DONE].
          console.error(`[${requestId}] chat completion failed`, result.failure);
          const failure = modelFailure(result.failure, headers);
          await writer.write(sseError(failure.status, failure.code, failure.message));
          failed = true;
          continue;
        }
        await writer.write(sseData(chunks.finish(wireFinishReason(result.finishReason))));
        if (request.stream_options?.include_usage) {
          await writer.write(sseData(chunks.usage({ tokensIn: result.tokensIn, tokensOut: result.tokensOut })));
        }
      }
      if (!failed) await writer.write(SSE_DONE);
    } catch (error) {
      if (!writer.signal.aborted) {
        console.error(`[${requestId}] chat completion failed`, error);
        // What OpenAI sends when a stream fails: an error object as the event's data.
        const { code, message } = streamError(error);
        await writer.write(sseError(error instanceof HttpError ? error.status : 500, code, message));
      }
    } finally {
      writer.close();
    }
  })();
  return sseResponse(writer, { headers });
}

/** GET /chat/v1/models: the org's bots that answer over the API, as OpenAI model objects. */
export async function models(deps: ChatDeps, req: Request): Promise<Response> {
  const key = await keyPrincipal(deps, req);
  await takeRateLimit(deps.sql(), { apiKeyId: key.apiKeyId });
  const bots = await asService(deps.sql(), { kind: 'service', apiKeyId: key.apiKeyId }, (tx) => listApiBots(tx, key.orgId));
  return json({
    object: 'list',
    data: bots.map((bot) => ({
      id: bot.slug,
      object: 'model',
      created: Math.floor(new Date(bot.created_at).getTime() / 1000),
      owned_by: key.orgId,
    })),
  });
}
