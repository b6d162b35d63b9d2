import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ROOT_DIR } from './paths.ts';

/**
 * Runs the project's Supabase CLI (the `supabase` dev dependency) against a
 * database URL with `--remote=<url>`, which needs no Docker: type generation,
 * the database advisors and `db push` all work against the embedded stack.
 */

const require = createRequire(import.meta.url);

/** The CLI's entry script, found through its package.json so no shell or npx is involved. */
function cliEntry(): string {
  const manifestPath = require.resolve('supabase/package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { bin: string | Record<string, string> };
  const bin = typeof manifest.bin === 'string' ? manifest.bin : manifest.bin.supabase;
  return join(dirname(manifestPath), bin);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time of the call, in milliseconds. */
  ms: number;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * A local database (the embedded stack) has no TLS. The CLI then tries TLS,
 * falls back, and prints a warning on stdout, ahead of generated types; saying
 * sslmode=disable up front avoids both. Remote URLs keep the CLI's default.
 */
function tlsEnv(dbUrl: string | undefined): Record<string, string> {
  if (!dbUrl || process.env.PGSSLMODE) return {};
  try {
    const url = new URL(dbUrl);
    if (url.searchParams.has('sslmode') || !LOOPBACK.has(url.hostname)) return {};
  } catch {
    return {};
  }
  return { PGSSLMODE: 'disable' };
}

/** Runs `supabase <args> --workdir <project root>`; never throws on a non-zero exit. */
export function runSupabase(args: string[], options: { timeoutMs?: number; dbUrl?: string } = {}): Promise<CliResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [cliEntry(), ...args, '--workdir', ROOT_DIR],
      {
        cwd: ROOT_DIR,
        maxBuffer: 64 * 1024 * 1024,
        timeout: options.timeoutMs ?? 120_000,
        // No prompts, no colours: the output is read by a program.
        env: { ...process.env, NO_COLOR: '1', CI: process.env.CI ?? '1', ...tlsEnv(options.dbUrl) },
      },
      (error, stdout, stderr) => {
        const ms = Math.round(performance.now() - started);
        if (error && typeof error.code !== 'number') {
          reject(new Error(`supabase ${args[0] ?? ''} could not run: ${error.message}\n${stderr}`));
          return;
        }
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr, ms });
      },
    );
  });
}

/**
 * TypeScript types for the database at `dbUrl`, as `supabase gen types` writes
 * them. The CLI's default schemas (public and graphql_public, the ones the API
 * exposes) are used.
 */
export async function generateTypes(dbUrl: string): Promise<string> {
  const result = await runSupabase(['gen', 'types', '--lang=typescript', `--remote=${dbUrl}`], { dbUrl });
  if (result.code !== 0 || !/^\s*export type /.test(result.stdout)) {
    throw new Error(`supabase gen types failed (exit ${result.code}):\n${result.stderr}${result.stdout}`);
  }
  // The CLI's output, byte for byte, except a leading blank line and a missing final newline.
  return `${result.stdout.trim()}\n`;
}

export interface AdvisorsResult {
  ok: boolean;
  output: string;
  code: number;
  ms: number;
}

/** Supabase's security and performance advisors; `ok` is false on any WARN or ERROR. */
export async function runAdvisors(dbUrl: string): Promise<AdvisorsResult> {
  const result = await runSupabase([
    'db',
    'advisors',
    `--remote=${dbUrl}`,
    '--type',
    'all',
    '--level',
    'warn',
    '--fail-on',
    'warn',
  ], { dbUrl });
  const output = [result.stdout.trim(), result.stderr.trim()].filter(Boolean).join('\n');
  return { ok: result.code === 0, output, code: result.code, ms: result.ms };
}

/** `supabase db push --remote=<url> --yes`: applies supabase/migrations not yet recorded there. */
export async function pushMigrations(dbUrl: string): Promise<CliResult> {
  return runSupabase(['db', 'push', `--remote=${dbUrl}`, '--yes'], { dbUrl });
}
