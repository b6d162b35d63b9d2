import process from 'node:process';

/** Reads one setting; injected so tests and the Node gateway can supply their own. */
export type EnvReader = (name: string) => string | undefined;

// `node:process` rather than `Deno.env` so the same code runs under Node (vitest) and Deno.
export const processEnv: EnvReader = (name) => process.env[name];
