import { countTokens, countTokensUpTo } from '../text/tokens.ts';
import type { ChatMessage } from './types.ts';

// OpenAI's chat format wraps each message in a few tokens of its own, and primes the reply with three more.
const TOKENS_PER_MESSAGE = 3;
const REPLY_PRIMING_TOKENS = 3;

/**
 * Our estimate of a prompt's tokens, for the offline provider and for a server
 * that reports no usage. Counted with cl100k_base: exact for GPT-4-era models,
 * within a few percent for o200k models such as gpt-4o. Counted in slices
 * (countTokensUpTo), so a client's long unbroken word costs linear time.
 */
export function countPromptTokens(messages: ChatMessage[]): number {
  return messages.reduce(
    (sum, message) => sum + TOKENS_PER_MESSAGE + countTokens(message.role) + countTokensUpTo(message.content),
    REPLY_PRIMING_TOKENS,
  );
}
