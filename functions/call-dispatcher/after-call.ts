import type { ChatProvider } from '../_shared/chat/index.ts';
import { asServiceRole, type Sql } from '../_shared/db.ts';
import { analyzeCall, storableAnalysis } from '../_shared/voice/analysis.ts';
import type { TranscriptSegment } from '../_shared/voice/index.ts';
import type { RecordingStore } from './recordings.ts';

/**
 * The work that follows a call's end: a summary and sentiment where the
 * provider gave none, and the recording copied from the provider into the
 * org's Storage prefix. The database hands the calls out and counts each
 * hand-out as a try (again after 10 minutes, 5 tries at most), so calls are
 * taken one at a time: a pass cut short (the hosted wall-clock limit) costs
 * a try of the call it was working on only, never of calls it had not
 * reached. No call is taken after `maxDurationMs`; analyses and recordings
 * are taken in turns within it. Each call is independent of the others, so
 * one failure never stops the pass.
 */
export interface AfterCallSummary {
  analysed: number;
  recordings: number;
  failed: number;
}

interface CallToAnalyse {
  call_id: string;
  /** The bot's language, for the summary. */
  language: string | null;
  transcript: Array<{ speaker: TranscriptSegment['speaker']; text: string }>;
}

interface CallToRecord {
  call_id: string;
  org_id: string;
  recording_url: string;
}

export interface AfterCallOptions {
  sql: Sql;
  chat: ChatProvider;
  recordings: RecordingStore;
  /** Most analyses, and most recording copies, per pass. */
  maxCalls?: number;
  /**
   * No call is taken after this many milliseconds from the start of the
   * work; the one under way finishes (a copy within the store's own timeout).
   */
  maxDurationMs?: number;
  log?: (message: string, error?: unknown) => void;
}

export const AFTER_CALL_DEFAULTS = {
  maxCalls: 20,
  maxDurationMs: 20_000,
} as const;

async function analyse(options: AfterCallOptions, call: CallToAnalyse): Promise<void> {
  const transcript = call.transcript.map((segment) => ({ ...segment, startMs: 0, endMs: 0 }));
  const analysis = storableAnalysis(await analyzeCall({ transcript, language: call.language ?? undefined }, options.chat));
  await asServiceRole(options.sql, (tx) =>
    tx`select private.save_call_analysis(
      ${call.call_id}::uuid, ${analysis.summary}::text, ${analysis.sentiment}::public.call_sentiment, ${analysis.score}::numeric,
      ${analysis.model}::text, ${analysis.usage.tokensIn}::integer, ${analysis.usage.tokensOut}::integer)`);
}

async function copyRecording(options: AfterCallOptions, call: CallToRecord): Promise<void> {
  const path = await options.recordings.copy(call);
  await asServiceRole(options.sql, (tx) => tx`select private.save_call_recording(${call.call_id}::uuid, ${path}::text)`);
}

async function takeCallToAnalyse(sql: Sql): Promise<CallToAnalyse | undefined> {
  const [call] = await asServiceRole(sql, (tx) =>
    tx<CallToAnalyse[]>`select call_id, language, transcript from private.calls_needing_analysis(1)`);
  return call;
}

async function takeCallToRecord(sql: Sql): Promise<CallToRecord | undefined> {
  const [call] = await asServiceRole(sql, (tx) =>
    tx<CallToRecord[]>`select call_id, org_id, recording_url from private.calls_needing_recording(1)`);
  return call;
}

/** Takes one call of a kind and handles it; false when none is due. */
type Step = () => Promise<boolean>;

function step<T extends { call_id: string }>(
  take: () => Promise<T | undefined>,
  work: (call: T) => Promise<void>,
  onDone: () => void,
  onFailure: (call: T, error: unknown) => void,
): Step {
  return async () => {
    const call = await take();
    if (!call) return false;
    try {
      await work(call);
      onDone();
    } catch (error) {
      onFailure(call, error);
    }
    return true;
  };
}

export async function runAfterCallWork(options: AfterCallOptions): Promise<AfterCallSummary> {
  const max = options.maxCalls ?? AFTER_CALL_DEFAULTS.maxCalls;
  const maxDurationMs = options.maxDurationMs ?? AFTER_CALL_DEFAULTS.maxDurationMs;
  const log = options.log ?? ((message: string, error?: unknown) => console.error(message, error));
  const summary: AfterCallSummary = { analysed: 0, recordings: 0, failed: 0 };
  const started = performance.now();
  const inTime = () => performance.now() - started < maxDurationMs;

  // One call of each kind in turn, so a backlog of slow analyses never spends
  // the whole budget while recordings, whose provider links expire, wait.
  const kinds = [
    {
      left: max,
      next: step(
        () => takeCallToAnalyse(options.sql),
        (call) => analyse(options, call),
        () => (summary.analysed += 1),
        (call, error) => {
          log(`analysing call ${call.call_id} failed`, error);
          summary.failed += 1;
        },
      ),
    },
    {
      left: max,
      next: step(
        () => takeCallToRecord(options.sql),
        (call) => copyRecording(options, call),
        () => (summary.recordings += 1),
        (call, error) => {
          log(`copying the recording of call ${call.call_id} failed`, error);
          summary.failed += 1;
        },
      ),
    },
  ];
  while (kinds.some((kind) => kind.left > 0)) {
    for (const kind of kinds) {
      if (kind.left === 0) continue;
      if (!inTime()) return summary;
      kind.left = (await kind.next()) ? kind.left - 1 : 0;
    }
  }
  return summary;
}
