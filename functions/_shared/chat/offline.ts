import { truncateToTokens } from '../text/tokens.ts';
import { noAnswerText } from './prompt.ts';
import { numberSources, productFacts } from './sources.ts';
import type { ChatContext, ChatDelta, ChatProvider, ChatRequest } from './types.ts';
import { countPromptTokens } from './usage.ts';

/** The model id bots use for it, and its provider name. */
export const OFFLINE_CHAT_MODEL = 'offline';

/** An answer is at most this many sentences and about this many words: a short reply, not a digest. */
const MAX_SENTENCES = 3;
const MAX_WORDS = 120;
// A "sentence" can be a whole table row or an unpunctuated page; it is cut to this many words.
const MAX_SENTENCE_WORDS = 60;
// Sentences scoring under this share of the best one are left out: they match only a side word of the question.
const MIN_SHARE_OF_BEST = 0.5;

/**
 * Answers with no model, deterministically, for running and testing with no
 * API key: the sentences of the retrieved chunks and products that share the
 * most words with the user's last question, with [n] citations, or the
 * no-answer sentence when nothing does. It never writes a word of its own, so
 * it cannot invent; neither does it understand, so it answers only questions
 * worded like the text that answers them.
 */
export function createOfflineChatProvider(): ChatProvider {
  return { name: OFFLINE_CHAT_MODEL, stream: streamOfflineAnswer };
}

async function* streamOfflineAnswer(request: ChatRequest): AsyncGenerator<ChatDelta> {
  const question = [...request.messages].reverse().find((message) => message.role === 'user')?.content ?? '';
  const answer = extractiveAnswer(question, request.context) ?? noAnswerText(request.language);
  const { text, tokens } = truncateToTokens(answer, Math.max(0, request.maxTokens));
  // It answers every request: taken at once, like a model's 2xx.
  request.onAccepted?.();
  // One delta per word with its trailing space, as a model streams: the deltas join up to the exact answer.
  for (const word of text.match(/\S+\s*/gu) ?? []) {
    request.signal?.throwIfAborted();
    yield { type: 'delta', text: word };
  }
  request.signal?.throwIfAborted();
  yield {
    type: 'done',
    usage: { tokensIn: countPromptTokens(request.messages), tokensOut: tokens },
    finishReason: text.length < answer.length ? 'length' : 'stop',
  };
}

interface Candidate {
  /** The source's [n]. */
  source: number;
  text: string;
  terms: Set<string>;
}

/**
 * The extractive answer to `question` from `context`, or null when no sentence
 * shares a word with it. Sentences are scored by the question words they hold,
 * each weighted by how rare it is among all the sentences (so "refund" counts
 * for more than "order" in a shop's documents); the best ones are given in
 * source order, each run from one source followed by its [n].
 */
export function extractiveAnswer(question: string, context: ChatContext): string | null {
  const wanted = terms(question);
  const candidates = numberSources(context).flatMap((source): Candidate[] => {
    if (source.kind === 'chunk') return sentenceCandidates(source.number, source.chunk.content);
    const { product } = source;
    // The facts line matches on the product's name; the description's sentences on their own words.
    const facts = {
      source: source.number,
      text: `${product.name}: ${productFacts(product)}`,
      terms: terms(product.name),
    };
    return [facts, ...sentenceCandidates(source.number, product.description)];
  });
  if (wanted.size === 0 || candidates.length === 0) return null;

  const documentFrequency = new Map<string, number>();
  for (const candidate of candidates) {
    for (const term of candidate.terms) documentFrequency.set(term, (documentFrequency.get(term) ?? 0) + 1);
  }
  const weight = (term: string) => 1 + Math.log(candidates.length / (documentFrequency.get(term) ?? candidates.length));
  const scored = candidates
    .map((candidate, order) => ({
      candidate,
      order,
      score: [...wanted].reduce((sum, term) => sum + (candidate.terms.has(term) ? weight(term) : 0), 0),
    }))
    .filter((entry) => entry.score > 0)
    // Best first; equal scores keep source order, so the result never depends on sort stability.
    .sort((a, b) => b.score - a.score || a.order - b.order);
  if (scored.length === 0) return null;

  const chosen: typeof scored = [];
  let words = 0;
  for (const entry of scored) {
    if (chosen.length === MAX_SENTENCES || entry.score < scored[0].score * MIN_SHARE_OF_BEST) break;
    const length = wordCount(entry.candidate.text);
    if (chosen.length > 0 && words + length > MAX_WORDS) continue;
    chosen.push(entry);
    words += length;
  }
  chosen.sort((a, b) => a.order - b.order);

  const runs: { source: number; texts: string[] }[] = [];
  for (const { candidate } of chosen) {
    const last = runs.at(-1);
    if (last?.source === candidate.source) last.texts.push(candidate.text);
    else runs.push({ source: candidate.source, texts: [candidate.text] });
  }
  return runs.map((run) => `${run.texts.join(' ')} [${run.source}]`).join(' ');
}

