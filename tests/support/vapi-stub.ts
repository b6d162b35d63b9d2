/**
 * Vapi for tests, with no network.
 *
 * A local server for `POST /call` (CreateCallDto in Vapi's API definition):
 * bearer key checked (401), properties the DTO does not list refused as Vapi
 * refuses them (400 `{ message: ["property x should not exist"], error:
 * 'Bad Request', statusCode: 400 }`), an assistant, a phone number and an
 * E.164 customer number required; otherwise 201 with a Call
 * `{ id, orgId, type: 'outboundPhoneCall', status: 'queued', ... }`, which
 * it keeps. `GET /call` (List Calls: a JSON array of Calls, newest first,
 * filtered by the query parameters Vapi documents — id, assistantId,
 * phoneNumberId, limit (default 100, at most 1000), createdAt{Gt,Lt,Ge,Le},
 * updatedAt{Gt,Lt,Ge,Le} — any other refused with 400 as Vapi's validation
 * does) and `GET /call/:id` (Get Call; 404 when unknown) read them back.
 * Failures (429 with Retry-After, 5xx, 4xx) can be queued, requests left
 * unanswered, for the dialer's timeout, and calls accepted with their answer
 * lost (the connection dropped after Vapi created the call). Every request
 * is recorded.
 *
 * And server messages as Vapi sends them to our endpoint (status-update,
 * transcript, end-of-call-report, with the call and the phone number object,
 * carrier credentials included), signed as Vapi's HMAC credential signs them:
 * hex HMAC-SHA256 of `${timestamp}.${body}` in x-vapi-signature, the
 * timestamp in x-vapi-timestamp. Written from Vapi's docs, not from our
 * adapter, so tests of one check the other.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from './read-body.ts';

export interface VapiStubRequest {
  at: number;
  method: string;
  path: string;
  /** The query string's parameters. */
  query: Record<string, string>;
  authorization: string | undefined;
  body: Record<string, unknown>;
  /** The status it was answered with; 0 while unanswered. */
  status: number;
}

export interface VapiStubFailure {
  status: number;
  /** Sent as the Retry-After header. */
  retryAfter?: string;
  message?: string | string[];
}

export interface VapiStub {
  /** Give this to the dialer as its base URL (no trailing slash). */
  baseUrl: string;
  apiKey: string;
  requests: VapiStubRequest[];
  /** Answers the next requests with these failures, in order. */
  failNext(...failures: VapiStubFailure[]): void;
  /** Leaves the next `count` requests unanswered (until close), as a stalled server would. */
  hangNext(count?: number): void;
  /** The next `count` valid POST /call create their call, then drop the connection unanswered. */
  acceptThenDrop(count?: number): void;
  /** The calls created so far, as GET /call/:id answers them. */
  calls: Record<string, unknown>[];
  /** POST /call requests that created a call (answered or not). */
  placed(): VapiStubRequest[];
  reset(): void;
  close(): Promise<void>;
}

// CreateCallDto's properties: anything else is refused by Vapi's validation.
const CREATE_CALL_PROPERTIES = new Set([
  'assistantVersion',
  'transport',
  'customers',
  'name',
  'schedulePlan',
  'assistantId',
  'assistant',
  'assistantOverrides',
  'squadId',
  'squad',
  'squadOverrides',
  'workflowId',
  'workflow',
  'workflowOverrides',
  'phoneNumberId',
  'phoneNumber',
  'customerId',
  'customer',
]);
// AssistantOverrides' properties (Vapi's API definition): anything else is refused as at the top level.
const ASSISTANT_OVERRIDES_PROPERTIES = new Set([
  'transcriber',
  'model',
  'voice',
  'firstMessage',
  'firstMessageInterruptionsEnabled',
  'firstMessageMode',
  'voicemailDetection',
  'clientMessages',
  'serverMessages',
  'maxDurationSeconds',
  'backgroundSound',
  'modelOutputInMessagesEnabled',
  'transportConfigurations',
  'observabilityPlan',
  'credentials',
  'hooks',
  'tools:append',
  'variableValues',
  'name',
  'voicemailMessage',
  'endCallMessage',
  'endCallPhrases',
  'compliancePlan',
  'metadata',
  'backgroundSpeechDenoisingPlan',
  'analysisPlan',
  'artifactPlan',
  'startSpeakingPlan',
  'stopSpeakingPlan',
  'monitorPlan',
  'credentialIds',
  'server',
  'keypadInputPlan',
]);
// StopSpeakingPlan's numeric fields and their documented ranges (its phrase lists are not checked).
const STOP_SPEAKING_PLAN_RANGES: Record<string, [number, number]> = {
  numWords: [0, 10],
  voiceSeconds: [0, 0.5],
  backoffSeconds: [0, 10],
};

