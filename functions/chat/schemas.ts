import { z } from 'zod';
import { HttpError } from '../_shared/errors.ts';
import { readJson } from '../_shared/http.ts';
import { MAX_QUESTION_CHARS } from '../_shared/openai-wire.ts';
import { bookingRequest } from '../_shared/scheduling/booking-body.ts';

/** The signed-in user's turn: a bot, a message, and the conversation to continue (none starts one). */
export const chatBody = z.object({
  bot_id: z.uuid({ error: 'bot_id must be a uuid' }),
  message: z
    .string({ error: 'message must be a string' })
    .trim()
    .min(1, { error: 'message must not be empty' })
    .max(MAX_QUESTION_CHARS, { error: `message has at most ${MAX_QUESTION_CHARS} characters` }),
  conversation_id: z.uuid({ error: 'conversation_id must be a uuid' }).nullish(),
  /** A booking step: book this time for the user (functions/chat/booking.ts). */
  booking: bookingRequest.nullish(),
});

export const uuid = z.uuid();

/**
 * readJson, with a body that does not match the schema answered 400 like one
 * that is not JSON: what OpenAI clients expect of a chat endpoint, and what
 * our other chat entry points do too.
 */
export async function readChatBody<T>(req: Request, schema: z.ZodType<T>): Promise<T> {
  try {
    return await readJson(req, schema);
  } catch (error) {
    if (error instanceof HttpError && error.status === 422) {
      throw new HttpError(400, error.code, error.message);
    }
    throw error;
  }
}
