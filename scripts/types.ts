import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT_DIR } from './local/paths.ts';
import { startStack } from './local/stack.ts';
import { generateTypes } from './local/supabase-cli.ts';

/**
 * Writes types/database.ts from a throwaway embedded database brought to the
 * latest migration, so the types match supabase/migrations and nothing else.
 */
const stack = await startStack({ dbPort: 0, apiPort: 0, scheduler: false, functions: false });
try {
  const started = performance.now();
  const types = await generateTypes(stack.dbUrl);
  const target = join(ROOT_DIR, 'types/database.ts');
  mkdirSync(join(ROOT_DIR, 'types'), { recursive: true });
  writeFileSync(target, types);
  console.log(`wrote types/database.ts (${Math.round(performance.now() - started)} ms)`);
} catch (error) {
  console.error((error as Error).message);
  process.exitCode = 1;
} finally {
  await stack.stop();
}
