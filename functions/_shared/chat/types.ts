/** One turn of a conversation, as chat models take it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A document chunk found by retrieval; `score` ranks it (higher is better). */
export interface RetrievedChunk {
  chunkId: number;
  documentId: string;
  documentName: string;
  pageStart: number;
  pageEnd: number;
  content: string;
  score: number;
}

/** A catalog product found for the question; price is a decimal string so no cent is lost. */
export interface RetrievedProduct {
  productId: string;
  name: string;
  description: string;
  price: string;
  currency: string;
  url: string | null;
  /** Units in stock; null when the catalog does not track it. */
  stock: number | null;
}

export interface ChatContext {
  /** In retrieval order: they are numbered [1], [2], ... in that order, then the products. */
  chunks: RetrievedChunk[];
  products: RetrievedProduct[];
}

export interface ChatRequest {
  model: string;
  /** The whole prompt, as buildChatMessages makes it (the sources are already in its system message). */
  messages: ChatMessage[];
  temperature: number;
  maxTokens: number;
  /** The sources again, as data: the offline provider answers from them rather than from the prompt text. */
  context: ChatContext;
  /**
   * The bot's language ('en', 'de', ... or 'auto'). Only the offline provider
   * reads it, to say "no answer" in that language; a model follows the prompt.
   */
  language?: string;
  /**
   * Aborting it (the client went away) stops the answer; the stream then
   * throws the signal's reason, with no `done` and so no usage: the caller
   * counts the tokens (countPromptTokens if onAccepted was called, and the
   * text it received).
   */
  signal?: AbortSignal;
  /**
   * Called when the provider has taken the request (OpenAI: a try answered
   * 2xx, its stream started), so the model read the prompt and bills it even
   * if the client goes away before any text. Until then (tries answered 429
   * or 5xx, a wait to retry) nothing is billed: an abort then meters nothing.
   */
  onAccepted?: () => void;
}

export interface ChatUsage {
  tokensIn: number;
  tokensOut: number;
}

/**
 * Why a model ended its answer: `length` is the token limit, `content_filter`
 * a filter that cut (or blocked) it; either may come with no text at all.
 */
export type ChatFinishReason = 'stop' | 'length' | 'content_filter';

/** Text as it arrives, then exactly one `done` at the end of a complete answer. */
export type ChatDelta =
  | { type: 'delta'; text: string }
  | { type: 'done'; usage: ChatUsage; finishReason: ChatFinishReason };

/**
 * Streams an answer. A stream that ends without throwing has ended with
 * `done`; one that throws has not, and what it yielded before is all the
 * answer there is.
 */
export interface ChatProvider {
  /** 'openai' or 'offline': the provider that actually answers, for usage records. */
  readonly name: string;
  stream(request: ChatRequest): AsyncIterable<ChatDelta>;
}

/**
 * The model could not give a (complete) answer. `afterFirstToken` tells the
 * caller whether the user has already seen part of one: if so it keeps that
 * text and marks it cut off; if not it may answer with an error (or 429 and
 * `retryAfterSeconds` when the provider asked for a pause longer than we wait).
 */
export class ChatProviderError extends Error {
  readonly status: number | undefined;
  /** A transient failure (429, 5xx, network): trying again later may work. */
  readonly retryable: boolean;
  readonly afterFirstToken: boolean;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    message: string,
    options: {
      status?: number;
      retryable?: boolean;
      afterFirstToken?: boolean;
      retryAfterSeconds?: number;
      cause?: unknown;
    } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'ChatProviderError';
    this.status = options.status;
    this.retryable = options.retryable ?? false;
    this.afterFirstToken = options.afterFirstToken ?? false;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}
