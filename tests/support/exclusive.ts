import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, inject } from 'vitest';

/**
 * Makes this test file the only one of those naming `name` that runs at a
 * time against this run's database. The files share one database (vitest runs
 * two at a time), and some call a pass that takes every org's due work (the
 * calendar function's mirroring and revocations), which a file running
 * alongside would take with its own provider stub. Call at the top of the
 * file, before its own beforeAll. The lock is a directory holding the
 * holder's pid; one whose process is gone is taken over.
 */
export function runExclusively(name: string): void {
  const dir = join(tmpdir(), `tests-exclusive-${createHash('sha256').update(`${inject('dbUrl')}:${name}`).digest('hex').slice(0, 16)}`);
  let held = false;
  beforeAll(async () => {
    for (;;) {
      try {
        mkdirSync(dir);
        writeFileSync(join(dir, 'pid'), String(process.pid));
        held = true;
        return;
      } catch {
        if (!holderAlive(dir)) rmSync(dir, { recursive: true, force: true });
        else await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }, 120_000);
  afterAll(() => {
    if (held) rmSync(dir, { recursive: true, force: true });
  });
}

function holderAlive(dir: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
  } catch {
    // Created but its pid not written yet: the holder is alive.
    return true;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
