import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ROOT_DIR } from '../../scripts/local/paths.ts';

const sql = postgres(inject('dbUrl'), { max: 1, onnotice: () => undefined });
afterAll(() => sql.end());

describe('the event catalogue', () => {
  it('is documented in the README: every type in public.event_types, and no other', async () => {
    const types = (await sql<{ type: string }[]>`select type from public.event_types order by type`).map((row) => row.type);
    const readme = readFileSync(join(ROOT_DIR, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('**Events.**'), readme.indexOf('**Endpoints.**'));
    const documented = [...section.matchAll(/^\| `([a-z_.]+)` \|/gm)].map((match) => match[1]).sort();
    expect(documented).toEqual(types);
  });
});
