/**
 * A summary and the caller's sentiment for a call whose provider gave none:
 * by asking the model when there is one, else by rules, so every call gets
 * both, with no API key too.
 */
import { z } from 'zod';
import { OFFLINE_CHAT_MODEL } from '../chat/offline.ts';
import { type ChatMessage, type ChatProvider, ChatProviderError, type ChatUsage } from '../chat/types.ts';
import { countPromptTokens } from '../chat/usage.ts';
import { countTokensUpTo } from '../text/tokens.ts';
import type { Sentiment, TranscriptSegment } from './types.ts';

export interface CallAnalysisInput {
  transcript: TranscriptSegment[];
  /** The bot's language ('en', 'de', ... or 'auto'): the summary's language; by default the call's. */
  language?: string;
  /** The model to ask; default DEFAULT_ANALYSIS_MODEL. */
  model?: string;
  /**
   * Whether a failed model call falls back to the rules: yes (the default)
   * when no later try will come; no when one will (the after-call work's
   * tries but the last), and the failure is thrown as CallAnalysisFailed.
   */
  lastTry?: boolean;
  /**
   * Whether a model throttle (see isModelThrottle) throws CallAnalysisThrottled whatever `lastTry` says:
   * the after-call work gives such a try back. Otherwise it fails as any other failure.
   */
  throwThrottles?: boolean;
}

export interface CallAnalysis {
  summary: string;
  sentiment: Sentiment;
  /** In [-1, 1]: negative to positive. */
  score: number;
  /** Whether the summary and sentiment are the model's or the rules'. */
  source: 'model' | 'rules';
  /** What to meter: the model asked and its tokens, even when its answer was unusable; 'offline' and zero for rules alone. */
  model: string;
  usage: ChatUsage;
}

export const DEFAULT_ANALYSIS_MODEL = 'gpt-4o-mini';

/**
 * The model failed (its provider's retries spent) and a later try will come.
 * `usage` is what the try spent: a provider error carries no usage (OpenAI
 * sends it only at a stream's end), so with text streamed before the failure
 * it is counted as the chat turns count it, the prompt and that text (both
 * billed); with none, nothing was generated: zero.
 */
export class CallAnalysisFailed extends Error {
  readonly model: string;
  readonly usage: ChatUsage;

