/**
 * What every route of one request shares: the database (the client is taken
 * on first use, so a request refused before any query needs none), the
 * settings, a logger that names the request, and one CalendarSession (tokens
 * opened and refreshed once, busy times asked once, whatever the route does
 * with them).
 */
import type { Sql } from '../db.ts';
import { CalendarSession } from './session.ts';
import { type CalendarSettings, requireKeyring } from './settings.ts';

export interface RequestContext {
  readonly sql: Sql;
  settings: CalendarSettings;
  log: (message: string, error?: unknown) => void;
  session: CalendarSession;
}

export function requestContext(getSql: () => Sql, settings: CalendarSettings, requestId: string): RequestContext {
  const log = (message: string, error?: unknown) => {
    if (error === undefined) console.warn(`[${requestId}] ${message}`);
    else console.warn(`[${requestId}] ${message}:`, error instanceof Error ? error.message : error);
  };
  let client: Sql | undefined;
  const sql = () => (client ??= getSql());
  return {
    get sql() {
      return sql();
    },
    settings,
    log,
    session: new CalendarSession({ sql, settings, keyring: () => requireKeyring(settings), log }),
  };
}
