import { describe, expect, it } from 'vitest';
import { cString, encodeMessage, readBackendOutput, readyForQuery } from '../../scripts/local/wire-protocol.ts';

const notification = (channel: string) =>
  encodeMessage('A', Buffer.concat([Buffer.from([0, 0, 0, 42]), cString(channel), cString('')]));
const commandComplete = (tag: string) => encodeMessage('C', cString(tag));

describe('readBackendOutput', () => {
  it('reads the last ReadyForQuery status and forwards the output untouched when it holds no notification', () => {
    const output = Buffer.concat([commandComplete('BEGIN'), readyForQuery('T'), commandComplete('SELECT 1'), readyForQuery('I')]);
    const read = readBackendOutput(output);
    expect(read.status).toBe('I');
    expect(read.forClient).toBe(output);
  });

  it('drops NotificationResponse messages (the embedded session listens for the stack, not for the client)', () => {
    const output = Buffer.concat([
      notification('pg_net_wake'),
      commandComplete('COMMIT'),
      notification('pg_net_wake'),
      notification('other'),
      readyForQuery('I'),
    ]);
    const read = readBackendOutput(output);
    expect(read.status).toBe('I');
    expect(Buffer.from(read.forClient)).toEqual(Buffer.concat([commandComplete('COMMIT'), readyForQuery('I')]));
  });

  it('reports no status for output without ReadyForQuery', () => {
    expect(readBackendOutput(commandComplete('SELECT 1')).status).toBeNull();
  });
});
