/**
 * OpenAI's chat completions wire format (`POST /v1/chat/completions`), for
 * serving a bot to any OpenAI client: the request schema, the answer objects,
 * streamed and not, their SSE framing and the error body. Only text, one
 * choice: a request asking for what a bot does not give (n > 1, logprobs,
 * response_format other than text, tool_choice that may force a tool) is refused
 * with 400 `unsupported_parameter` naming the param (unsupportedParameter);
 * other fields a chat or voice platform sends (tools, top_p, ...) are
 * accepted and ignored.
 */
import { z } from 'zod';
import { codePointLength } from './text/code-points.ts';
import { hasNoNul, NUL_MESSAGE } from './text/nul.ts';
import type { ChatUsage } from './chat/types.ts';
import { HttpError } from './errors.ts';
import { httpErrorFromUnmappedPostgres } from './pg-errors.ts';
import { formatSseFrame } from './sse.ts';

const textPart = z.object({ type: z.literal('text'), text: z.string() });

const messageContent = z.union([z.string(), z.array(textPart)], {
  error: 'content must be a string or an array of { "type": "text", "text": "..." } parts (only text is supported)',
});

const message = z
  .object({
    role: z.enum(['system', 'user', 'assistant', 'developer', 'tool'], {
      error: 'role must be one of system, user, assistant, developer, tool',
    }),
    // An assistant message that only calls tools has no content; voice platforms replay those.
    content: messageContent.nullish(),
  })
  .refine((value) => value.content != null || value.role === 'assistant', {
    error: 'content is required',
    path: ['content'],
  });

/**
 * The longest question and end-user id a bot stores (private.chat_prepare's
 * limits, what web chat's schema checks too), checked here so that a request
 * over them is a malformed body (400) like any other, not a refusal of the
 * database's. The question's characters are counted as the database counts
 * them (code points, codePointLength).
 */
export const MAX_QUESTION_CHARS = 8000;
export const MAX_USER_CHARS = 200;
/**
 * The longest user or assistant message and the most messages a request may
 * carry: a message's length is an answer's (private.chat_finish takes 32,000
 * characters), counted as it counts them (code points: an answer cut at
 * 32,000 holding an emoji is 32,001 UTF-16 units, and is resent as history
 * by OpenAI clients on every later turn), and a thousand is well past a long
 * phone call's turns. Only the newest history that fits 2,000 tokens is
 * used; these bounds keep a body that is read, checked and counted before
 * anything is stored small.
 */
export const MAX_MESSAGE_CHARS = 32000;
export const MAX_MESSAGES = 1000;
/**
 * The most characters all messages' content may add up to, system prompts
 * included: about 125,000 tokens, ten times a long system prompt with an
 * hour's call transcript (some 50,000 characters each), while only the
 * newest history that fits 2,000 tokens is used and system prompts are
 * dropped. A thousand messages of 32,000 would be 32 million. Unlike the
 * per-message limits this bounds the body's size, so it counts UTF-16
 * units, each at most one `\uXXXX` escape (MAX_CHAT_COMPLETION_BODY_BYTES).
 */
export const MAX_TOTAL_CONTENT_CHARS = 500_000;
/**
 * The body chat/completions reads at most (413 past it): the content cap at
 * 6 bytes a character (every character `\uXXXX`-escaped, as Python's json
 * writes non-ASCII text by default) is 3,000,000 bytes, which leaves over
 * 1 MB for the messages' framing and the fields we accept and drop (a voice
 * platform's `call`, `tools`, `metadata`). A body any larger holds content
 * the schema refuses anyway.
 */
export const MAX_CHAT_COMPLETION_BODY_BYTES = 4 * 1024 * 1024;

