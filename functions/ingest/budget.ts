import type { EnvReader } from '../_shared/env.ts';

/**
 * How much one invocation does. Edge functions get about 2 s of CPU per
 * request, so a step reads at most `pages` pages and stops early once the
 * pages read hold `tokens` tokens (both depend only on the file, so a
 * re-ingest cuts steps, and therefore chunks, the same way); `ms` is a
 * backstop for pages that are unusually slow to parse.
 */
export interface StepBudget {
  pages: number;
  tokens: number;
  ms: number;
}

export const DEFAULT_BUDGET: StepBudget = { pages: 25, tokens: 20_000, ms: 1500 };

export function budgetFromEnv(env: EnvReader): StepBudget {
  return {
    pages: positiveInt(env('INGEST_STEP_PAGES')) ?? DEFAULT_BUDGET.pages,
    tokens: positiveInt(env('INGEST_STEP_TOKENS')) ?? DEFAULT_BUDGET.tokens,
    ms: positiveInt(env('INGEST_STEP_MS')) ?? DEFAULT_BUDGET.ms,
  };
}

function positiveInt(raw: string | undefined): number | undefined {
  if (!raw || !/^\d{1,9}$/.test(raw.trim())) return undefined;
  const value = Number(raw.trim());
  return value > 0 ? value : undefined;
}
