import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT_DIR } from './local/paths.ts';

/** `npm run check:functions`: type-checks every function entrypoint (and the local runtime) with real Deno. */
export function functionEntrypoints(): string[] {
  const dir = join(ROOT_DIR, 'functions');
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith('_') && !entry.name.startsWith('.'))
    .map((entry) => join('functions', entry.name, 'index.ts'))
    .filter((file) => existsSync(join(ROOT_DIR, file)));
}

export function denoCheck(): number {
  const files = [...functionEntrypoints(), 'scripts/local/functions-runtime.ts'];
  console.log(`deno check ${files.join(' ')}`);
  const result = spawnSync(join(ROOT_DIR, 'node_modules/.bin/deno'), ['check', '--config', 'deno.json', ...files], {
    cwd: ROOT_DIR,
    stdio: 'inherit',
  });
  return result.status ?? 1;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exit(denoCheck());
