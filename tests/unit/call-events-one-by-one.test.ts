import { describe, expect, it } from 'vitest';
import { applyOneByOne } from '../../functions/call-events/one-by-one.ts';

/**
 * After a refused batch call-events applies each request alone: one call's
 * events one after another in arrival order (two live transcript lines carry
 * no sequence number, so storing them is their order), other calls at once.
 */
interface Item {
  name: string;
  call: string | null;
}

/** An apply that finishes only when told, logging when each item starts and ends. */
function gatedApply() {
  const log: string[] = [];
  const gates = new Map<string, () => void>();
  const apply = (item: Item) =>
    new Promise<string>((resolve) => {
      log.push(`start ${item.name}`);
      gates.set(item.name, () => {
        log.push(`end ${item.name}`);
        resolve(`applied ${item.name}`);
      });
    });
  const finish = async (name: string) => {
    // Let started applies register their gates.
    await new Promise((resolve) => setTimeout(resolve, 0));
    const gate = gates.get(name);
    if (!gate) throw new Error(`${name} has not started (started: ${log.join(', ')})`);
    gate();
    await new Promise((resolve) => setTimeout(resolve, 0));
  };
  return { log, apply, finish };
}

describe('applyOneByOne', () => {
  it('applies one call\'s items in order, each after the one before ended, other calls and keyless items at once', async () => {
    const items: Item[] = [
      { name: 'a1', call: 'a' },
      { name: 'b1', call: 'b' },
      { name: 'a2', call: 'a' },
      { name: 'x', call: null },
      { name: 'a3', call: 'a' },
      { name: 'b2', call: 'b' },
      { name: 'y', call: null },
    ];
    const { log, apply, finish } = gatedApply();
    const done = applyOneByOne(items, (item) => item.call, apply);

    await new Promise((resolve) => setTimeout(resolve, 0));
    // The first of each call and every keyless item start together; nothing else.
    expect([...log].sort()).toEqual(['start a1', 'start b1', 'start x', 'start y']);

    // a2 waits for a1 however long a1 takes, even when b moves on meanwhile.
    await finish('b1');
    expect(log).toContain('start b2');
    expect(log).not.toContain('start a2');
    await finish('a1');
    expect(log.indexOf('start a2')).toBeGreaterThan(log.indexOf('end a1'));
    expect(log).not.toContain('start a3');
    await finish('a2');
    expect(log.indexOf('start a3')).toBeGreaterThan(log.indexOf('end a2'));
    for (const name of ['a3', 'b2', 'x', 'y']) await finish(name);

    expect(await done).toEqual(items.map((item) => `applied ${item.name}`));
  });

  it('gives back nothing for nothing', async () => {
    expect(await applyOneByOne([], () => 'k', async () => 1)).toEqual([]);
  });
});