/**
 * The sentences of a text. Blank lines, list items and headings end a block;
 * other line breaks (a PDF's wrapped lines) do not. Headings and fragments of
 * fewer than three words are dropped: they are labels, not answers.
 */
function sentenceCandidates(source: number, text: string): Candidate[] {
  const blocks = text.replace(/^[ \t]*#.*$/gmu, '').split(/\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)]\s))/u);
  const sentences = blocks
    .flatMap((block) => block.replace(/\s+/gu, ' ').split(/(?<=[.!?。！？])\s+/u))
    .map((sentence) => clip(sentence.replace(/^\s*(?:[-*•]|\d+[.)])\s+/u, '').trim()))
    .filter((sentence) => wordCount(sentence) >= 3);
  return sentences.map((sentence) => ({ source, text: sentence, terms: terms(sentence) }));
}

function clip(sentence: string): string {
  const words = sentence.split(' ');
  return words.length <= MAX_SENTENCE_WORDS ? sentence : `${words.slice(0, MAX_SENTENCE_WORDS).join(' ')} …`;
}

function wordCount(text: string): number {
  return text.split(/\s+/u).filter((word) => word !== '').length;
}

// Words that carry no subject in the languages bots mostly speak; left in, any question would match any text.
const STOPWORDS = new Set(
  ('a about also am an and any are as at be been but by can could did do does doing for from get got had has have ' +
    'he her here his how i if in into is it its just know let like me my no not of on or our please she should so ' +
    'tell than that the their them then there these they this to too us want was we were what when where which who ' +
    'why will with would you your ' +
    'auch auf aus bei bitte das dem den der des die ein eine einen einer es fur gibt hat haben ich ihr ihre im ist ' +
    'kann konnen mit nicht oder sie sind und uber von was welche wie wo zu zum zur ' +
    'au aux avec ce ces cette dans des du elle est et il je la le les leur mon nous ou par pas pour quel quelle ' +
    'quels qui quoi sont sur un une vos votre vous ' +
    'al como con cual cuando del el en es esta hay la las lo los mi para por que se su sus tiene un una y')
    .split(' '),
);

/** The words of a text that can match: folded, without stopwords, lightly stemmed. */
function terms(text: string): Set<string> {
  const words = text.normalize('NFKD').replace(/\p{M}+/gu, '').toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return new Set(words.filter((word) => word.length > 1 && !STOPWORDS.has(word)).map(stem));
}

/**
 * A crude stem: common English endings off ("policies" → "policy", "returned"
 * → "return"), then the first six letters, which also joins inflections in
 * other languages ("Lieferung", "Lieferzeit"). Crude both ways: "shipping" and
 * "ship" stay apart, "international" and "internet" meet.
 */
function stem(word: string): string {
  if (/\p{N}/u.test(word)) return word;
  let base = word;
  if (base.length > 4 && base.endsWith('ies')) base = `${base.slice(0, -3)}y`;
  else if (base.length > 5 && base.endsWith('ing')) base = base.slice(0, -3);
  else if (base.length > 4 && base.endsWith('ed')) base = base.slice(0, -2);
  else if (base.length > 3 && base.endsWith('s') && !base.endsWith('ss')) base = base.slice(0, -1);
  return base.slice(0, 6);
}
