import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../scripts/local/pglite.ts';
import { startStack } from '../../scripts/local/stack.ts';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'stack-data-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

describe('local data folder', () => {
  it('keeps data across a stop and a start, without loading the stand-ins or the seed again', async () => {
    const dataDir = tempDir();
    const first = await startStack({ dataDir, dbPort: 0, functions: false, scheduler: false });
    const sql = postgres(first.dbUrl, { max: 1 });
    await sql`insert into auth.users (id, email) values ('00000000-0000-4000-8000-0000000000aa', 'kept@example.test')`;
    await sql.end();
    await first.stop();

    const lines: string[] = [];
    const second = await startStack({ dataDir, dbPort: 0, functions: false, scheduler: false, log: (l) => lines.push(l) });
    const again = postgres(second.dbUrl, { max: 1 });
    const [row] = await again`select email from auth.users where id = '00000000-0000-4000-8000-0000000000aa'`;
    const [seeded] = await again`select count(*)::int as n from auth.users where email = 'owner@acme.test'`;
    await again.end();
    await second.stop();
    expect(row.email).toBe('kept@example.test');
    expect(seeded.n).toBe(1);
    expect(lines.some((line) => line.includes('stand-ins') || line.includes('seed'))).toBe(false);
  });

  it('refuses a folder that is not a Postgres data directory, saying what to do', async () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, 'notes.txt'), 'somebody else’s files');
    await expect(openDatabase({ dataDir })).rejects.toThrow(/not a Postgres data directory.*db:reset/);
  });

  it('refuses a data directory of another Postgres version', async () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, 'PG_VERSION'), '15\n');
    await expect(openDatabase({ dataDir })).rejects.toThrow(/PostgreSQL 15 database.*PostgreSQL 18/);
  });
});
