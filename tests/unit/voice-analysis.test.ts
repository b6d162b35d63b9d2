import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ChatDelta,
  type ChatProvider,
  ChatProviderError,
  type ChatRequest,
  createOfflineChatProvider,
  createOpenAiChatProvider,
} from '../../functions/_shared/chat/index.ts';
import { analyzeCall, DEFAULT_ANALYSIS_MODEL } from '../../functions/_shared/voice/analysis.ts';
import type { TranscriptSegment } from '../../functions/_shared/voice/types.ts';
import { type OpenAiStub, startOpenAiStub } from '../support/openai-stub.ts';

/** A call as alternating turns, the assistant first; a second apart. */
function call(...turns: [speaker: TranscriptSegment['speaker'], text: string][]): TranscriptSegment[] {
  return turns.map(([speaker, text], index) => ({ speaker, text, startMs: index * 1_000, endMs: index * 1_000 + 800 }));
}

const booking = call(
  ['assistant', 'Example Dental, how can I help?'],
  ['user', 'Hello?'],
  ['user', 'I need to move my appointment to Friday.'],
  ['assistant', 'Friday at nine works, I have booked it.'],
  ['user', 'Great, thanks a lot, that was really helpful.'],
  ['assistant', 'You are welcome. See you on Friday at nine.'],
);

/** A ChatProvider that answers `text` (in a few deltas) with the given usage, and records what it was asked. */
function fakeProvider(text: string, usage = { tokensIn: 321, tokensOut: 42 }) {
  const requests: ChatRequest[] = [];
  const provider: ChatProvider = {
    name: 'openai',
    async *stream(request): AsyncGenerator<ChatDelta> {
      requests.push(request);
      for (const piece of text.match(/.{1,7}/gsu) ?? []) yield { type: 'delta', text: piece };
      yield { type: 'done', usage, finishReason: 'stop' };
    },
  };
  return { provider, requests };
}

const sentimentOf = async (...userTurns: string[]) => {
  const result = await analyzeCall({ transcript: call(...userTurns.map((text) => ['user', text] as ['user', string])) });
  return { sentiment: result.sentiment, score: result.score };
};

