/**
 * analyzeCall when the model fails: a try a later one follows throws
 * CallAnalysisFailed with what it spent (nothing before any text; the prompt
 * and the text after it, as chat turns count a cut answer), and the last try
 * falls back to the rules, metering the same.
 */
import { describe, expect, it } from 'vitest';
import { type ChatDelta, type ChatMessage, type ChatProvider, ChatProviderError } from '../../functions/_shared/chat/index.ts';
import { countPromptTokens } from '../../functions/_shared/chat/usage.ts';
import { countTokens } from '../../functions/_shared/text/tokens.ts';
import { analyzeCall, CallAnalysisFailed } from '../../functions/_shared/voice/analysis.ts';
import type { TranscriptSegment } from '../../functions/_shared/voice/types.ts';

const transcript: TranscriptSegment[] = [
  { speaker: 'assistant', text: 'Example Dental, how can I help?', startMs: 0, endMs: 800 },
  { speaker: 'user', text: 'I need to move my appointment to Friday.', startMs: 1_000, endMs: 1_800 },
];

function failing(partial: string): { provider: ChatProvider; asked: ChatMessage[][] } {
  const asked: ChatMessage[][] = [];
  const provider: ChatProvider = {
    name: 'openai',
    async *stream(request): AsyncGenerator<ChatDelta> {
      asked.push(request.messages);
      if (partial !== '') yield { type: 'delta', text: partial };
      throw new ChatProviderError('The chat model failed with 429', { status: 429, retryable: true, retryAfterSeconds: 30 });
    },
  };
  return { provider, asked };
}

async function failure(promise: Promise<unknown>): Promise<CallAnalysisFailed> {
  const error = await promise.then(() => undefined, (thrown: unknown) => thrown);
  expect(error).toBeInstanceOf(CallAnalysisFailed);
  return error as CallAnalysisFailed;
}

describe('analyzeCall with a failing model', () => {
  it('throws CallAnalysisFailed on a try a later one follows, with no tokens before any text', async () => {
    const thrown = await failure(analyzeCall({ transcript, lastTry: false }, failing('').provider));
    expect(thrown).toMatchObject({ model: 'gpt-4o-mini', usage: { tokensIn: 0, tokensOut: 0 } });
    expect(thrown.cause).toBeInstanceOf(ChatProviderError);
  });

  it('counts the prompt and the text of a stream cut after its first token', async () => {
    const partial = '{"summary": "The caller moved';
    const { provider, asked } = failing(partial);
    const thrown = await failure(analyzeCall({ transcript, lastTry: false, model: 'gpt-4.1-mini' }, provider));
    expect(thrown).toMatchObject({
      model: 'gpt-4.1-mini',
      usage: { tokensIn: countPromptTokens(asked[0]), tokensOut: countTokens(partial) },
    });
  });

  it('falls back to the rules on the last try, metering the model when it wrote something', async () => {
    const partial = '{"summary": "The caller moved';
    const { provider, asked } = failing(partial);
    expect(await analyzeCall({ transcript, lastTry: true }, provider)).toEqual({
      summary: 'User: I need to move my appointment to Friday. Assistant: Example Dental, how can I help?',
      sentiment: 'neutral',
      score: 0,
      source: 'rules',
      model: 'gpt-4o-mini',
      usage: { tokensIn: countPromptTokens(asked[0]), tokensOut: countTokens(partial) },
    });
    expect(await analyzeCall({ transcript }, failing('').provider)).toMatchObject({
      source: 'rules',
      model: 'offline',
      usage: { tokensIn: 0, tokensOut: 0 },
    });
  });
});
