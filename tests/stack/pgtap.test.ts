import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ROOT_DIR } from '../../scripts/local/paths.ts';
import { runPgTapFile } from '../support/pgtap.ts';

const testsDir = join(ROOT_DIR, 'supabase/tests');
const files = readdirSync(testsDir).filter((file) => file.endsWith('.test.sql')).sort();
const sql = postgres(inject('dbUrl'), { max: 1, onnotice: () => undefined });
afterAll(() => sql.end());

describe('pgTAP files in supabase/tests', () => {
  it('exist', () => expect(files.length).toBeGreaterThan(0));

  for (const file of files) {
    it(file, async () => {
      const result = await runPgTapFile(sql, readFileSync(join(testsDir, file), 'utf8'));
      expect(result.failures, result.lines.join('\n')).toEqual([]);
      expect(result.planned, 'the file declares a plan').not.toBeNull();
      expect(result.passed, result.lines.join('\n')).toBe(result.planned);
    });
  }
});
