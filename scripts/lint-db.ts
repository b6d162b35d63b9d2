import { startStack, type Stack } from './local/stack.ts';
import { runAdvisors } from './local/supabase-cli.ts';

/**
 * Supabase's database advisors (security and performance lints); exits
 * non-zero on any WARN or ERROR. Checks DATABASE_URL if set, otherwise a
 * throwaway embedded database brought to the latest migration.
 */
let stack: Stack | null = null;
try {
  let dbUrl = process.env.DATABASE_URL;
  if (!dbUrl) {
    stack = await startStack({ dbPort: 0, apiPort: 0, scheduler: false, functions: false });
    dbUrl = stack.dbUrl;
  }
  const result = await runAdvisors(dbUrl);
  console.log(result.output);
  process.exitCode = result.ok ? 0 : result.code || 1;
} catch (error) {
  console.error((error as Error).message);
  process.exitCode = 1;
} finally {
  await stack?.stop();
}
