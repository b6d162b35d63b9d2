/**
 * Places outbound calls with the voice provider: Vapi's `POST /call` (its
 * API reference, Calls > Create Call; CreateCallDto and Call in
 * github.com/VapiAI/server-sdk-typescript), answered 201 with the Call
 * (`id`, `status` 'queued', ...) or Vapi's error body
 * `{ message: string | string[], error, statusCode }`; and looks up what a
 * dial of unknown outcome did with `GET /call` (Calls > List Calls: a JSON
 * array of Calls, filtered by assistantId, phoneNumberId, createdAt bounds
 * and limit up to 1000).
 */
import { z } from 'zod';
import { type EnvReader, processEnv } from '../env.ts';
import { retryAfterSeconds } from '../retry-after.ts';
import { E164 } from './types.ts';

export interface DialRequest {
  /** The number to call, E.164. Vapi calls from the number behind `phoneNumberId`. */
  to: string;
  assistantId: string;
  phoneNumberId: string;
  /** Comes back in every call event (CallEvent.metadata.callId), so events find our call even before we know Vapi's id. */
  metadata: { call_id: string; org_id: string };
  /** The org's voice settings (org_settings) for this call; absent: the assistant's own. */
  voice?: DialVoiceSettings;
}

/**
 * What of the org's voice settings a call request carries. Only
 * interruption_sensitivity: Vapi's voice and transcriber overrides (where a
 * voice id, its speed and the transcription language go) are unions keyed
 * by a required `provider` (11labs, azure, deepgram, ...), each with its own
 * voice ids, speed range and languages, and org_settings names no provider,
 * so `voice`, `speaking_rate` and `voice_language` cannot be sent as they are.
 */
export interface DialVoiceSettings {
  /** 0–1 (org_settings.interruption_sensitivity): 1, the caller's first sound stops the assistant. */
  interruptionSensitivity: number;
}

/** Vapi's StopSpeakingPlan, as far as we set it. */
export interface VapiStopSpeakingPlan {
  numWords: 0;
  voiceSeconds: number;
}

/** Vapi's default voiceSeconds, what the org default sensitivity 0.5 maps to. */
const VAPI_DEFAULT_VOICE_SECONDS = 0.2;

/**
 * An interruption sensitivity as Vapi's stopSpeakingPlan (AssistantOverrides):
 * `numWords` 0 lets `voiceSeconds`, the seconds of caller speech (voice
 * activity detection) before the assistant stops talking, decide (Vapi: 0 to
 * 0.5, default 0.2). Sensitivity 0 to 1 maps linearly onto 0.4 to 0 seconds,
 * so the org default 0.5 is Vapi's default 0.2.
 */
export function vapiStopSpeakingPlan(interruptionSensitivity: number): VapiStopSpeakingPlan {
  const sensitivity = Math.min(1, Math.max(0, interruptionSensitivity));
  const voiceSeconds = Math.round((1 - sensitivity) * 2 * VAPI_DEFAULT_VOICE_SECONDS * 100) / 100;
  return { numWords: 0, voiceSeconds };
}

export interface DialResult {
  providerCallId: string;
  /** The provider's status, as it says it ('queued' from Vapi). */
  status: string;
}

/**
 * A dial attempt whose outcome is unknown, to look up at the provider: what
 * it was dialled with and when the attempt was handed out (the call, if
 * placed, was created after that and before the dispatcher's lease ran out,
 * at most 15 minutes later).
 */
export interface DialLookup {
  to: string;
  assistantId: string;
  phoneNumberId: string;
  metadata: { call_id: string; org_id: string };
  dialStartedAt: Date;
}

export interface VoiceDialer {
  dial(request: DialRequest): Promise<DialResult>;
  /**
   * The call a dial attempt placed, or null when the provider has none (the
   * attempt placed no call). Throws DialError when the provider cannot tell
   * (unreachable, an error, a list too long to be sure).
   */
  findCall(lookup: DialLookup): Promise<DialResult | null>;
}

/**
 * The provider did not accept the call. `retryable`: a transient failure
 * (429, 5xx, timeout, network), worth trying later, after
 * `retryAfterSeconds` when the provider said so; a 4xx is not (the same
 * request would fail again). `maybePlaced`: the request may have reached the
 * provider and the call be under way (a timeout, a dropped connection, a
 * 5xx from a gateway, an answer we could not read): dialling again could
 * call the person twice, so the attempt's outcome is looked up at the
 * provider (findCall) before it may be dialled again. From findCall, every
 * failure is `maybePlaced`: the lookup did not settle the attempt.
 */
export class DialError extends Error {
  readonly retryable: boolean;
  readonly status: number | undefined;
  readonly retryAfterSeconds: number | undefined;
  readonly maybePlaced: boolean;