/** What Vapi's validation says about assistantOverrides, in its words (empty: accepted). */
function assistantOverridesProblems(overrides: Record<string, unknown>): string[] {
  const problems = Object.keys(overrides)
    .filter((key) => !ASSISTANT_OVERRIDES_PROPERTIES.has(key))
    .map((key) => `assistantOverrides.property ${key} should not exist`);
  // Voices and transcribers are unions told apart by their provider.
  for (const key of ['voice', 'transcriber']) {
    const part = overrides[key] as { provider?: unknown } | undefined;
    if (part !== undefined && typeof part?.provider !== 'string') {
      problems.push(`assistantOverrides.${key}.provider must be one of the supported providers`);
    }
  }
  const plan = overrides.stopSpeakingPlan as Record<string, unknown> | undefined;
  for (const [field, value] of Object.entries(plan ?? {})) {
    if (field === 'acknowledgementPhrases' || field === 'interruptionPhrases') continue;
    const range = STOP_SPEAKING_PLAN_RANGES[field];
    const path = `assistantOverrides.stopSpeakingPlan.${field}`;
    if (!range) problems.push(`${path.replace(/\.([^.]+)$/u, '.property $1')} should not exist`);
    else if (typeof value !== 'number') problems.push(`${path} must be a number`);
    else if (value < range[0]) problems.push(`${path} must not be less than ${range[0]}`);
    else if (value > range[1]) problems.push(`${path} must not be greater than ${range[1]}`);
  }
  return problems;
}

