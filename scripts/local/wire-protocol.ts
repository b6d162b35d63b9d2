/**
 * The few pieces of the Postgres frontend/backend protocol (v3) the wire
 * server has to read or write itself; everything else passes through to PGlite.
 */

export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;
export const PROTOCOL_3_0 = 196608;

export interface WireMessage {
  type: string;
  body: Buffer;
}

/** Splits typed messages (type byte + int32 length) off the front of a buffer. */
export function takeMessages(buffer: Buffer): { messages: WireMessage[]; rest: Buffer } {
  const messages: WireMessage[] = [];
  let offset = 0;
  while (buffer.length - offset >= 5) {
    const length = buffer.readInt32BE(offset + 1);
    if (buffer.length - offset < 1 + length) break;
    messages.push({
      type: String.fromCharCode(buffer[offset]),
      body: buffer.subarray(offset + 5, offset + 1 + length),
    });
    offset += 1 + length;
  }
  return { messages, rest: buffer.subarray(offset) };
}

export function encodeMessage(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

export function cString(value: string): Buffer {
  return Buffer.from(`${value}\0`, 'utf8');
}

/** Reads a NUL-terminated string at `offset`; returns it and the offset after the NUL. */
export function readCString(buffer: Buffer, offset: number): [string, number] {
  const end = buffer.indexOf(0, offset);
  return [buffer.toString('utf8', offset, end), end + 1];
}

export function parseStartupParameters(body: Buffer): Map<string, string> {
  const parameters = new Map<string, string>();
  let offset = 0;
  while (offset < body.length && body[offset] !== 0) {
    const [key, afterKey] = readCString(body, offset);
    const [value, afterValue] = readCString(body, afterKey);
    parameters.set(key, value);
    offset = afterValue;
  }
  return parameters;
}

export function authenticationOk(): Buffer {
  const body = Buffer.alloc(4);
  body.writeInt32BE(0, 0);
  return encodeMessage('R', body);
}

export function parameterStatus(name: string, value: string): Buffer {
  return encodeMessage('S', Buffer.concat([cString(name), cString(value)]));
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeInt32BE(processId, 0);
  body.writeInt32BE(secretKey, 4);
  return encodeMessage('K', body);
}

export function readyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return encodeMessage('Z', Buffer.from(status, 'latin1'));
}

/** Tells a client asking for protocol 3.x (x > 0) that 3.0 is what it gets. */
export function negotiateProtocolVersion(unsupportedOptions: string[]): Buffer {
  const head = Buffer.alloc(8);
  head.writeInt32BE(PROTOCOL_3_0, 0);
  head.writeInt32BE(unsupportedOptions.length, 4);
  return encodeMessage('v', Buffer.concat([head, ...unsupportedOptions.map(cString)]));
}

export function errorResponse(code: string, message: string, severity = 'FATAL'): Buffer {
  const field = (tag: string, value: string) => Buffer.concat([Buffer.from(tag, 'latin1'), cString(value)]);
  return encodeMessage(
    'E',
    Buffer.concat([field('S', severity), field('V', severity), field('C', code), field('M', message), Buffer.from([0])]),
  );
}

/**
 * Reads a chunk of backend output: the transaction status of its last
 * ReadyForQuery, if any, and the output to forward to the client. The one
 * embedded session LISTENs for the stack (pg_net's wake-ups), not for a client,
 * so NotificationResponse messages are dropped from what a client receives.
 */
export function readBackendOutput(output: Uint8Array): { status: 'I' | 'T' | 'E' | null; forClient: Uint8Array } {
  let status: 'I' | 'T' | 'E' | null = null;
  const view = Buffer.from(output.buffer, output.byteOffset, output.byteLength);
  const notifications: Array<[number, number]> = [];
  let offset = 0;
  while (view.length - offset >= 5) {
    const type = view[offset];
    const end = offset + 1 + view.readInt32BE(offset + 1);
    if (type === 0x5a /* Z */) status = String.fromCharCode(view[offset + 5]) as 'I' | 'T' | 'E';
    else if (type === 0x41 /* A */) notifications.push([offset, end]);
    offset = end;
  }
  if (notifications.length === 0) return { status, forClient: output };
  const kept: Buffer[] = [];
  let from = 0;
  for (const [start, end] of notifications) {
    kept.push(view.subarray(from, start));
    from = end;
  }
  kept.push(view.subarray(from));
  return { status, forClient: Buffer.concat(kept) };
}

/**
 * Prefixes the names of prepared statements and portals in Parse, Bind,
 * Describe, Close and Execute so that clients sharing the one PGlite session
 * cannot see or clobber each other's (every postgres.js client calls its
 * statements p1, p2, ...). The unnamed statement and portal stay unnamed: whole
 * protocol cycles are serialised, so nobody else can touch them mid-cycle.
 */
export function namespaceStatementNames(message: WireMessage, prefix: string): WireMessage {
  const rename = (name: string) => (name === '' ? '' : `${prefix}${name}`);
  const { type, body } = message;
  switch (type) {
    case 'P': {
      const [name, rest] = readCString(body, 0);
      if (name === '') return message;
      return { type, body: Buffer.concat([cString(rename(name)), body.subarray(rest)]) };
    }
    case 'B': {
      const [portal, afterPortal] = readCString(body, 0);
      const [statement, rest] = readCString(body, afterPortal);
      if (portal === '' && statement === '') return message;
      return {
        type,
        body: Buffer.concat([cString(rename(portal)), cString(rename(statement)), body.subarray(rest)]),
      };
    }
    case 'D':
    case 'C': {
      const [name, rest] = readCString(body, 1);
      if (name === '') return message;
      return { type, body: Buffer.concat([body.subarray(0, 1), cString(rename(name)), body.subarray(rest)]) };
    }
    case 'E': {
      const [portal, rest] = readCString(body, 0);
      if (portal === '') return message;
      return { type, body: Buffer.concat([cString(rename(portal)), body.subarray(rest)]) };
    }
    default:
      return message;
  }
}

/** The SQL text a frontend message carries (simple Query or Parse), if any. */
export function sqlText(message: WireMessage): string | null {
  if (message.type === 'Q') return readCString(message.body, 0)[0];
  if (message.type === 'P') {
    const [, afterName] = readCString(message.body, 0);
    return readCString(message.body, afterName)[0];
  }
  return null;
}