export const chatCompletionRequestSchema = z.object({
  model: z.string({ error: 'model must be a string' }).min(1, { error: 'model must not be empty' }),
  messages: z
    .array(message, { error: 'messages must be an array' })
    .min(1, { error: 'messages must not be empty' })
    .max(MAX_MESSAGES, { error: `messages has at most ${MAX_MESSAGES} entries` })
    // The question is the last message, stored trimmed; earlier ones are context and are not stored.
    .superRefine((messages, ctx) => {
      const last = messages.length - 1;
      messages.forEach((message, index) => {
        const question = index === last;
        // System, developer and tool messages are ignored (only user and assistant turns make the history), so
        // a long system prompt a voice platform sends on every turn is no reason to refuse it.
        if (!question && message.role !== 'user' && message.role !== 'assistant') return;
        const text = contentText(message.content);
        const limit = question ? MAX_QUESTION_CHARS : MAX_MESSAGE_CHARS;
        if (codePointLength(question ? text.trim() : text) > limit) {
          ctx.addIssue({
            code: 'custom',
            message: `${question ? 'the last message' : 'a message'} has at most ${limit} characters`,
            path: [index, 'content'],
          });
        }
        // Refused here, so that it counts against the key as a bad body, rather than by chat_prepare (22021).
        if (!hasNoNul(text)) {
          ctx.addIssue({
            code: 'custom',
            message: `${question ? 'the last message' : 'a message'} ${NUL_MESSAGE}`,
            path: [index, 'content'],
          });
        }
      });
      const total = messages.reduce((sum, message) => sum + contentText(message.content).length, 0);
      if (total > MAX_TOTAL_CONTENT_CHARS) {
        ctx.addIssue({
          code: 'custom',
          message: `the messages' content has at most ${MAX_TOTAL_CONTENT_CHARS} characters in all (${total} given)`,
        });
      }
    }),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  // Checked by unsupportedParameter: accepted only with values that ask for a single text answer.
  n: z.number({ error: 'n must be a number' }).int({ error: 'n must be an integer' }).nullish(),
  logprobs: z.boolean({ error: 'logprobs must be a boolean' }).nullish(),
  top_logprobs: z.number({ error: 'top_logprobs must be a number' }).int({ error: 'top_logprobs must be an integer' })
    .nullish(),
  response_format: z.object({ type: z.string({ error: 'response_format.type must be a string' }) }, {
    error: 'response_format must be an object',
  }).nullish(),
  tool_choice: z.union([
    z.string(),
    // OpenAI's { type: 'allowed_tools', allowed_tools: { mode, tools } }: its mode says whether a tool is forced.
    z.object({ type: z.string(), allowed_tools: z.object({ mode: z.string() }).nullish() }),
  ], {
    error: 'tool_choice must be a string or an object with a type',
  }).nullish(),
  // Trimmed as it is stored: the end user's id, one conversation each.
  user: z.string({ error: 'user must be a string' }).trim()
    .max(MAX_USER_CHARS, { error: `user has at most ${MAX_USER_CHARS} characters` })
    .refine(hasNoNul, { error: `user ${NUL_MESSAGE}` }).nullish(),
});

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;
export type ChatCompletionRequestMessage = ChatCompletionRequest['messages'][number];

/**
 * A request's ask that a bot cannot meet, refused rather than answered with
 * something else: one choice, no log probabilities, text (a JSON format or a
 * forced tool call would get prose). `tools` with tool_choice absent, auto,
 * none or allowed_tools in mode auto is fine: a voice platform sends its
 * tools on every turn and takes a text answer; required, function and custom
 * force a tool.
 */
