/** The calendar function over HTTP, as the calendar tests call it. */

export interface CalendarAnswer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

export interface CalendarCall {
  method?: string;
  token?: string;
  body?: unknown;
  idempotencyKey?: string;
}

/** `path` below /calendar; redirects are answered, not followed; an empty body reads as `{}`. */
export async function callCalendar(functionsUrl: string, path: string, options: CalendarCall = {}): Promise<CalendarAnswer> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.idempotencyKey) headers['idempotency-key'] = options.idempotencyKey;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${functionsUrl}/calendar${path}`, {
    method: options.method ?? 'GET',
    headers,
    redirect: 'manual',
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) as Record<string, unknown> : {} };
}
