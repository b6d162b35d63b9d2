import type { Sql } from '../../functions/_shared/db.ts';

/**
 * Writes `hits` into each bucket's current minute as private.take_rate_limit
 * counts them, so a test reaches a limit with a couple of requests instead of
 * spending a loaded machine's minute sending them all. First waits, if need
 * be, for a minute of the database's clock with `secondsNeeded` left: the
 * test's requests then fall in the same fixed window, counted exactly (none
 * weighted down as the previous window's).
 */
export async function fillRateWindow(sql: Sql, buckets: string[], hits: number, secondsNeeded = 15): Promise<void> {
  const [{ second }] = await sql<{ second: number }[]>`select extract(second from clock_timestamp())::float8 as second`;
  if (second > 60 - secondsNeeded) await new Promise((resolve) => setTimeout(resolve, (60 - second + 0.5) * 1000));
  for (const bucket of buckets) {
    await sql`
      insert into private.rate_limit_hits (bucket, window_start, hits)
      values (${bucket}, to_timestamp(floor(extract(epoch from now()) / 60) * 60), ${hits})`;
  }
}
