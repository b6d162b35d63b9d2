import { type EnvReader, processEnv } from './env.ts';

// The headers supabase-js sends (see `@supabase/supabase-js/cors`: trace propagation adds traceparent, tracestate
// and baggage, `functions.invoke` with a region x-region), and those our routes read (an API key,
// Idempotency-Key, the chat conversation and channel, a request id to reuse); browsers preflight each of them.
const ALLOW_HEADERS = 'authorization, x-client-info, apikey, content-type, traceparent, tracestate, baggage, x-region, ' +
  'x-api-key, idempotency-key, x-conversation-id, x-chat-channel, x-request-id';
// What browser code may read of an answer: the request id to quote in a bug report, the conversation a chat turn
// went to, when to retry, whether an Idempotency-Key answer was replayed, and where a created resource is.
const EXPOSE_HEADERS = 'x-request-id, x-conversation-id, retry-after, x-ratelimit-scope, idempotent-replayed, location';
const ALLOW_METHODS = 'GET, POST, PUT, PATCH, DELETE, OPTIONS';

/**
 * CORS headers for a response to `origin`. With `ALLOWED_ORIGINS` unset every
 * origin is allowed (`*`), deployed or not; a deployed project should set
 * `ALLOWED_ORIGINS=https://app.example.com,https://admin.example.com`.
 */
export function corsHeaders(origin: string | null | undefined, env: EnvReader = processEnv): Record<string, string> {
  const headers: Record<string, string> = {
    'access-control-allow-headers': ALLOW_HEADERS,
    'access-control-allow-methods': ALLOW_METHODS,
    'access-control-expose-headers': EXPOSE_HEADERS,
    'access-control-max-age': '86400',
  };
  const allowed = allowedOrigins(env);
  if (allowed === '*') {
    headers['access-control-allow-origin'] = '*';
  } else {
    // The answer depends on the Origin header, so caches must key on it.
    headers['vary'] = 'Origin';
    if (origin && allowed.includes(origin)) headers['access-control-allow-origin'] = origin;
  }
  return headers;
}

function allowedOrigins(env: EnvReader): '*' | string[] {
  const raw = env('ALLOWED_ORIGINS')?.trim();
  if (!raw) return '*';
  const list = raw.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  return list.includes('*') ? '*' : list;
}

/** The answer to a CORS preflight (`OPTIONS`) request. */
export function preflightResponse(origin: string | null | undefined, env: EnvReader = processEnv): Response {
  return new Response(null, { status: 204, headers: corsHeaders(origin, env) });
}
