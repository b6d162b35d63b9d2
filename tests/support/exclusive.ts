import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, inject } from 'vitest';

/**
 * Makes this test file the only one of those naming `name` that runs at a
 * time in this vitest run. The files share one database (vitest runs two at a
 * time), and some call a pass that takes every org's due work (the calendar
 * function's mirroring and revocations), which a file running alongside would
 * take with its own provider stub. Call at the top of the file, before its own
 * beforeAll. The lock is a directory named for the run (the database and the
 * vitest process, whose forks run the files), so a lock a crashed run left
 * behind binds no later run; within a run a file that dies without releasing
 * it fails the files waiting for it at the hook timeout rather than letting
 * them run together.
 */
export function runExclusively(name: string): void {
  const run = `${inject('dbUrl')}:${process.ppid}:${name}`;
  const dir = join(tmpdir(), `tests-exclusive-${createHash('sha256').update(run).digest('hex').slice(0, 16)}`);
  beforeAll(async () => {
    for (;;) {
      try {
        mkdirSync(dir);
        writeFileSync(join(dir, 'pid'), String(process.pid));
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }, 120_000);
  afterAll(() => {
    if (heldBy(dir) === process.pid) rmSync(dir, { recursive: true, force: true });
  });
}

function heldBy(dir: string): number | null {
  try {
    return Number(readFileSync(join(dir, 'pid'), 'utf8'));
  } catch {
    return null;
  }
}
