import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Runs the pgTAP files first, beside only the files that touch no shared
 * database (the unit tests, and the stack tests that start their own PGlite):
 * each pgTAP file is one transaction, and the wire server lends the one PGlite
 * session to a connection until its transaction ends (184 holds it 11 s alone,
 * 183 7.5 s), so a function test running beside it would wait past its own
 * deadlines or the functions' 10 s connect_timeout. Everything that uses the
 * shared stack runs after them.
 */
const pgTap = 'tests/stack/pgtap.test.ts';
const noSharedDb = ['tests/unit/**/*.test.ts', 'tests/stack/migrate*.test.ts', 'tests/stack/wire-server.test.ts'];

const pool = {
  pool: 'forks',
  // PGlite instances are memory-heavy and CPU-bound; two at a time suits a 2-core machine.
  maxWorkers: 2,
  testTimeout: 60_000,
  hookTimeout: 120_000,
} as const;

export default defineConfig({
  test: {
    // Only the root config's global setup: it runs once for all projects, so one stack serves the whole run.
    globalSetup: ['tests/support/global-setup.ts'],
    reporters: ['default', './tests/support/summary-reporter.ts'],
    ...pool,
    projects: [
      // Within a group, projects start in name order: "pgtap" takes the first worker, "unit" the other.
      { test: { name: 'pgtap', include: [pgTap], sequence: { groupOrder: 0 }, ...pool } },
      { test: { name: 'unit', include: noSharedDb, sequence: { groupOrder: 0 }, ...pool } },
      {
        test: {
          name: 'stack',
          include: ['tests/**/*.test.ts'],
          exclude: [...configDefaults.exclude, pgTap, ...noSharedDb],
          sequence: { groupOrder: 1 },
          ...pool,
        },
      },
    ],
  },
});
