import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { ROOT_DIR } from './local/paths.ts';
import { startStack } from './local/stack.ts';

/**
 * `npm run bench:stack`: time from `npm start` to a healthy /functions/v1/health
 * (fresh data folder, then the same folder again), and RLS-scoped transactions
 * per second through the wire server with 1 and 16 postgres.js clients.
 */
const DB_PORT = 55322;
const API_PORT = 55321;

async function timeToHealthy(dataDir: string): Promise<number> {
  const started = performance.now();
  const child = spawn('npx', ['tsx', 'scripts/start.ts'], {
    cwd: ROOT_DIR,
    env: { ...process.env, LOCAL_DATA_DIR: dataDir, LOCAL_DB_PORT: String(DB_PORT), LOCAL_API_PORT: String(API_PORT) },
    stdio: 'ignore',
    detached: true,
  });
  try {
    for (;;) {
      if (performance.now() - started > 120_000) throw new Error('not healthy within 120 s');
      try {
        const response = await fetch(`http://127.0.0.1:${API_PORT}/functions/v1/health`);
        if (response.ok) return performance.now() - started;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    process.kill(-child.pid!, 'SIGINT');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

async function transactionsPerSecond(url: string, clients: number, seconds: number): Promise<number> {
  const pools = Array.from({ length: clients }, () => postgres(url, { onnotice: () => undefined }));
  let done = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    pools.map(async (sql, n) => {
      const claims = JSON.stringify({ sub: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, role: 'authenticated' });
      while (performance.now() < until) {
        await sql.begin(async (tx) => {
          await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claims}, true)`;
          await tx`select auth.uid() as me`;
        });
        done += 1;
      }
    }),
  );
  await Promise.all(pools.map((sql) => sql.end()));
  return done / seconds;
}

const dataDir = mkdtempSync(join(tmpdir(), 'bench-stack-'));
try {
  const fresh = await timeToHealthy(join(dataDir, 'db'));
  const existing = await timeToHealthy(join(dataDir, 'db'));
  console.log(`npm start to healthy: fresh data folder ${(fresh / 1000).toFixed(1)} s, existing ${(existing / 1000).toFixed(1)} s`);
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}

const stack = await startStack({ dbPort: 0, functions: false, scheduler: false });
try {
  for (const clients of [1, 16]) {
    const rate = await transactionsPerSecond(stack.dbUrl, clients, 5);
    console.log(`RLS-scoped transactions through the wire server, ${clients} client(s): ${rate.toFixed(0)} tx/s`);
  }
} finally {
  await stack.stop();
}