export function unsupportedParameter(request: ChatCompletionRequest): UnsupportedParameterError | null {
  if (request.n != null && request.n !== 1) {
    return new UnsupportedParameterError('n', 'A bot gives one choice: n must be 1.');
  }
  if (request.logprobs === true) {
    return new UnsupportedParameterError('logprobs', 'A bot gives no log probabilities: logprobs must be false.');
  }
  if (request.top_logprobs != null && request.top_logprobs !== 0) {
    return new UnsupportedParameterError('top_logprobs', 'A bot gives no log probabilities: top_logprobs must be 0.');
  }
  if (request.response_format != null && request.response_format.type !== 'text') {
    return new UnsupportedParameterError('response_format', 'A bot answers in text: response_format.type must be "text".');
  }
  if (request.tool_choice != null && !forcesNoTool(request.tool_choice)) {
    return new UnsupportedParameterError(
      'tool_choice',
      'A bot answers in text and calls no tool: tool_choice must be "auto", "none" or allowed_tools in mode "auto".',
    );
  }
  return null;
}

/** auto and none leave the choice to the model; allowed_tools only narrows the tools, unless its mode is required. */
function forcesNoTool(toolChoice: NonNullable<ChatCompletionRequest['tool_choice']>): boolean {
  if (typeof toolChoice === 'string') return toolChoice === 'auto' || toolChoice === 'none';
  return toolChoice.type === 'allowed_tools' && toolChoice.allowed_tools?.mode === 'auto';
}

/** A 400 naming the request's parameter (OpenAI's `param`), code `unsupported_parameter`. */
export class UnsupportedParameterError extends HttpError {
  constructor(readonly param: string, message: string) {
    super(400, 'unsupported_parameter', message);
  }
}

/** A message's content as plain text: parts joined, none as ''. */
export function contentText(content: ChatCompletionRequestMessage['content']): string {
  if (content == null) return '';
  return typeof content === 'string' ? content : content.map((part) => part.text).join('');
}

/** The answer's token limit the client asked for: max_completion_tokens, else the older max_tokens. */
export function requestedMaxTokens(request: ChatCompletionRequest): number | undefined {
  return request.max_completion_tokens ?? request.max_tokens ?? undefined;
}

/** What every object of one completion shares. */
export interface CompletionMeta {
  /** `chatcmpl-` and 24 random letters and digits. */
  id: string;
  /** Unix time in seconds. */
  created: number;
  model: string;
}

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export function completionMeta(model: string, now: number = Date.now()): CompletionMeta {
  // `byte % 62` favours the first eight letters a little; for an id that does not matter.
  const random = crypto.getRandomValues(new Uint8Array(24));
  const suffix = Array.from(random, (byte) => ID_ALPHABET[byte % ID_ALPHABET.length]).join('');
  return { id: `chatcmpl-${suffix}`, created: Math.floor(now / 1000), model };
}

/** OpenAI's reasons for a text answer; `content_filter` and `length` may come with empty content. */
export type FinishReason = 'stop' | 'length' | 'content_filter';

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function completionUsage(usage: ChatUsage): CompletionUsage {
  return {
    prompt_tokens: usage.tokensIn,
    completion_tokens: usage.tokensOut,
    total_tokens: usage.tokensIn + usage.tokensOut,
  };
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: {
    index: 0;
    message: { role: 'assistant'; content: string; refusal: null };
    logprobs: null;
    finish_reason: FinishReason;
  }[];
  usage: CompletionUsage;
  system_fingerprint: null;
}

/** The whole answer at once, for `stream: false`. */
export function chatCompletion(
  meta: CompletionMeta,
  answer: { content: string; finishReason: FinishReason; usage: ChatUsage },
): ChatCompletion {
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [{
      index: 0,
      message: { role: 'assistant', content: answer.content, refusal: null },
      logprobs: null,
      finish_reason: answer.finishReason,
    }],
    usage: completionUsage(answer.usage),
    system_fingerprint: null,
  };
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  system_fingerprint: null;
  choices: {
    index: 0;
    delta: { role?: 'assistant'; content?: string; refusal?: null };
    logprobs: null;
    finish_reason: FinishReason | null;
  }[];
  /** Only with include_usage: null on every chunk but the last, which has no choices. */
  usage?: CompletionUsage | null;
}