describe('analyzeCall by rules (no model)', () => {
  it("summarizes the caller's request and the assistant's last answer, and reads the caller's mood", async () => {
    expect(await analyzeCall({ transcript: booking })).toEqual({
      // "Hello?" is not a request: the first turn of three words or more is.
      summary: 'User: I need to move my appointment to Friday. Assistant: You are welcome. See you on Friday at nine.',
      sentiment: 'positive',
      score: 0.75,
      source: 'rules',
      model: 'offline',
      usage: { tokensIn: 0, tokensOut: 0 },
    });
  });

  it('reads negative calls, and counts the caller only (the assistant is polite whatever happens)', async () => {
    expect(await sentimentOf('This is terrible, my order arrived broken.', 'I am really disappointed.')).toEqual({
      sentiment: 'negative',
      score: -0.75,
    });
    const complaint = await analyzeCall({
      transcript: call(
        ['assistant', 'Great! Perfect! Wonderful, excellent, thanks!'],
        ['user', 'My parcel is still missing.'],
      ),
    });
    expect(complaint).toMatchObject({ sentiment: 'neutral', score: 0 });
  });

  it('turns a word around after a negation', async () => {
    expect(await sentimentOf('The delivery was not good.')).toEqual({ sentiment: 'negative', score: -0.5 });
    expect(await sentimentOf("It wasn't helpful at all.")).toEqual({ sentiment: 'negative', score: -0.5 });
    expect(await sentimentOf('Not bad, actually.')).toEqual({ sentiment: 'positive', score: 0.5 });
    expect(await sentimentOf('No problem at all.')).toEqual({ sentiment: 'positive', score: 0.5 });
    expect(await sentimentOf('Das war nicht gut.')).toMatchObject({ sentiment: 'negative' });
    expect(await sentimentOf('Kein Problem, danke!')).toEqual({ sentiment: 'positive', score: 0.67 });
    expect(await sentimentOf("Ce n'est pas bon du tout.")).toMatchObject({ sentiment: 'negative' });
    expect(await sentimentOf('No es bueno.')).toMatchObject({ sentiment: 'negative' });
    expect(await sentimentOf('Это не хорошо.')).toMatchObject({ sentiment: 'negative' });
    // A negation in another clause does not reach.
    expect(await sentimentOf('No, that is great.')).toMatchObject({ sentiment: 'positive' });
  });

  it('reads German, French, Spanish and Russian', async () => {
    expect(await sentimentOf('Super, vielen Dank, sehr hilfreich!')).toMatchObject({ sentiment: 'positive' });
    expect(await sentimentOf('Das ist schlecht, ich bin verärgert.')).toMatchObject({ sentiment: 'negative' });
    expect(await sentimentOf("Parfait, merci beaucoup, c'est génial.")).toMatchObject({ sentiment: 'positive' });
    expect(await sentimentOf('Je suis déçu, le service est nul.')).toMatchObject({ sentiment: 'negative' });
    expect(await sentimentOf('Perfecto, muchas gracias.')).toMatchObject({ sentiment: 'positive' });
    expect(await sentimentOf('Es pésimo, tengo una queja.')).toMatchObject({ sentiment: 'negative' });
    expect(await sentimentOf('Отлично, спасибо большое!')).toMatchObject({ sentiment: 'positive' });
    expect(await sentimentOf('Ужасно, у меня жалоба.')).toMatchObject({ sentiment: 'negative' });
  });

  it('is neutral without mood words, and unknown when the caller said nothing', async () => {
    expect(await sentimentOf('I would like to know your opening hours.')).toEqual({ sentiment: 'neutral', score: 0 });
    expect(await analyzeCall({ transcript: [] })).toMatchObject({ summary: '', sentiment: 'unknown', score: 0 });
    expect(await analyzeCall({ transcript: call(['assistant', 'Hello? Is anyone there?']) })).toMatchObject({
      summary: 'Assistant: Hello? Is anyone there?',
      sentiment: 'unknown',
    });
  });

  it('keeps the summary short, cutting at a word', async () => {
    const long = 'I would like to ask about ' + 'the many and various options for delivery, '.repeat(10);
    const { summary } = await analyzeCall({ transcript: call(['user', long], ['assistant', long]) });
    expect(summary.length).toBeLessThanOrEqual(330);
    expect(summary).toMatch(/^User: I would like to ask about the many .*… Assistant: I would like .*…$/u);
    expect(summary).not.toMatch(/\s…/u);
  });

  it('uses the rules for the offline provider, without asking it', async () => {
    const offline = createOfflineChatProvider();
    expect(await analyzeCall({ transcript: booking }, offline)).toMatchObject({ source: 'rules', model: 'offline' });
  });
});

