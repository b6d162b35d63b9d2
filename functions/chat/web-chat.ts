/**
 * POST /chat for signed-in users (dashboards, playgrounds): the turn runs as
 * the user, answered as Server-Sent Events:
 *   event: conversation  { conversation_id, user_message_id, status }
 *   event: delta         { text }                      (repeated)
 *   event: appointment   { id, starts_at, ends_at }      (a booking step that booked)
 *   event: citations     { citations: [...] }
 *   event: usage         { tokens_in, tokens_out, latency_ms, model }
 *   event: done          { message_id, conversation_status, escalated, finish_reason }
 * `finish_reason` is stop, length (the bot's token limit, or the answer's
 * 32,000 characters: the model is read no further) or content_filter;
 * with the last two there may be no delta at all (the model gave no text).
 * When the model fails (before or after its first token, its retries spent)
 * the stream ends, instead of `done`, with
 *   event: error         { code: 'model_unavailable', message, message_id, finish_reason: 'error' }
 * after `citations` and `usage`: what was streamed is stored as the answer
 * (message_id, empty if nothing was) with finish reason error, and metered.
 * A conversation deleted meanwhile (its bot deleted) ends it with
 * `event: error { code: 'conversation_deleted', message }`: the turn is
 * metered, its answer not stored. Any other failure once the stream has
 * begun ends it with `event: error { code: 'internal_error', message }`.
 * Refusals (403, 402, 409, 429) come before the stream, as JSON.
 * A body with `booking` ({ starts_at, ends_at, attendee_name, attendee_email?,
 * attendee_phone?, notes? }) is a booking step: see booking.ts.
 */
import type { UserClaims } from '../_shared/auth.ts';
import { ChatProviderError } from '../_shared/chat/index.ts';
import { HttpError } from '../_shared/errors.ts';
import { createSseWriter, sseResponse } from '../_shared/sse.ts';
import { answerTurn, type ChatDeps, prepareTurn, type TurnInput } from './core.ts';
import { chatBody, readChatBody } from './schemas.ts';

export async function webChat(deps: ChatDeps, req: Request, claims: UserClaims, requestId: string): Promise<Response> {
  const startedAt = performance.now();
  const body = await readChatBody(req, chatBody);
  const input: TurnInput = {
    principal: { kind: 'user', claims },
    botId: body.bot_id,
    conversationId: body.conversation_id ?? null,
    channel: 'web',
    externalUserId: null,
    message: body.message,
    history: null,
    startedAt,
    booking: body.booking ?? null,
  };
  const turn = await prepareTurn(deps, input);
  // Made only once the turn is let through: a writer's keep-alive timer runs until it is closed,
  // and a refusal above never opens (so never closes) a stream.
  const writer = createSseWriter();
  const streamed: TurnInput = { ...input, signal: writer.signal };

  void (async () => {
    try {
      await writer.send('conversation', {
        conversation_id: turn.conversation_id,
        user_message_id: turn.user_message_id,
        status: turn.conversation_status,
      });
      for await (const event of answerTurn(deps, streamed, turn)) {
        if (event.type === 'delta') {
          await writer.send('delta', { text: event.text });
          continue;
        }
        const { result } = event;
        if (result.appointment) await writer.send('appointment', result.appointment);
        await writer.send('citations', { citations: result.citations });
        await writer.send('usage', {
          tokens_in: result.tokensIn,
          tokens_out: result.tokensOut,
          latency_ms: result.latencyMs,
          model: result.model,
        });
        if (result.failure) {
          // The model failed: the answer so far is stored (as `error`) and metered; the client is told
          // why it ends here, with the stored message's id, instead of `done`.
          console.error(`[${requestId}] chat model failed`, result.failure);
          await writer.send('error', {
            ...streamError(result.failure),
            message_id: result.messageId,
            finish_reason: result.finishReason,
          });
          continue;
        }
        await writer.send('done', {
          message_id: result.messageId,
          conversation_status: result.conversationStatus,
          escalated: result.escalated,
          finish_reason: result.finishReason,
        });
      }
    } catch (error) {
      if (!writer.signal.aborted) {
        console.error(`[${requestId}] chat turn failed`, error);
        await writer.send('error', streamError(error));
      }
    } finally {
      writer.close();
    }
  })();
  return sseResponse(writer);
}

/** What the client is told of a failure mid-stream; details stay in the log. */
export function streamError(error: unknown): { code: string; message: string } {
  if (error instanceof ChatProviderError) {
    return { code: 'model_unavailable', message: 'The model did not answer; try again.' };
  }
  // Ours, worded for the client (conversation_deleted: the bot was deleted while it answered).
  if (error instanceof HttpError) return { code: error.code, message: error.message };
  return { code: 'internal_error', message: 'The answer could not be completed.' };
}
