import type { ChatProvider } from '../_shared/chat/index.ts';
import { asServiceRole, type Sql } from '../_shared/db.ts';
import { analyzeCall, type Sentiment, type TranscriptSegment } from '../_shared/voice/index.ts';
import type { RecordingStore } from './recordings.ts';

/**
 * The work that follows a call's end: a summary and sentiment where the
 * provider gave none, and the recording copied from the provider into the
 * org's Storage prefix. The database picks the calls (and marks them asked,
 * so a failed attempt is tried again later, not in a loop); each call is
 * independent of the others, so one failure never stops the pass.
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
  maxCalls?: number;
  log?: (message: string, error?: unknown) => void;
}

const DEFAULT_MAX_CALLS = 20;

async function analyse(options: AfterCallOptions, call: CallToAnalyse): Promise<void> {
  const transcript = call.transcript.map((segment) => ({ ...segment, startMs: 0, endMs: 0 }));
  const analysis = await analyzeCall({ transcript, language: call.language ?? undefined }, options.chat);
  const sentiment: Sentiment = analysis.sentiment;
  await asServiceRole(options.sql, (tx) =>
    tx`select private.save_call_analysis(
      ${call.call_id}::uuid, ${analysis.summary}::text, ${sentiment}::public.call_sentiment, ${analysis.score}::numeric,
      ${analysis.model}::text, ${analysis.usage.tokensIn}::integer, ${analysis.usage.tokensOut}::integer)`);
}

async function copyRecording(options: AfterCallOptions, call: CallToRecord): Promise<void> {
  const path = await options.recordings.copy(call);
  await asServiceRole(options.sql, (tx) => tx`select private.save_call_recording(${call.call_id}::uuid, ${path}::text)`);
}

export async function runAfterCallWork(options: AfterCallOptions): Promise<AfterCallSummary> {
  const max = options.maxCalls ?? DEFAULT_MAX_CALLS;
  const log = options.log ?? ((message: string, error?: unknown) => console.error(message, error));
  const summary: AfterCallSummary = { analysed: 0, recordings: 0, failed: 0 };

  const toAnalyse = await asServiceRole(options.sql, (tx) =>
    tx<CallToAnalyse[]>`select call_id, language, transcript from private.calls_needing_analysis(${max}::integer)`);
  for (const call of toAnalyse) {
    try {
      await analyse(options, call);
      summary.analysed += 1;
    } catch (error) {
      log(`analysing call ${call.call_id} failed`, error);
      summary.failed += 1;
    }
  }

  const toRecord = await asServiceRole(options.sql, (tx) =>
    tx<CallToRecord[]>`select call_id, org_id, recording_url from private.calls_needing_recording(${max}::integer)`);
  for (const call of toRecord) {
    try {
      await copyRecording(options, call);
      summary.recordings += 1;
    } catch (error) {
      log(`copying the recording of call ${call.call_id} failed`, error);
      summary.failed += 1;
    }
  }
  return summary;
}
