/**
 * Places outbound calls with the voice provider: Vapi's `POST /call` (its
 * API reference, Calls > Create Call; CreateCallDto and Call in
 * github.com/VapiAI/server-sdk-typescript), answered 201 with the Call
 * (`id`, `status` 'queued', ...) or Vapi's error body
 * `{ message: string | string[], error, statusCode }`.
 */
import { z } from 'zod';
import { type EnvReader, processEnv } from '../env.ts';
import { E164 } from './types.ts';

export interface DialRequest {
  /** The number to call, E.164. Vapi calls from the number behind `phoneNumberId`. */
  to: string;
  assistantId: string;
  phoneNumberId: string;
  /** Comes back in every call event (CallEvent.metadata.callId), so events find our call even before we know Vapi's id. */
  metadata: { call_id: string; org_id: string };
}

export interface DialResult {
  providerCallId: string;
  /** The provider's status, as it says it ('queued' from Vapi). */
  status: string;
}

export interface VoiceDialer {
  dial(request: DialRequest): Promise<DialResult>;
}

/**
 * The provider did not accept the call. `retryable`: a transient failure
 * (429, 5xx, timeout, network), worth trying later, after
 * `retryAfterSeconds` when the provider said so; a 4xx is not (the same
 * request would fail again). `maybePlaced`: the request may have reached the
 * provider and the call be under way (a timeout, a dropped connection, a
 * 5xx from a gateway, an answer we could not read): dialling again could
 * call the person twice, so wait for the call's events (they carry our call
 * id) before retrying such a failure.
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
const errorBody = z.object({ message: z.union([z.string(), z.array(z.string())]).optional(), error: z.string().optional() });

/**
 * One request per dial, no retries of its own: the dispatcher owns the
 * schedule (and knows whether a retry could call someone twice). Our ids go
 * in `assistantOverrides.metadata`, the documented place: Vapi refuses
 * properties CreateCallDto does not list ("property metadata should not
 * exist"), and the published DTO has no top-level `metadata`.
 */
export function createVapiDialer(options: VapiDialerOptions): VoiceDialer {
  const endpoint = `${(options.baseUrl ?? DEFAULT_VAPI_BASE_URL).replace(/\/+$/u, '')}/call`;
  const fetchImpl = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 15_000;

  return {
    async dial(request) {
      if (!E164.test(request.to)) {
        throw new DialError(`Cannot dial ${JSON.stringify(request.to)}: not an E.164 number.`, {
          retryable: false,
          maybePlaced: false,
        });
      }
      let response: Response;
      try {
        response = await fetchImpl(endpoint, {
          method: 'POST',
          headers: { authorization: `Bearer ${options.apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            assistantId: request.assistantId,
            phoneNumberId: request.phoneNumberId,
            customer: { number: request.to },
            assistantOverrides: { metadata: request.metadata },
          }),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (error) {
        const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
        const reason = timedOut ? `no answer within ${timeoutMs} ms` : 'Vapi could not be reached';
        throw new DialError(`Vapi POST /call failed: ${reason}.`, { retryable: true, maybePlaced: true, cause: error });
      }

      const payload: unknown = await response.json().catch(() => undefined);
      if (response.ok) {
        const call = createdCall.safeParse(payload);
        if (call.success) return { providerCallId: call.data.id, status: call.data.status ?? 'queued' };
        throw new DialError(`Vapi POST /call answered ${response.status} without a call id.`, {
          status: response.status,
          retryable: false,
          maybePlaced: true,
        });
      }
      const { status } = response;
      const failure = errorBody.safeParse(payload);
      const detail = failure.success ? [failure.data.message ?? failure.data.error ?? ''].flat().join('; ') : '';
      // A 503 (or a 429) says the request was not taken on; other 5xx, from a gateway, may come after Vapi acted.
      throw new DialError(`Vapi POST /call failed with ${status}${detail ? `: ${detail}` : '.'}`, {
        status,
        retryable: status === 408 || status === 429 || status >= 500,
        maybePlaced: status >= 500 && status !== 503,
        retryAfterSeconds: retryAfterSeconds(response.headers.get('retry-after')),
      });
    },
  };
}

/** Retry-After in seconds or as an HTTP date, as whole seconds from now. */
function retryAfterSeconds(header: string | null): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds >= 0 ? Math.ceil(seconds) : undefined;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
