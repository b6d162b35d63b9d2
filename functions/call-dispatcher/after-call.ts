import type { ChatProvider } from '../_shared/chat/index.ts';
import { asServiceRole, type Sql } from '../_shared/db.ts';
import {
  analyzeCall,
  type CallAnalysis,
  CallAnalysisFailed,
  CallAnalysisThrottled,
  storableAnalysis,
} from '../_shared/voice/analysis.ts';
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
 *
 * A model that fails on an analysis (its provider's retries spent: a long
 * 429, a 5xx, a stream cut) fails the try, so the call stays due and is
 * handed out again; only its last try falls back to the rules, stored at
 * once. What a failed try spent is metered all the same.
 *
 * The analysis model shares the platform's key, so a throttle (429, or 503
 * with Retry-After) says nothing about the call: its try is given back (not
 * counted, due again after Retry-After) and the pass takes no more analyses.
 * The database hands the orgs' calls out in turn (20261123011800), so one
 * org's backlog does not hold another's back.
 *
 * An org whose chat tokens of the period are used up (private.chat_quota, the
 * limit chat_prepare enforces) gets the rules' analysis, with no model call:
 * its calls come from anyone who dials its number, and a model analysis is
 * chat work the quota exists to bound.
 */
export interface AfterCallSummary {
  analysed: number;
  recordings: number;
  failed: number;
  /** Analyses whose try was given back because the model was throttled (one a pass at most). */
  throttled: number;
}

