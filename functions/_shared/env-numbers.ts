import type { EnvReader } from './env.ts';

/**
 * A positive whole number from the environment, else `fallback`: an unset,
 * malformed or zero value never turns a budget off, it falls back to the
 * default; `max` caps a value that would defeat its limit.
 */
export function positiveIntFromEnv(env: EnvReader, name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env(name)?.trim();
  if (!raw || !/^\d{1,9}$/.test(raw)) return fallback;
  const value = Number(raw);
  return value > 0 ? Math.min(value, max) : fallback;
}