  constructor(
    message: string,
    options: { retryable: boolean; maybePlaced: boolean; status?: number; retryAfterSeconds?: number; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.name = 'DialError';
    this.retryable = options.retryable;
    this.maybePlaced = options.maybePlaced;
    this.status = options.status;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export const DEFAULT_VAPI_BASE_URL = 'https://api.vapi.ai';

/** VAPI_BASE_URL (a stand-in for tests, or a proxy), else Vapi's. */
export function vapiBaseUrl(env: EnvReader = processEnv): string {
  return env('VAPI_BASE_URL')?.trim() || DEFAULT_VAPI_BASE_URL;
}

export interface VapiDialerOptions {
  /** The private API key of the Vapi org that owns the assistant and phone number. */
  apiKey: string;
  /** Default https://api.vapi.ai; see vapiBaseUrl. */
  baseUrl?: string;
  fetch?: typeof fetch;
  /** Per request; a dispatcher must not hang on a provider that does not answer. Default 15 s. */
  timeoutMs?: number;
}

const createdCall = z.object({ id: z.string().min(1), status: z.string().optional() });
/** Call, as GET /call lists it: only what a lookup matches on is read. */
const listedCall = z.object({
  id: z.string().min(1),
  status: z.string().optional(),
  customer: z.object({ number: z.string().optional() }).passthrough().nullish(),
  assistantOverrides: z.object({
    metadata: z.object({ call_id: z.unknown().optional() }).passthrough().nullish(),
  }).passthrough().nullish(),
}).passthrough();
const listedCalls = z.array(z.unknown());

/** GET /call answers at most this many calls (Vapi's maximum `limit`); a full page cannot rule a call out. */
export const VAPI_LIST_LIMIT = 1000;
/** The window around the attempt's start searched by createdAt: our clock and Vapi's may differ a little. */
const LOOKUP_CLOCK_SKEW_MS = 5 * 60_000;
/** A dial is placed within its dispatcher's lease (at most 900 s) of the attempt's start. */
const LOOKUP_WINDOW_MS = 15 * 60_000;
const errorBody = z.object({ message: z.union([z.string(), z.array(z.string())]).optional(), error: z.string().optional() });

/**
 * One request per dial, no retries of its own: the dispatcher owns the
 * schedule (and knows whether a retry could call someone twice). Our ids go
 * in `assistantOverrides.metadata`, the documented place: Vapi refuses
 * properties CreateCallDto does not list ("property metadata should not
 * exist"), and the published DTO has no top-level `metadata`.
 *
 * Vapi documents no idempotency key for POST /call, so a repeated request
 * is a second call; none is sent (an unknown header would be ignored, which
 * protects nobody). Instead a dial whose outcome is unknown is looked up
 * (findCall): GET /call (List Calls) filtered by the assistant, the phone
 * number and createdAt around the attempt, matched on our call id in
 * `assistantOverrides.metadata` (Vapi returns the call's overrides). A call
 * Vapi accepted is listed from when its POST /call answers; a lookup comes
 * only after the attempt's lease (longer than this request's timeout) ran
 * out or the request failed, so an absent call was not placed.
 */
export function createVapiDialer(options: VapiDialerOptions): VoiceDialer {
  const connection: VapiConnection = {
    endpoint: `${(options.baseUrl ?? DEFAULT_VAPI_BASE_URL).replace(/\/+$/u, '')}/call`,
    apiKey: options.apiKey,
    fetch: options.fetch ?? fetch,
    timeoutMs: options.timeoutMs ?? 15_000,
  };

  return {
    async dial(request) {
      if (!E164.test(request.to)) {
        throw new DialError(`Cannot dial ${JSON.stringify(request.to)}: not an E.164 number.`, {
          retryable: false,
          maybePlaced: false,
        });
      }
      const call = await requestVapi(connection, {
        method: 'POST',
        body: {
          assistantId: request.assistantId,
          phoneNumberId: request.phoneNumberId,
          customer: { number: request.to },
          assistantOverrides: {
            metadata: request.metadata,
            ...(request.voice ? { stopSpeakingPlan: vapiStopSpeakingPlan(request.voice.interruptionSensitivity) } : {}),
          },
        },
        answer: createdCall,
        refused: (status, said) => ({
          message: `Vapi POST /call failed with ${said}`,
          // A 503 (or a 429) says the request was not taken on; other 5xx, from a gateway, may come after Vapi acted.
          retryable: status === 408 || status === 429 || status >= 500,
          maybePlaced: status >= 500 && status !== 503,
        }),
        // A 2xx: the call may be under way, and the same request would be answered alike.
        unreadable: (status) => ({
          message: `Vapi POST /call answered ${status} without a call id.`,
          retryable: false,
          maybePlaced: true,
        }),
      });
      return { providerCallId: call.id, status: call.status ?? 'queued' };
    },

    async findCall(lookup) {
      const started = lookup.dialStartedAt.getTime();
      const query = new URLSearchParams({
        assistantId: lookup.assistantId,
        phoneNumberId: lookup.phoneNumberId,
        createdAtGe: new Date(started - LOOKUP_CLOCK_SKEW_MS).toISOString(),
        createdAtLe: new Date(started + LOOKUP_WINDOW_MS + LOOKUP_CLOCK_SKEW_MS).toISOString(),
        limit: String(VAPI_LIST_LIMIT),
      });
      // Whatever stops a lookup leaves the attempt as unknown as before: worth asking again, never dialled.
      const unsettled = (reason: string): FailureMeaning => ({
        message: `Vapi GET /call failed: ${reason}`,
        retryable: true,
        maybePlaced: true,
      });
      const list = await requestVapi(connection, {
        method: 'GET',
        query,
        answer: listedCalls,
        refused: (_status, said) => unsettled(said),
        unreadable: (status) => unsettled(`answered ${status} without a list of calls.`),
      });
      for (const item of list) {
        const call = listedCall.safeParse(item);
        if (!call.success) continue;
        const ours = call.data.assistantOverrides?.metadata?.call_id === lookup.metadata.call_id;
        const number = call.data.customer?.number;
        if (ours && (number === undefined || number === lookup.to)) {
          return { providerCallId: call.data.id, status: call.data.status ?? 'queued' };
        }
      }
      // A full page may have left ours out: only a shorter one says "not placed".
      if (list.length >= VAPI_LIST_LIMIT) {
        throw dialFailure(unsettled(`${list.length} calls in the window, too many to rule the call out.`));
      }
      return null;
    },
  };
}

interface VapiConnection {
  /** Vapi's /call resource: POST creates a call, GET lists calls. */
  endpoint: string;
  apiKey: string;
  fetch: typeof fetch;
  timeoutMs: number;
}

/** A DialError's message and what the failure means for the attempt. */
interface FailureMeaning {
  message: string;
  retryable: boolean;
  maybePlaced: boolean;
}

interface VapiRequest<T> {
  method: 'GET' | 'POST';
  query?: URLSearchParams;
  /** Sent as JSON. */
  body?: unknown;
  /** What a 2xx must carry; anything else is `unreadable`. */
  answer: z.ZodType<T>;
  /** A non-2xx answer; `said` is its status and Vapi's reason ("400: ..." or "500."). */
  refused(status: number, said: string): FailureMeaning;
  /** A 2xx without `answer`. */
  unreadable(status: number): FailureMeaning;
}

/**
 * One request to Vapi's /call, answered with its parsed body or thrown as a
 * DialError. No answer (the timeout, a network error) is retryable and maybe
 * placed for every request: it may have reached Vapi. What a refusal or an
 * unreadable answer means depends on the request, so the caller says.
 */
async function requestVapi<T>(connection: VapiConnection, request: VapiRequest<T>): Promise<T> {
  const label = `Vapi ${request.method} /call`;
  let response: Response;
  try {
    response = await connection.fetch(request.query ? `${connection.endpoint}?${request.query}` : connection.endpoint, {
      method: request.method,
      headers: {
        authorization: `Bearer ${connection.apiKey}`,
        ...(request.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
      signal: AbortSignal.timeout(connection.timeoutMs),
    });
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
    const reason = timedOut ? `no answer within ${connection.timeoutMs} ms` : 'Vapi could not be reached';
    throw new DialError(`${label} failed: ${reason}.`, { retryable: true, maybePlaced: true, cause: error });
  }

  const payload: unknown = await response.json().catch(() => undefined);
  const { status } = response;
  if (!response.ok) {
    const failure = errorBody.safeParse(payload);
    const detail = failure.success ? [failure.data.message ?? failure.data.error ?? ''].flat().join('; ') : '';
    throw dialFailure(request.refused(status, `${status}${detail ? `: ${detail}` : '.'}`), {
      status,
      retryAfterSeconds: retryAfterSeconds(response.headers.get('retry-after')),
    });
  }
  const answer = request.answer.safeParse(payload);
  if (answer.success) return answer.data;
  throw dialFailure(request.unreadable(status), { status });
}

function dialFailure(
  { message, ...outcome }: FailureMeaning,
  answer: { status?: number; retryAfterSeconds?: number } = {},
): DialError {
  return new DialError(message, { ...outcome, ...answer });
}