interface CallToAnalyse {
  call_id: string;
  /** The bot's language, for the summary. */
  language: string | null;
  transcript: Array<{ speaker: TranscriptSegment['speaker']; text: string }>;
  /** No later hand-out will come: a failing model falls back to the rules. */
  last_try: boolean;
  /** The org's chat tokens of the period are used up: the rules analyse it, no model call. */
  over_quota: boolean;
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

async function analyse(options: AfterCallOptions, call: CallToAnalyse): Promise<'analysed' | 'throttled'> {
  const transcript = call.transcript.map((segment) => ({ ...segment, startMs: 0, endMs: 0 }));
  const input = { transcript, language: call.language ?? undefined };
  let analysed: CallAnalysis;
  if (call.over_quota) {
    await save(options.sql, call.call_id, await analyzeCall(input));
    return 'analysed';
  }
  try {
    analysed = await analyzeCall({ ...input, lastTry: call.last_try, throwThrottles: true }, options.chat);
  } catch (error) {
    if (error instanceof CallAnalysisThrottled) {
      if (await giveBackThrottledTry(options.sql, call.call_id, error.retryAfterSeconds)) {
        (options.log ?? console.error)(`the analysis model is throttled: call ${call.call_id} given back`, error);
        return 'throttled';
      }
      // Its 7 days end before another hand-out could follow the throttle: the rules, as on a last try.
      analysed = await analyzeCall(input);
      await save(options.sql, call.call_id, analysed);
      return 'analysed';
    }
    if (error instanceof CallAnalysisFailed && error.usage.tokensIn + error.usage.tokensOut > 0) {
      // The try fails with the model's error either way, which is what its log line should say.
      await meterFailedTry(options.sql, call.call_id, error).catch((metering) =>
        (options.log ?? console.error)(`metering the failed analysis of call ${call.call_id} failed`, metering)
      );
    }
    throw error;
  }
  await save(options.sql, call.call_id, analysed);
  return 'analysed';
}

async function save(sql: Sql, callId: string, analysed: CallAnalysis): Promise<void> {
  const analysis = storableAnalysis(analysed);
  await asServiceRole(sql, (tx) =>
    tx`select private.save_call_analysis(
      ${callId}::uuid, ${analysis.summary}::text, ${analysis.sentiment}::public.call_sentiment, ${analysis.score}::numeric,
      ${analysis.model}::text, ${analysis.usage.tokensIn}::integer, ${analysis.usage.tokensOut}::integer)`);
}

/**
 * private.release_throttled_call_analysis's longest wait (an hour). Capped
 * here too, before it is sent as an integer: "99999999999" is out of range.
 */
const MAX_THROTTLE_WAIT_SECONDS = 3600;

/** The throttled try given back (not counted, due after the wait); false when the call's window is too short. */
async function giveBackThrottledTry(sql: Sql, callId: string, retryAfterSeconds: number | undefined): Promise<boolean> {
  const wait = retryAfterSeconds === undefined ? null : Math.min(retryAfterSeconds, MAX_THROTTLE_WAIT_SECONDS);
  const [row] = await asServiceRole(sql, (tx) =>
    tx<{ given_back: boolean }[]>`
      select private.release_throttled_call_analysis(${callId}::uuid, ${wait}::integer) as given_back`);
  return row.given_back;
}

/** A failed try's tokens, metered as save_call_analysis meters an analysis: chat work of the call's bot. */
async function meterFailedTry(sql: Sql, callId: string, failure: CallAnalysisFailed): Promise<void> {
  await asServiceRole(sql, (tx) =>
    tx`select private.record_usage(c.org_id, 'chat', ${failure.model}::text, ${failure.usage.tokensIn}::integer,
      ${failure.usage.tokensOut}::integer, null, null, c.bot_id, c.conversation_id, null)
    from public.calls c where c.id = ${callId}::uuid`);
}

async function copyRecording(options: AfterCallOptions, call: CallToRecord): Promise<void> {
  const path = await options.recordings.copy(call);
  await asServiceRole(options.sql, (tx) => tx`select private.save_call_recording(${call.call_id}::uuid, ${path}::text)`);
}

/**
 * A call's tries as private.calls_needing_analysis counts and limits them
 * (20261123010200): a hand-out counts one, 5 at most, the next no sooner than
 * 10 minutes on, and only within 7 days of the call's end. A try is also the
 * last when the window closes less than ANALYSIS_HANDOUT_MARGIN after the
 * next hand-out could come: passes come every 15 s (and a busy one may not
 * reach the call at once), so a window left open for a second would be
 * missed and the call kept without a summary for good. A throttled try is
 * given back only with the same margin after its wait
 * (private.release_throttled_call_analysis, 20261123011800).
 */
const ANALYSIS_TRIES = 5;
const ANALYSIS_RETRY_INTERVAL = '10 minutes';
const ANALYSIS_WINDOW = '7 days';
const ANALYSIS_HANDOUT_MARGIN = '1 minute';

async function takeCallToAnalyse(sql: Sql): Promise<CallToAnalyse | undefined> {
  return await asServiceRole(sql, async (tx) => {
    const [call] = await tx<Omit<CallToAnalyse, 'last_try' | 'over_quota'>[]>`
      select call_id, language, transcript from private.calls_needing_analysis(1)`;
    if (!call) return undefined;
    // Read after the hand-out, in its transaction: the try just counted is in analysis_attempts.
    const [{ last_try: lastTry, over_quota: overQuota }] = await tx<{ last_try: boolean; over_quota: boolean }[]>`
      select c.analysis_attempts >= ${ANALYSIS_TRIES}
        or c.ended_at + ${ANALYSIS_WINDOW}::interval
          <= now() + ${ANALYSIS_RETRY_INTERVAL}::interval + ${ANALYSIS_HANDOUT_MARGIN}::interval as last_try,
        coalesce((select q.used_chat_tokens >= q.monthly_chat_tokens from private.chat_quota(c.org_id) q), false)
          as over_quota
      from public.calls c where c.id = ${call.call_id}::uuid`;
    return { ...call, last_try: lastTry, over_quota: overQuota };
  });
}

async function takeCallToRecord(sql: Sql): Promise<CallToRecord | undefined> {
  const [call] = await asServiceRole(sql, (tx) =>
    tx<CallToRecord[]>`select call_id, org_id, recording_url from private.calls_needing_recording(1)`);
  return call;
}

/** Takes one call of a kind and handles it; false when none is due. */
type Step = () => Promise<boolean>;

function step<T extends { call_id: string }, R>(
  take: () => Promise<T | undefined>,
  work: (call: T) => Promise<R>,
  onDone: (result: R) => void,
  onFailure: (call: T, error: unknown) => void,
): Step {
  return async () => {
    const call = await take();
    if (!call) return false;
    try {
      onDone(await work(call));
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
  const summary: AfterCallSummary = { analysed: 0, recordings: 0, failed: 0, throttled: 0 };
  const started = performance.now();
  const inTime = () => performance.now() - started < maxDurationMs;

  // One call of each kind in turn, so a backlog of slow analyses never spends
  // the whole budget while recordings, whose provider links expire, wait.
  const kinds = [
    {
      left: max,
      next: step(
        // A throttled model would throttle the next call too; the calls not taken keep their tries.
        () => summary.throttled > 0 ? Promise.resolve(undefined) : takeCallToAnalyse(options.sql),
        (call) => analyse(options, call),
        (result) => (result === 'analysed' ? (summary.analysed += 1) : (summary.throttled += 1)),
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
