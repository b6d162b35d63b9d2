import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseFunctionsConfig } from '../../scripts/local/functions-server.ts';
import { ROOT_DIR } from './support.ts';

describe('parseFunctionsConfig', () => {
  it('reads the project config.toml', () => {
    const config = parseFunctionsConfig(readFileSync(join(ROOT_DIR, 'supabase/config.toml'), 'utf8'));
    expect(config.get('health')).toEqual({ verifyJwt: false, entrypoint: '../functions/health/index.ts' });
  });

  it('reads only [functions.<name>] tables, with comments, quoting and unset keys', () => {
    const config = parseFunctionsConfig(`
      [api]
      verify_jwt = false # not a function table

      [functions.chat] # streaming
      verify_jwt = true
      static_files = [
        "./a.txt",
      ]

      [functions."webhook-in"]
      verify_jwt = false  # signed by the sender instead
      entrypoint = '../functions/webhook-in/main.ts'

      [functions.plain]
      import_map = "../deno.json"

      [functions.chat.extra]
      verify_jwt = false
    `);
    expect(Object.fromEntries(config)).toEqual({
      chat: { verifyJwt: true },
      'webhook-in': { verifyJwt: false, entrypoint: '../functions/webhook-in/main.ts' },
      plain: {},
    });
  });

  it('names the line of a value it cannot read', () => {
    expect(() => parseFunctionsConfig('[functions.x]\nverify_jwt = "no"')).toThrow(
      /line 2: verify_jwt must be true or false/,
    );
    expect(() => parseFunctionsConfig('[functions.x]\nentrypoint = 42')).toThrow(
      /line 2: entrypoint must be a quoted string/,
    );
  });
});
