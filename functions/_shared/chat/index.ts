import { type EnvReader, processEnv } from '../env.ts';
import { createOfflineChatProvider } from './offline.ts';
import { createOpenAiChatProvider } from './openai.ts';
import type { ChatProvider } from './types.ts';

export * from './types.ts';
export { AnswerText, MAX_ANSWER_CHARS } from './answer-text.ts';
export { type ChunkCitation, type Citation, extractCitations, type ProductCitation } from './citations.ts';
export { detectsHumanRequest, isNoAnswer } from './escalation.ts';
export { createOfflineChatProvider, extractiveAnswer, OFFLINE_CHAT_MODEL } from './offline.ts';
export { createOpenAiChatProvider, DEFAULT_CHAT_RETRIES, type OpenAiChatProviderOptions } from './openai.ts';
export {
  type BotPromptSettings,
  buildChatMessages,
  type ChatPromptInput,
  DEFAULT_HISTORY_TOKENS,
  NO_ANSWER_TEXT,
  NO_ANSWER_TEXTS,
  noAnswerText,
  trimHistory,
} from './prompt.ts';
export { type NumberedSource, numberSources } from './sources.ts';
export { countPromptTokens } from './usage.ts';

/** A bot's model from the allow-list: its id is what the provider is asked for. */
export interface ChatModelRef {
  id: string;
  provider: 'openai' | 'offline';
}

/**
 * The provider that answers for a bot's model: the offline one when the model
 * is offline, and also when OPENAI_API_KEY is unset, so every bot answers
 * with no key at all (an OpenAI model then falls back to offline: record
 * `provider.name`, not the bot's model, as what answered). Otherwise OpenAI,
 * at OPENAI_BASE_URL when that is set (any OpenAI-compatible server), with
 * OPENAI_MAX_RETRIES tries before the first token (default 2 for chat).
 */
export function chatProviderFor(model: ChatModelRef, env: EnvReader = processEnv): ChatProvider {
  const apiKey = env('OPENAI_API_KEY')?.trim();
  if (model.provider === 'offline' || !apiKey) return createOfflineChatProvider();
  const retries = env('OPENAI_MAX_RETRIES')?.trim();
  return createOpenAiChatProvider({
    apiKey,
    baseURL: env('OPENAI_BASE_URL')?.trim() || undefined,
    maxRetries: retries && /^\d{1,2}$/.test(retries) ? Number(retries) : undefined,
  });
}
