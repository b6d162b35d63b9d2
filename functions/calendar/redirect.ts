/**
 * Where a connect may send the browser back to (`redirect_to` of
 * oauth/start), checked before the state is signed: the callback's redirect
 * carries the connection request's id, so a target of the initiator's choosing
 * would hand it to them, and they could complete it as themselves with
 * someone else's calendar behind it. Allowed: a path (a single leading `/`),
 * resolved against the dashboard's origin (the first of
 * CALENDAR_REDIRECT_ORIGINS) and still on it once resolved (`/..//evil.com`
 * resolves to a path starting with `//`, which a browser would read as
 * another host), or an https URL on one of those origins. Anything else is
 * 422 `invalid_request`; so is any target when no origin is configured: a
 * path would then be resolved against the callback's own host, where no
 * dashboard is to complete the connect, and left unresolved it could be
 * steered off-site.
 */
import { redirectOriginsFromEnv } from '../_shared/calendar/config.ts';
import { HttpError } from '../_shared/errors.ts';
import type { CalendarSettings } from '../_shared/scheduling/settings.ts';

function allowedOrigins(settings: CalendarSettings): string[] {
  try {
    return redirectOriginsFromEnv(settings.env);
  } catch (error) {
    if (error instanceof RangeError) {
      throw new HttpError(503, 'calendar_not_configured', `Calendars are not configured on this server: ${error.message}`);
    }
    throw error;
  }
}

const isPath = (target: string) => target.startsWith('/') && !target.startsWith('//') && !target.includes('\\');

/** The absolute URL the callback will redirect to. */
export function redirectTarget(settings: CalendarSettings, redirectTo: string): string {
  const origins = allowedOrigins(settings);
  const [site] = origins;
  if (site === undefined) {
    throw new HttpError(
      422,
      'invalid_request',
      'redirect_to needs the dashboard\'s origin in CALENDAR_REDIRECT_ORIGINS on this server; without it, leave redirect_to out ' +
        'and the callback answers in JSON.',
    );
  }
  if (isPath(redirectTo)) {
    const resolved = new URL(redirectTo, site);
    if (resolved.origin === site && !resolved.pathname.startsWith('//')) return resolved.toString();
  }
  let url: URL | undefined;
  try {
    url = new URL(redirectTo);
  } catch {
    url = undefined;
  }
  if (url && url.protocol === 'https:' && url.username === '' && url.password === '' && origins.includes(url.origin)) {
    return url.toString();
  }
  const where = origins.filter((origin) => origin.startsWith('https:'));
  throw new HttpError(
    422,
    'invalid_request',
    where.length > 0
      ? `redirect_to must be a path on the dashboard starting with a single / or an https URL on ${where.join(', ')}.`
      : 'redirect_to must be a path on the dashboard starting with a single /.',
  );
}
