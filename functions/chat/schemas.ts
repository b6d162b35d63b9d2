import { z } from 'zod';
import { HttpError } from '../_shared/errors.ts';
import { type BodyLimit, readJson } from '../_shared/http.ts';
import { chatCompletionRequestSchema, MAX_QUESTION_CHARS } from '../_shared/openai-wire.ts';
import { bookingRequest } from '../_shared/scheduling/booking-body.ts';
import { trimmedText } from '../_shared/text/code-points.ts';
import { hasNoNul, NUL_MESSAGE } from '../_shared/text/nul.ts';

/** The signed-in user's turn: a bot, a message, and the conversation to continue (none starts one). */
export const chatBody = z.object({
  bot_id: z.uuid({ error: 'bot_id must be a uuid' }),
  message: z
    .string({ error: 'message must be a string' })
    .pipe(trimmedText(MAX_QUESTION_CHARS, `message has at most ${MAX_QUESTION_CHARS} characters`))
    .pipe(z.string().min(1, { error: 'message must not be empty' }))
    // Refused here, not by chat_prepare (22021), like every other bad body.
    .refine(hasNoNul, { error: `message ${NUL_MESSAGE}` }),
  conversation_id: z.uuid({ error: 'conversation_id must be a uuid' }).nullish(),
  /** A booking step: book this time for the user (functions/chat/booking.ts). */
  booking: bookingRequest.nullish(),
});

export const uuid = z.uuid();

/** The longest voice-platform call id kept (conversations.external_conversation_id's limit). */
const MAX_CALL_ID_CHARS = 200;

/**
 * OpenAI's chat completions body as voice platforms' "custom LLM" settings
 * send it: with the call the turn belongs to (Vapi: `call` `{ id, orgId,
 * type, status, customer, ... }`, beside `phoneNumber`, `customer` and
 * `metadata`). Only `call.id` is read; the rest of `call`, and the other
 * fields, are accepted and dropped (they may hold the platform's carrier
 * credentials, which we never keep).
 */
export const chatCompletionBody = chatCompletionRequestSchema.extend({
  call: z
    .object({
      id: z
        .string({ error: 'call.id must be a string' })
        .trim()
        .min(1, { error: 'call.id must not be empty' })
        .max(MAX_CALL_ID_CHARS, { error: `call.id has at most ${MAX_CALL_ID_CHARS} characters` })
        .refine(hasNoNul, { error: `call.id ${NUL_MESSAGE}` })
        .optional(),
    }, { error: 'call must be an object' })
    .nullish(),
});

/**
 * readJson (1 MiB unless `limit` says otherwise), with a body that does not
 * match the schema answered 400 like one that is not JSON: what OpenAI
 * clients expect of a chat endpoint, and what our other chat entry points do
 * too.
 */
export async function readChatBody<T>(req: Request, schema: z.ZodType<T>, limit: BodyLimit = {}): Promise<T> {
  try {
    return await readJson(req, schema, limit);
  } catch (error) {
    if (error instanceof HttpError && error.status === 422) {
      throw new HttpError(400, error.code, error.message);
    }
    throw error;
  }
}