export interface ChunkBuilder {
  /** The first chunk: the role, and empty content. */
  start(): ChatCompletionChunk;
  content(text: string): ChatCompletionChunk;
  /** Empty delta and the finish reason. */
  finish(reason: FinishReason): ChatCompletionChunk;
  /** With include_usage, after finish: no choices, the usage of the whole request. */
  usage(usage: ChatUsage): ChatCompletionChunk;
}

/**
 * The chunks of one streamed completion, in the order OpenAI sends them:
 * start, content..., finish, then usage when the client asked for it
 * (`stream_options.include_usage`), each framed with sseData, then SSE_DONE.
 */
export function chunkBuilder(meta: CompletionMeta, options: { includeUsage: boolean }): ChunkBuilder {
  const chunk = (
    delta: ChatCompletionChunk['choices'][number]['delta'],
    finishReason: FinishReason | null,
  ): ChatCompletionChunk => ({
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: meta.model,
    system_fingerprint: null,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...(options.includeUsage ? { usage: null } : {}),
  });
  return {
    start: () => chunk({ role: 'assistant', content: '', refusal: null }, null),
    content: (text) => chunk({ content: text }, null),
    finish: (reason) => chunk({}, reason),
    usage: (usage) => ({
      id: meta.id,
      object: 'chat.completion.chunk',
      created: meta.created,
      model: meta.model,
      system_fingerprint: null,
      choices: [],
      usage: completionUsage(usage),
    }),
  };
}

/** One streamed object as OpenAI frames it: `data: {...}` and a blank line, no event name. */
export function sseData(payload: ChatCompletionChunk): string {
  return formatSseFrame({ data: JSON.stringify(payload) });
}

/** The end of an OpenAI stream. */
export const SSE_DONE = formatSseFrame({ data: '[DONE]' });

/**
 * What OpenAI sends when a stream fails once it has begun: OpenAI's error
 * body as a `data:` event, after which the stream ends (no `[DONE]`). The
 * `openai` SDKs raise it as an APIError while iterating.
 */
export function sseError(status: number, code: string | null, message: string): string {
  return formatSseFrame({ data: JSON.stringify(openAiErrorBody(status, code, message)) });
}

/**
 * OpenAI's error body. Our functions otherwise answer `{ error: { code, message } }`;
 * this keeps both fields and adds `type` and `param`, so either kind of client reads it.
 */
export interface OpenAiErrorBody {
  error: { message: string; type: string; code: string | null; param: string | null; request_id?: string };
}

export function openAiErrorBody(
  status: number,
  code: string | null,
  message: string,
  param: string | null = null,
): OpenAiErrorBody {
  return { error: { message, type: errorType(status), code, param } };
}

/** The `type` OpenAI clients expect for a status. */
function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/**
 * errorResponse's twin for the OpenAI-compatible endpoint: an HttpError's
 * status, code, message and headers (Retry-After), a Postgres error mapped
 * as httpErrorFromUnmappedPostgres maps it, anything else logged and
 * answered with a generic 500, in OpenAI's shape.
 */
export function openAiErrorResponse(thrown: unknown, requestId?: string): Response {
  // As createHandler does for every other endpoint: a value Postgres cannot take (a NUL) is the client's 422.
  const error = httpErrorFromUnmappedPostgres(thrown);
  const known = error instanceof HttpError;
  if (!known || error.cause !== undefined) console.error(`[${requestId ?? 'no-request-id'}]`, error);
  const status = known ? error.status : 500;
  const body = known
    ? openAiErrorBody(status, error.code, error.message, error instanceof UnsupportedParameterError ? error.param : null)
    : openAiErrorBody(500, 'internal_error', 'The server failed to process the request.');
  const headers = new Headers(known ? error.headers : {});
  headers.set('content-type', 'application/json');
  if (requestId) {
    body.error.request_id = requestId;
    headers.set('x-request-id', requestId);
  }
  return new Response(JSON.stringify(body), { status, headers });
}