describe('analyzeCall with a model', () => {
  it("asks for JSON, and returns the model's answer and usage", async () => {
    const { provider, requests } = fakeProvider(
      '```json\n{"summary": "Der Anrufer hat seinen Termin auf Freitag verschoben.", "sentiment": "positive", "score": 0.8}\n```',
    );
    const result = await analyzeCall({ transcript: booking, language: 'de' }, provider);
    expect(result).toEqual({
      summary: 'Der Anrufer hat seinen Termin auf Freitag verschoben.',
      sentiment: 'positive',
      score: 0.8,
      source: 'model',
      model: DEFAULT_ANALYSIS_MODEL,
      usage: { tokensIn: 321, tokensOut: 42 },
    });
    expect(requests).toHaveLength(1);
    const [asked] = requests;
    expect(asked).toMatchObject({ model: 'gpt-4o-mini', temperature: 0, language: 'de' });
    expect(asked.messages[0].role).toBe('system');
    expect(asked.messages[0].content).toContain('"sentiment": "positive" | "neutral" | "negative"');
    expect(asked.messages[0].content).toContain('in the language with code "de"');
    expect(asked.messages[1]).toEqual({
      role: 'user',
      content: [
        'Assistant: Example Dental, how can I help?',
        'User: Hello?',
        'User: I need to move my appointment to Friday.',
        'Assistant: Friday at nine works, I have booked it.',
        'User: Great, thanks a lot, that was really helpful.',
        'Assistant: You are welcome. See you on Friday at nine.',
      ].join('\n'),
    });
  });

  it('falls back to the rules on an answer that is not the JSON asked for, still metering the model', async () => {
    for (
      const answer of [
        'The caller was happy.',
        '{"summary": "Moved the appointment.", "sentiment": "mixed", "score": 0.1}',
        '{"summary": "Moved the appointment.", "sentiment": "positive", "score": 3}',
        '{"summary": "", "sentiment": "neutral", "score": 0}',
        '{"summary": "Moved", "sentiment": "positive"',
      ]
    ) {
      const { provider } = fakeProvider(answer);
      expect(await analyzeCall({ transcript: booking, model: 'gpt-4.1-mini' }, provider)).toEqual({
        summary: 'User: I need to move my appointment to Friday. Assistant: You are welcome. See you on Friday at nine.',
        sentiment: 'positive',
        score: 0.75,
        source: 'rules',
        model: 'gpt-4.1-mini',
        usage: { tokensIn: 321, tokensOut: 42 },
      });
    }
  });

  it('falls back to the rules when the model fails', async () => {
    const failing: ChatProvider = {
      name: 'openai',
      async *stream() {
        throw new ChatProviderError('The chat model failed with 503', { status: 503, retryable: true });
      },
    };
    expect(await analyzeCall({ transcript: booking }, failing)).toMatchObject({
      source: 'rules',
      model: 'offline',
      usage: { tokensIn: 0, tokensOut: 0 },
    });
  });

  it('does not ask about an empty call', async () => {
    const { provider, requests } = fakeProvider('{}');
    expect(await analyzeCall({ transcript: [] }, provider)).toMatchObject({ sentiment: 'unknown', source: 'rules' });
    expect(requests).toHaveLength(0);
  });

  it("sends a long call's beginning and end", async () => {
    const { provider, requests } = fakeProvider('{"summary": "Long call.", "sentiment": "neutral", "score": 0}');
    const turns = Array.from({ length: 1_500 }, (_, index) =>
      [index % 2 === 0 ? 'user' : 'assistant', `Turn number ${index} of a very long call about many things.`] as [
        'user' | 'assistant',
        string,
      ]);
    await analyzeCall({ transcript: call(...turns) }, provider);
    const lines = requests[0].messages[1].content.split('\n');
    expect(lines.length).toBeLessThan(1_500);
    expect(lines[0]).toBe('User: Turn number 0 of a very long call about many things.');
    expect(lines).toContain('…');
    expect(lines.at(-1)).toBe('Assistant: Turn number 1499 of a very long call about many things.');
  });
});

describe('analyzeCall through the OpenAI provider', () => {
  let stub: OpenAiStub;
  beforeAll(async () => {
    stub = await startOpenAiStub({ apiKey: 'sk-test' });
  });
  afterAll(async () => {
    await stub?.close();
  });

  it('reads the streamed answer and its usage', async () => {
    stub.answerChat({
      content: '{"summary": "Appointment moved to Friday.", "sentiment": "positive", "score": 0.7}',
      usage: { prompt_tokens: 180, completion_tokens: 25 },
    });
    const provider = createOpenAiChatProvider({ apiKey: 'sk-test', baseURL: stub.baseURL });
    expect(await analyzeCall({ transcript: booking }, provider)).toEqual({
      summary: 'Appointment moved to Friday.',
      sentiment: 'positive',
      score: 0.7,
      source: 'model',
      model: 'gpt-4o-mini',
      usage: { tokensIn: 180, tokensOut: 25 },
    });
    expect(stub.chatRequests.at(-1)?.model).toBe('gpt-4o-mini');
  });
});
