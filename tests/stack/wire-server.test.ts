import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import type { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../scripts/local/pglite.ts';
import { WireServer } from '../../scripts/local/wire-server.ts';

/** Its own database, so these checks need nothing from the migrations. */
let db: PGlite;
let server: WireServer;

const USERS = 16;
const userId = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

beforeAll(async () => {
  db = await openDatabase();
  await db.exec(`
    create role authenticated nologin;
    create table notes (id bigint generated always as identity primary key, owner uuid not null, body text not null);
    create index on notes (owner);
    alter table notes enable row level security;
    create policy "owners read their notes" on notes for select to authenticated
      using (owner = (select (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid));
    create policy "owners write their notes" on notes for insert to authenticated
      with check (owner = (select (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid));
    grant select, insert on notes to authenticated;
    insert into notes (owner, body) select ('00000000-0000-4000-8000-' || lpad((g % ${USERS})::text, 12, '0'))::uuid, 'note ' || g
      from generate_series(1, ${USERS * 20}) g;
  `);
  server = new WireServer({ db, port: 0 });
  await server.start();
});

afterAll(async () => {
  await server.stop();
  await db.close();
});

function hasPsql(): boolean {
  try {
    execFileSync('psql', ['--version']);
    return true;
  } catch {
    return false;
  }
}

async function asUser<T>(sql: postgres.Sql, n: number, work: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
  return sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${JSON.stringify({ sub: userId(n), role: 'authenticated' })}, true)`;
    return work(tx);
  }) as Promise<T>;
}

describe('wire server', () => {
  it('serves 16 concurrent postgres.js clients (default settings) RLS-scoped transactions without cross-talk', async () => {
    const clients = Array.from({ length: USERS }, () => postgres(server.url, { onnotice: () => undefined }));
    const errors: unknown[] = [];
    const foreignRows: unknown[] = [];
    try {
      await Promise.all(
        clients.flatMap((sql, n) =>
          Array.from({ length: 15 }, async (_, k) => {
            try {
              const rows = await asUser(sql, n, async (tx) => {
                await tx`insert into notes (owner, body) values (${userId(n)}, ${`written ${k}`})`;
                return tx`select owner, body from notes where body like ${'%'}`;
              });
              for (const row of rows) if (row.owner !== userId(n)) foreignRows.push(row);
              if (!rows.some((row) => row.body === `written ${k}`)) errors.push(`user ${n} lost its own write ${k}`);
            } catch (error) {
              errors.push(error);
            }
          }),
        ),
      );
    } finally {
      await Promise.all(clients.map((sql) => sql.end()));
    }
    expect(errors).toEqual([]);
    expect(foreignRows).toEqual([]);
    const count = await db.query<{ n: number }>("select count(*)::int as n from notes where body like 'written %'");
    expect(count.rows[0].n).toBe(USERS * 15);
  });

  it('keeps each connection’s prepared statements apart even with the same names', async () => {
    const a = postgres(server.url, { max: 1 });
    const b = postgres(server.url, { max: 1 });
    try {
      for (let i = 0; i < 5; i++) {
        const [ra, rb] = await Promise.all([a`select ${i}::int + 1 as v`, b`select ${i}::text || 'b' as v`]);
        expect(ra[0].v).toBe(i + 1);
        expect(rb[0].v).toBe(`${i}b`);
      }
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('keeps session settings (role, search_path, custom settings) from leaking between connections', async () => {
    const a = postgres(server.url, { max: 1 });
    const b = postgres(server.url, { max: 1 });
    try {
      await a.unsafe('set role authenticated');
      await a.unsafe('set search_path = pg_catalog');
      await a`select set_config('app.tenant', 'acme', false)`;
      const settings = (sql: postgres.Sql) =>
        sql`select current_user as who, current_setting('search_path') as path, current_setting('app.tenant', true) as tenant`;
      const [seenByB] = await settings(b);
      expect(seenByB.who).toBe('postgres');
      expect(seenByB.path).not.toBe('pg_catalog');
      expect(seenByB.tenant ?? '').toBe('');
      const [seenByA] = await settings(a);
      expect(seenByA).toEqual({ who: 'authenticated', path: 'pg_catalog', tenant: 'acme' });
      await a.unsafe('reset role');
      const [afterReset] = await settings(a);
      expect(afterReset.who).toBe('postgres');
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('rolls back the open transaction of a client that vanishes, and lets the others go on', async () => {
    const doomed = postgres(server.url, { max: 1 });
    const other = postgres(server.url, { max: 1 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const transaction = doomed
      .begin(async (tx) => {
        await tx`insert into notes (owner, body) values (${userId(0)}, 'never committed')`;
        await held;
      })
      .catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const waiting = other`select count(*)::int as n from notes where body = 'never committed'`;
    await doomed.end({ timeout: 0 });
    release();
    await transaction;
    const [row] = await waiting;
    expect(row.n).toBe(0);
    await other.end();
  });

  // psql is a Debian package here, not an npm one: checked where it is installed (as on CI's machine).
  it.runIf(hasPsql())('answers psql', async () => {
    const { stdout } = await promisify(execFile)('psql', [server.url, '-tAc', 'select 40 + 2'], { encoding: 'utf8' });
    expect(stdout.trim()).toBe('42');
  });

  it('refuses to start on a port in use, naming it', async () => {
    const second = new WireServer({ db, port: server.port });
    await expect(second.start()).rejects.toThrow(`Port ${server.port}`);
  });
});