// List Calls' query parameters (GET /call); anything else is refused by Vapi's validation.
const LIST_CALLS_QUERY = new Set([
  'id',
  'assistantId',
  'phoneNumberId',
  'limit',
  'createdAtGt',
  'createdAtLt',
  'createdAtGe',
  'createdAtLe',
  'updatedAtGt',
  'updatedAtLt',
  'updatedAtGe',
  'updatedAtLe',
]);
const E164 = /^\+[1-9]\d{1,14}$/;
const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export async function startVapiStub(options: { apiKey?: string } = {}): Promise<VapiStub> {
  const apiKey = options.apiKey ?? 'vapi-private-test-key';
  const requests: VapiStubRequest[] = [];
  const calls: Record<string, unknown>[] = [];
  const created = new Set<VapiStubRequest>();
  let failures: VapiStubFailure[] = [];
  let hangs = 0;
  let drops = 0;

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => fail(res, 500, String(error)));
  });

  function fail(res: ServerResponse, status: number, message: string | string[], headers: Record<string, string> = {}) {
    reply(res, status, { message, error: STATUS_TEXT[status] ?? 'Error', statusCode: status }, headers);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    let body: Record<string, unknown> = {};
    try {
      body = raw === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
    } catch {
      // Recorded as empty; answered 400 below.
    }
    const url = new URL(req.url ?? '/', 'http://vapi.invalid');
    const record: VapiStubRequest = {
      at: Date.now(),
      method: req.method ?? '',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      authorization: req.headers.authorization,
      body,
      status: 0,
    };
    requests.push(record);
    const answer = (status: number, message: string | string[], headers: Record<string, string> = {}) => {
      record.status = status;
      fail(res, status, message, headers);
    };

    const getOne = /^\/call\/([^/]+)$/u.exec(record.path);
    const known = record.path === '/call' ? ['GET', 'POST'].includes(record.method) : getOne !== null && record.method === 'GET';
    if (!known) return answer(404, `Cannot ${record.method} ${record.path}`);
    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      return answer(401, 'Invalid Key.');
    }
    if (hangs > 0) {
      hangs -= 1;
      return;
    }
    const failure = failures.shift();
    if (failure) {
      return answer(
        failure.status,
        failure.message ?? `stubbed ${failure.status}`,
        failure.retryAfter === undefined ? {} : { 'retry-after': failure.retryAfter },
      );
    }
    if (record.method === 'GET' && getOne) {
      const call = calls.find((item) => item.id === decodeURIComponent(getOne[1]));
      if (!call) return answer(404, 'Call not found');
      record.status = 200;
      return reply(res, 200, call);
    }
    if (record.method === 'GET') return listCalls(record, res, answer);

    if (raw !== '' && Object.keys(body).length === 0) return answer(400, 'Unexpected token in JSON');

    const problems = Object.keys(body)
      .filter((key) => !CREATE_CALL_PROPERTIES.has(key))
      .map((key) => `property ${key} should not exist`);
    if (!body.assistantId && !body.assistant && !body.squadId && !body.squad && !body.workflowId && !body.workflow) {
      problems.push('an assistant, squad or workflow (or its id) is required');
    }
    if (!body.phoneNumberId && !body.phoneNumber) problems.push('phoneNumberId or phoneNumber is required');
    const customer = body.customer as { number?: unknown } | undefined;
    if (typeof customer?.number !== 'string' || !E164.test(customer.number)) {
      problems.push('customer.number must be a valid phone number in the E.164 format');
    }
    if (body.assistantOverrides !== undefined && typeof body.assistantOverrides !== 'object') {
      problems.push('assistantOverrides must be an object');
    } else if (body.assistantOverrides) {
      problems.push(...assistantOverridesProblems(body.assistantOverrides as Record<string, unknown>));
    }
    if (problems.length > 0) return answer(400, problems);

    const now = new Date().toISOString();
    const call = {
      id: randomUUID(),
      orgId: 'a1b2c3d4-0000-4000-8000-000000000001',
      type: 'outboundPhoneCall',
      status: 'queued',
      createdAt: now,
      updatedAt: now,
      assistantId: body.assistantId,
      phoneNumberId: body.phoneNumberId,
      customer: body.customer,
      assistantOverrides: body.assistantOverrides,
      phoneCallProvider: 'twilio',
      phoneCallTransport: 'pstn',
      monitor: { listenUrl: 'wss://example.invalid/listen', controlUrl: 'https://example.invalid/control' },
    };
    calls.push(call);
    created.add(record);
    if (drops > 0) {
      // Vapi took the call; the answer never reaches the caller.
      drops -= 1;
      req.socket.destroy();
      return;
    }
    record.status = 201;
    reply(res, 201, call);
  }

  function listCalls(
    record: VapiStubRequest,
    res: ServerResponse,
    answer: (status: number, message: string | string[]) => void,
  ): void {
    const problems: string[] = [];
    for (const key of Object.keys(record.query)) {
      if (!LIST_CALLS_QUERY.has(key)) problems.push(`property ${key} should not exist`);
    }
    const limit = record.query.limit === undefined ? 100 : Number(record.query.limit);
    if (!Number.isFinite(limit) || limit < 0) problems.push('limit must be a number conforming to the specified constraints');
    else if (limit > 1000) problems.push('limit must not be greater than 1000');
    const bounds: [string, (value: number, bound: number) => boolean][] = [
      ['Gt', (value, bound) => value > bound],
      ['Lt', (value, bound) => value < bound],
      ['Ge', (value, bound) => value >= bound],
      ['Le', (value, bound) => value <= bound],
    ];
    const checks: ((call: Record<string, unknown>) => boolean)[] = [];
    for (const field of ['createdAt', 'updatedAt']) {
      for (const [suffix, test] of bounds) {
        const given = record.query[`${field}${suffix}`];
        if (given === undefined) continue;
        const bound = Date.parse(given);
        if (Number.isNaN(bound)) {
          problems.push(`${field}${suffix} must be a valid ISO 8601 date string`);
          continue;
        }
        checks.push((call) => test(Date.parse(String(call[field])), bound));
      }
    }
    for (const field of ['id', 'assistantId', 'phoneNumberId']) {
      const given = record.query[field];
      if (given !== undefined) checks.push((call) => call[field] === given);
    }
    if (problems.length > 0) return answer(400, problems);
    const listed = calls
      .filter((call) => checks.every((check) => check(call)))
      .sort((a, b) => Date.parse(String(b.createdAt)) - Date.parse(String(a.createdAt)))
      .slice(0, limit);
    record.status = 200;
    reply(res, 200, listed);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    failNext(...next) {
      failures.push(...next);
    },
    hangNext(count = 1) {
      hangs += count;
    },
    acceptThenDrop(count = 1) {
      drops += count;
    },
    calls,
    placed() {
      return requests.filter((item) => created.has(item));
    },
    reset() {
      requests.length = 0;
      calls.length = 0;
      created.clear();
      failures = [];
      hangs = 0;
      drops = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function reply(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(payload));
}

// ---- Server messages ----

export interface VapiCallOptions {
  /** Vapi's call id; default a random UUID. */
  id?: string;
  type?: 'inboundPhoneCall' | 'outboundPhoneCall' | 'webCall';
  /** The caller (inbound) or the person called (outbound). */
  customerNumber?: string;
  /** Our number at Vapi. */
  phoneNumber?: string;
  createdAt?: string;
  startedAt?: string;
  endedAt?: string;
  /** Our call id, as the dialer attaches it (assistantOverrides.metadata.call_id). */
  callId?: string;
  /** Our bot id, as an org puts it in its assistant's metadata. */
  botId?: string;
}

/** A Call object as Vapi embeds it in server messages. */
export function vapiCall(options: VapiCallOptions = {}): Record<string, unknown> {
  const type = options.type ?? 'inboundPhoneCall';
  const createdAt = options.createdAt ?? '2026-11-23T10:00:00.000Z';
  return {
    id: options.id ?? randomUUID(),
    orgId: 'a1b2c3d4-0000-4000-8000-000000000001',
    type,
    createdAt,
    updatedAt: createdAt,
    ...(options.startedAt ? { startedAt: options.startedAt } : {}),
    ...(options.endedAt ? { endedAt: options.endedAt } : {}),
    assistantId: '5b0a1f7e-8d6c-4f1e-9a2b-3c4d5e6f7a8b',
    phoneNumberId: '9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
    phoneCallProvider: 'twilio',
    phoneCallTransport: 'pstn',
    ...(type === 'webCall' ? {} : { customer: { number: options.customerNumber ?? '+4915112345678' } }),
    ...(options.callId ? { assistantOverrides: { metadata: { call_id: options.callId } } } : {}),
  };
}

export interface VapiMessageOptions {
  call?: Record<string, unknown>;
  /** Epoch milliseconds, as Vapi's `timestamp`; default now. */
  timestamp?: number;
  /** Our number at Vapi, for the phone number object; default +493012345678. */
  phoneNumber?: string;
  /** Metadata of the active assistant (where an org puts bot_id). */
  assistantMetadata?: Record<string, unknown>;
}

/**
 * `{ message: { type, ...fields, timestamp, call, phoneNumber, assistant } }`.
 * The phone number object is the one Vapi embeds, with the Twilio
 * credentials it carries, so tests see what a stored raw event would hold.
 */
export function vapiMessage(
  type: string,
  fields: Record<string, unknown>,
  options: VapiMessageOptions = {},
): { message: Record<string, unknown> } {
  const call = options.call ?? vapiCall();
  return {
    message: {
      type,
      ...fields,
      timestamp: options.timestamp ?? Date.now(),
      call,
      phoneNumber: {
        id: call.phoneNumberId,
        provider: 'twilio',
        number: options.phoneNumber ?? '+493012345678',
        twilioAccountSid: 'AC00000000000000000000000000000000',
        twilioAuthToken: 'twilio-auth-token-secret',
      },
      ...(call.customer ? { customer: call.customer } : {}),
      assistant: {
        name: 'Reception',
        ...(options.assistantMetadata ? { metadata: options.assistantMetadata } : {}),
        server: { url: 'https://example.supabase.co/functions/v1/calls/vapi', headers: { 'x-org': 'secret-ish' } },
      },
    },
  };
}

export function vapiStatusUpdate(
  status: 'scheduled' | 'queued' | 'ringing' | 'in-progress' | 'forwarding' | 'ended' | (string & {}),
  options: VapiMessageOptions & { endedReason?: string } = {},
) {
  const { endedReason, ...rest } = options;
  return vapiMessage('status-update', { status, ...(endedReason ? { endedReason } : {}) }, rest);
}

export function vapiTranscript(
  role: 'user' | 'assistant',
  transcript: string,
  options: VapiMessageOptions & { transcriptType?: 'partial' | 'final' } = {},
) {
  const { transcriptType = 'final', ...rest } = options;
  return vapiMessage('transcript', { role, transcriptType, transcript }, rest);
}

/** One entry of artifact.messages: `role` 'system', 'user', 'bot', 'tool_calls'... */
export interface VapiArtifactMessage {
  role: string;
  message?: string;
  time?: number;
  endTime?: number;
  secondsFromStart?: number;
  duration?: number;
  [key: string]: unknown;
}

export interface VapiReportOptions extends VapiMessageOptions {
  endedReason?: string;
  startedAt?: string;
  endedAt?: string;
  messages?: VapiArtifactMessage[];
  summary?: string;
  successEvaluation?: string;
  cost?: number;
  costBreakdown?: Record<string, number>;
  recordingUrl?: string;
  performanceMetrics?: Record<string, unknown>;
  durationSeconds?: number;
}

export function vapiEndOfCallReport(options: VapiReportOptions = {}) {
  const { endedReason = 'customer-ended-call', messages = [], ...rest } = options;
  const transcript = messages
    .filter((item) => item.role === 'user' || item.role === 'bot')
    .map((item) => `${item.role === 'bot' ? 'AI' : 'User'}: ${item.message ?? ''}`)
    .join('\n');
  return vapiMessage(
    'end-of-call-report',
    {
      endedReason,
      ...(rest.startedAt ? { startedAt: rest.startedAt } : {}),
      ...(rest.endedAt ? { endedAt: rest.endedAt } : {}),
      ...(rest.durationSeconds === undefined ? {} : { durationSeconds: rest.durationSeconds }),
      ...(rest.cost === undefined ? {} : { cost: rest.cost }),
      ...(rest.costBreakdown ? { costBreakdown: rest.costBreakdown } : {}),
      artifact: {
        messages,
        transcript,
        ...(rest.recordingUrl
          ? { recordingUrl: rest.recordingUrl, recording: { mono: { combinedUrl: rest.recordingUrl } } }
          : {}),
        ...(rest.performanceMetrics ? { performanceMetrics: rest.performanceMetrics } : {}),
      },
      analysis: {
        ...(rest.summary ? { summary: rest.summary } : {}),
        ...(rest.successEvaluation ? { successEvaluation: rest.successEvaluation } : {}),
      },
    },
    rest,
  );
}

/**
 * A server message as Vapi posts it with an HMAC credential (SHA256,
 * signature header x-vapi-signature, timestamp header x-vapi-timestamp,
 * payload `{timestamp}.{body}`, hex): the exact body and the headers.
 * `timestamp` is the header's value, seconds by default.
 */
export function signedVapiRequest(
  message: unknown,
  secret: string,
  options: { timestamp?: number | string } = {},
): { body: string; headers: Record<string, string> } {
  const body = typeof message === 'string' ? message : JSON.stringify(message);
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const signature = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return {
    body,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'x-vapi-signature': signature,
      'x-vapi-timestamp': timestamp,
    },
  };
}