  constructor(model: string, usage: ChatUsage, cause: unknown) {
    super(`The analysis model failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'CallAnalysisFailed';
    this.model = model;
    this.usage = usage;
  }
}

/**
 * The model refused the request for load, before any text: a 429, or a 503
 * with Retry-After. The analysis model shares the platform's key, so other
 * orgs' traffic causes it; it says nothing about this call.
 */
export function isModelThrottle(error: unknown): error is ChatProviderError {
  return error instanceof ChatProviderError && !error.afterFirstToken &&
    (error.status === 429 || (error.status === 503 && error.retryAfterSeconds !== undefined));
}

/** The model was throttled (isModelThrottle) and the caller asked to be told (`throwThrottles`). */
export class CallAnalysisThrottled extends Error {
  /** The provider's Retry-After, when it sent one. */
  readonly retryAfterSeconds: number | undefined;

  constructor(cause: ChatProviderError) {
    super(`The analysis model is throttled: ${cause.message}`, { cause });
    this.name = 'CallAnalysisThrottled';
    this.retryAfterSeconds = cause.retryAfterSeconds;
  }
}

// Enough for a long call; a longer one keeps its beginning and end, where the request and the outcome are.
const MAX_TRANSCRIPT_TOKENS = 6_000;
const MAX_ANSWER_TOKENS = 300;
const SUMMARY_PART_CHARS = 150;

const answerSchema = z.object({
  summary: z.string().trim().min(1).max(2_000),
  sentiment: z.enum(['positive', 'neutral', 'negative']),
  score: z.number().min(-1).max(1),
});

/**
 * With a model (any ChatProvider but the offline one), asks it for
 * `{summary, sentiment, score}` as JSON and checks the answer; an answer that
 * does not parse or fit falls back to the rules (the call must get an
 * analysis). A failed request throws CallAnalysisFailed unless it is the last
 * try (`lastTry`), which falls back to the rules, metering what the try spent;
 * a throttle throws CallAnalysisThrottled on any try when `throwThrottles`.
 * Without a model, or for an empty transcript (nothing to pay a model for),
 * the rules answer.
 */
export async function analyzeCall(input: CallAnalysisInput, provider?: ChatProvider): Promise<CallAnalysis> {
  const rules = analyzeByRules(input.transcript);
  const offline = { ...rules, source: 'rules', model: OFFLINE_CHAT_MODEL, usage: { tokensIn: 0, tokensOut: 0 } } as const;
  const lines = transcriptLines(input.transcript);
  if (!provider || provider.name === OFFLINE_CHAT_MODEL || lines.length === 0) return offline;

  const model = input.model ?? DEFAULT_ANALYSIS_MODEL;
  const messages = analysisPrompt(lines, input.language);
  let answer = '';
  let usage: ChatUsage | undefined;
  try {
    for await (
      const delta of provider.stream({
        model,
        messages,
        temperature: 0,
        maxTokens: MAX_ANSWER_TOKENS,
        context: { chunks: [], products: [] },
        language: input.language,
      })
    ) {
      if (delta.type === 'delta') answer += delta.text;
      else usage = delta.usage;
    }
  } catch (error) {
    if (input.throwThrottles && answer === '' && isModelThrottle(error)) throw new CallAnalysisThrottled(error);
    const spent = { tokensIn: answer === '' ? 0 : countPromptTokens(messages), tokensOut: countTokensUpTo(answer) };
    if (input.lastTry === false) throw new CallAnalysisFailed(model, spent, error);
    return answer === '' ? offline : { ...rules, source: 'rules', model, usage: spent };
  }
  const metered = { model, usage: usage ?? { tokensIn: 0, tokensOut: 0 } };
  const parsed = answerSchema.safeParse(jsonIn(answer));
  if (!parsed.success) return { ...rules, source: 'rules', ...metered };
  return { ...parsed.data, source: 'model', ...metered };
}

/** A verdict a call can store: the database takes positive, neutral or negative, never unknown. */
export type StoredSentiment = Exclude<Sentiment, 'unknown'>;

/** What the summary of a call the caller said nothing in starts with. */
export const SILENT_CALL_SUMMARY = 'The caller said nothing.';

/**
 * An analysis as a call stores it. The rules read no mood, 'unknown', when the caller said nothing (a
 * voicemail, a line left silent); such a call is stored as neutral with score 0 and a summary that says so,
 * ahead of what the assistant said. Unknown cannot be stored: the call would stay without a summary and be
 * analysed again until its tries run out (private.calls_needing_analysis, 20261123010200).
 */
export function storableAnalysis(analysis: CallAnalysis): CallAnalysis & { sentiment: StoredSentiment } {
  if (analysis.sentiment !== 'unknown') return { ...analysis, sentiment: analysis.sentiment };
  const summary = analysis.summary === '' ? SILENT_CALL_SUMMARY : `${SILENT_CALL_SUMMARY} ${analysis.summary}`;
  return { ...analysis, summary, sentiment: 'neutral', score: 0 };
}

function analysisPrompt(lines: string[], language: string | undefined): ChatMessage[] {
  const inLanguage = language && language !== 'auto' ? `in the language with code "${language}"` : 'in the language of the call';
  return [
    {
      role: 'system',
      content: 'You analyse phone calls between a caller ("User") and an AI assistant ("Assistant"). ' +
        'Answer with one JSON object and nothing else: ' +
        '{"summary": string, "sentiment": "positive" | "neutral" | "negative", "score": number}. ' +
        `summary: one or two sentences ${inLanguage}: what the caller wanted and how the call ended. ` +
        "sentiment and score: the caller's mood over the call; score from -1 (very negative) to 1 (very positive).",
    },
    { role: 'user', content: fitToBudget(lines).join('\n') },
  ];
}

/** The model's answer as JSON: the object in it, with or without a code fence around it. */
function jsonIn(answer: string): unknown {
  const start = answer.indexOf('{');
  const end = answer.lastIndexOf('}');
  if (start < 0 || end < start) return undefined;
  try {
    return JSON.parse(answer.slice(start, end + 1));
  } catch {
    return undefined;
  }
}

function transcriptLines(transcript: TranscriptSegment[]): string[] {
  const label = { user: 'User', assistant: 'Assistant', system: 'System' } as const;
  return transcript
    .filter((segment) => segment.text.trim() !== '')
    .map((segment) => `${label[segment.speaker]}: ${segment.text.trim()}`);
}

/**
 * The lines, or as many from the start and the end as fit the budget, with "…" between. A line is counted
 * in slices and only as far as the budget left needs (countTokensUpTo), so a transcript of megabytes costs
 * no more counting than the budget's worth of it.
 */
function fitToBudget(lines: string[]): string[] {
  const all = fitting(lines, MAX_TRANSCRIPT_TOKENS);
  if (all === lines.length) return lines;
  const half = MAX_TRANSCRIPT_TOKENS / 2;
  const head = fitting(lines, half);
  const tail = fitting(lines.slice(head).reverse(), half);
  return [...lines.slice(0, head), '…', ...lines.slice(lines.length - tail)];
}

/** How many of the first lines fit `budget`, a line costing its tokens and one for its line break. */
function fitting(lines: string[], budget: number): number {
  let used = 0;
  let count = 0;
  for (const line of lines) {
    // Counted no further than what is left: past that, the line does not fit whatever its length.
    const cost = countTokensUpTo(line, budget - used) + 1;
    if (used + cost > budget) break;
    used += cost;
    count += 1;
  }
  return count;
}

/**
 * The rules: the summary is the caller's first request (their first turn of
 * three words or more, so not "Hello?") and the assistant's last answer; the
 * sentiment is counted in the caller's words only (the assistant is polite
 * whatever happens), from SENTIMENT_WORDS, a word preceded by a negation
 * within two words counting the other way ("not good", "kein Problem").
 * Score: (positive − negative) / (positive + negative + 1), so one word is a
 * lean (±0.5) and many agreeing words approach ±1; 'unknown' when the caller
 * said nothing.
 */
function analyzeByRules(transcript: TranscriptSegment[]): Pick<CallAnalysis, 'summary' | 'sentiment' | 'score'> {
  const said = (speaker: TranscriptSegment['speaker']) =>
    transcript.filter((segment) => segment.speaker === speaker).map((segment) => segment.text.trim()).filter(Boolean);
  const user = said('user');
  const assistant = said('assistant');
  const request = user.find((text) => text.split(/\s+/u).length >= 3) ?? user[0];
  const answer = assistant.at(-1);
  const summary = [
    request === undefined ? '' : `User: ${clip(request)}`,
    answer === undefined ? '' : `Assistant: ${clip(answer)}`,
  ].filter(Boolean).join(' ');
  if (user.length === 0) return { summary, sentiment: 'unknown', score: 0 };

  let positive = 0;
  let negative = 0;
  for (const clause of user.join('. ').toLowerCase().replace(/n['’]t\b/gu, ' not').split(/[.!?;,:]+/u)) {
    const words = clause.normalize('NFC').match(/[\p{L}\p{N}]+/gu) ?? [];
    words.forEach((word, index) => {
      const polarity = POLARITY.get(word);
      if (polarity === undefined) return;
      const negated = words.slice(Math.max(0, index - 2), index).some((before) => NEGATIONS.has(before));
      if ((polarity > 0) !== negated) positive += 1;
      else negative += 1;
    });
  }
  const score = Math.round(((positive - negative) / (positive + negative + 1)) * 100) / 100;
  return { summary, sentiment: score > 0.2 ? 'positive' : score < -0.2 ? 'negative' : 'neutral', score };
}

/** At most SUMMARY_PART_CHARS, cut at a word with "…". */
function clip(text: string): string {
  const flat = text.replace(/\s+/gu, ' ');
  if (flat.length <= SUMMARY_PART_CHARS) return flat;
  const cut = flat.slice(0, SUMMARY_PART_CHARS - 1);
  const space = cut.lastIndexOf(' ');
  return `${(space > SUMMARY_PART_CHARS / 2 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

// Words that carry a caller's mood in the languages bots mostly speak, in the forms callers say them.
const SENTIMENT_WORDS = {
  positive: [
    // en
    'good great excellent perfect thanks thank helpful happy love awesome wonderful amazing appreciate nice ' +
    'fantastic glad satisfied pleased brilliant resolved solved',
    // de
    'gut super toll prima danke perfekt hervorragend ausgezeichnet zufrieden freundlich hilfreich wunderbar ' +
    'klasse großartig schön',
    // fr
    'bon bonne bien excellent parfait parfaite merci génial formidable satisfait satisfaite content contente ' +
    'agréable utile ravi ravie',
    // es
    'bueno buena bien excelente perfecto perfecta gracias genial estupendo fantástico contento contenta ' +
    'satisfecho satisfecha útil maravilloso',
    // ru
    'хорошо хороший хорошая хорошее отлично отличный спасибо благодарю прекрасно замечательно супер класс ' +
    'доволен довольна рад рада полезно',
  ],
  negative: [
    'bad terrible awful horrible angry annoyed frustrated frustrating disappointed disappointing useless worst ' +
    'hate problem broken complaint unhappy upset poor wrong ridiculous',
    'schlecht schrecklich furchtbar ärgerlich verärgert enttäuscht enttäuschend nutzlos katastrophe katastrophal ' +
    'problem beschwerde unzufrieden falsch kaputt mies',
    'mauvais mauvaise mal horrible nul nulle déçu déçue décevant problème plainte inutile fâché énervé ' +
    'insatisfait pire',
    'malo mala mal pésimo fatal molesto molesta enfadado enojado decepcionado decepcionante problema queja inútil peor',
    'плохо плохой плохая ужасно ужасный отвратительно недоволен недовольна проблема жалоба разочарован ' +
    'разочарована бесполезно хуже кошмар сломан сломано',
  ],
};

const POLARITY = new Map<string, number>([
  ...SENTIMENT_WORDS.positive.flatMap((words) => words.split(' ').map((word) => [word, 1] as const)),
  ...SENTIMENT_WORDS.negative.flatMap((words) => words.split(' ').map((word) => [word, -1] as const)),
]);

const NEGATIONS = new Set(
  ('not no never nothing hardly without ' +
    'nicht kein keine keinen keiner nie niemals ' +
    'pas jamais aucun aucune ni ' +
    'nunca jamás tampoco ' +
    'не нет никогда').split(' '),
);
