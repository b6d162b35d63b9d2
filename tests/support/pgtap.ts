import type { Sql } from 'postgres';

export interface TapResult {
  planned: number | null;
  passed: number;
  failures: string[];
  lines: string[];
}

/** Reads the TAP lines a pgTAP file's `select`s return, as `pg_prove` would. */
export function readTap(lines: string[]): TapResult {
  let planned: number | null = null;
  let passed = 0;
  const failures: string[] = [];
  for (const line of lines) {
    const plan = /^1\.\.(\d+)/.exec(line);
    if (plan) planned = Number(plan[1]);
    else if (/^ok \d+/.test(line)) passed += 1;
    else if (/^not ok \d+/.test(line)) failures.push(line);
  }
  return { planned, passed, failures, lines };
}

/** Runs a whole pgTAP file in one simple-protocol round trip, as `psql -f` does. */
export async function runPgTapFile(sql: Sql, text: string): Promise<TapResult> {
  let results;
  try {
    results = await sql.unsafe(text).simple();
  } catch (error) {
    // A file that errors leaves its transaction open on the shared connection (a simple-protocol batch stops
    // at the error, before its own rollback), so every later file would fail on it; end it here.
    await sql.unsafe('rollback').simple().catch(() => undefined);
    throw error;
  }
  const lines: string[] = [];
  const statements = (Array.isArray(results[0]) || results.length === 0 ? results : [results]) as unknown as Array<
    Array<Record<string, unknown>>
  >;
  for (const rows of statements) {
    for (const row of rows ?? []) {
      const values = Object.values(row);
      if (values.length === 1 && typeof values[0] === 'string') lines.push(...values[0].split('\n'));
    }
  }
  return readTap(lines);
}
