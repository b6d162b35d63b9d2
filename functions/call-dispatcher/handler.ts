import { chatProviderFor } from '../_shared/chat/index.ts';
import { getSql, type Sql } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { HttpError } from '../_shared/errors.ts';
import { createHandler } from '../_shared/handler.ts';
import { json } from '../_shared/http.ts';
import { requireServiceRole } from '../_shared/service-auth.ts';
import { createVapiDialer, DEFAULT_ANALYSIS_MODEL, vapiBaseUrl, type VoiceDialer } from '../_shared/voice/index.ts';
import { type AfterCallSummary, runAfterCallWork } from './after-call.ts';
import { dialDueCalls, type DialSummary } from './dial.ts';
import { type RecordingStore, supabaseRecordingStore } from './recordings.ts';

/**
 * POST /functions/v1/call-dispatcher: one pass of the calls' background work
 * — dial due outbound calls, then analyse ended calls the provider left
 * without summary or sentiment, and copy recordings into Storage (each part
 * within its own time budget: DIAL_DEFAULTS, AFTER_CALL_DEFAULTS). Called by
 * pg_cron through pg_net (private.request_call_dispatch) with the
 * service-role key; nobody else may. Without VAPI_API_KEY nothing is dialled
 * (queued calls wait, attempts untouched) and the answer says so; the
 * after-call work runs either way (offline analysis without OPENAI_API_KEY).
 */
export interface CallDispatchSummary {
  dials: DialSummary | { skipped: string };
  afterCall: AfterCallSummary;
  durationMs: number;
}

export interface CallDispatcherDeps {
  sql: () => Sql;
  env?: EnvReader;
  dialer?: VoiceDialer | null;
  recordings?: RecordingStore;
}

function dialerFrom(env: EnvReader): VoiceDialer | null {
  const apiKey = env('VAPI_API_KEY')?.trim();
  return apiKey ? createVapiDialer({ apiKey, baseUrl: vapiBaseUrl(env) }) : null;
}

export function createCallDispatcherHandler(deps: CallDispatcherDeps): (req: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  return createHandler(async (req) => {
    if (req.method !== 'POST') {
      throw new HttpError(405, 'method_not_allowed', `${req.method} is not supported; use POST.`, { allow: 'POST' });
    }
    await requireServiceRole(req, { env, what: 'run the call dispatcher' });
    const started = performance.now();
    const sql = deps.sql();
    const dialer = deps.dialer === undefined ? dialerFrom(env) : deps.dialer;
    const dials = dialer ? await dialDueCalls({ sql, dialer }) : { skipped: 'VAPI_API_KEY is not set: no call is dialled' };
    const afterCall = await runAfterCallWork({
      sql,
      chat: chatProviderFor({ id: DEFAULT_ANALYSIS_MODEL, provider: 'openai' }, env),
      recordings: deps.recordings ??
        supabaseRecordingStore(env, { policy: { allowLoopback: env('WEBHOOK_ALLOW_LOOPBACK') === 'true' } }),
    });
    const summary: CallDispatchSummary = { dials, afterCall, durationMs: Math.round(performance.now() - started) };
    return json(summary, 200, { 'cache-control': 'no-store' });
  }, { env });
}

export const handler = createCallDispatcherHandler({ sql: () => getSql() });
