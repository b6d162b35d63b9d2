import { createServer, type Server, type Socket } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';
import {
  authenticationOk,
  backendKeyData,
  CANCEL_REQUEST,
  encodeMessage,
  errorResponse,
  GSSENC_REQUEST,
  namespaceStatementNames,
  negotiateProtocolVersion,
  parameterStatus,
  parseStartupParameters,
  PROTOCOL_3_0,
  readBackendOutput,
  readyForQuery,
  SSL_REQUEST,
  sqlText,
  takeMessages,
  type WireMessage,
} from './wire-protocol.ts';
import { emptyChanges, hasChanges, settingChangesIn, type SettingChanges } from './session-settings.ts';

/**
 * Serves one PGlite database over the Postgres wire protocol to any number of
 * clients. PGlite is a single backend session, so the server:
 * - lends the session to one connection at a time, from the first message of
 *   a protocol cycle until ReadyForQuery says the session is idle again, so
 *   extended-protocol messages of different clients never interleave and an
 *   open transaction belongs to its connection until it ends;
 * - gives each connection its own namespace of prepared statements and portals;
 * - saves a connection's session settings (role, search_path, custom settings)
 *   when the session passes to another connection, and restores them when it
 *   comes back, so no state leaks between connections.
 */

/** Startup parameters that describe the client rather than the session. */
const CLIENT_ONLY_PARAMETERS = new Set(['user', 'database', 'options', 'replication', 'client_encoding']);

class SessionLock {
  private owner: Connection | null = null;
  private readonly waiting: Array<{ connection: Connection; grant: (granted: boolean) => void }> = [];

  /** Resolves true once `connection` holds the session, or false if it was forgotten while waiting. */
  async acquire(connection: Connection): Promise<boolean> {
    if (this.owner === connection) return true;
    if (this.owner === null) {
      this.owner = connection;
      return true;
    }
    return new Promise<boolean>((grant) => this.waiting.push({ connection, grant }));
  }

  release(connection: Connection): void {
    if (this.owner !== connection) return;
    const next = this.waiting.shift();
    this.owner = next?.connection ?? null;
    next?.grant(true);
  }

  /** Drops a closed connection from the queue; it will never take its turn. */
  forget(connection: Connection): void {
    const index = this.waiting.findIndex((entry) => entry.connection === connection);
    if (index >= 0) this.waiting.splice(index, 1)[0].grant(false);
  }
}

type Phase = 'startup' | 'ready' | 'closed';

class Connection {
  readonly statementPrefix: string;
  phase: Phase = 'startup';
  /** Session settings this connection has made (name → value), restored on each turn. */
  readonly settings = new Map<string, string>();
  pendingChanges: SettingChanges = emptyChanges();
  preparedNames = false;
  holdsSession = false;
  /** Settles once the server has cleaned up after this connection closed. */
  readonly cleanedUp: Promise<void>;
  finishCleanup: (cleanup: Promise<void>) => void = () => undefined;
  /** The batch loop while it runs, so a close can wait for the batch in flight. */
  pumping: Promise<void> | null = null;
  private buffer: Buffer = Buffer.alloc(0);
  private readonly queue: WireMessage[] = [];

  constructor(
    readonly id: number,
    readonly socket: Socket,
    private readonly server: WireServer,
  ) {
    this.statementPrefix = `c${id}_`;
    this.cleanedUp = new Promise<void>((resolve) => {
      this.finishCleanup = (cleanup) => void cleanup.catch(() => undefined).finally(resolve);
    });
  }

  receive(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    if (this.phase === 'startup') this.readStartup();
    if (this.phase !== 'ready') return;
    const { messages, rest } = takeMessages(this.buffer);
    this.buffer = rest;
    for (const message of messages) {
      if (message.type === 'X') {
        this.socket.end();
        return;
      }
      this.queue.push(message);
    }
    this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumping || this.queue.length === 0 || this.phase !== 'ready') return;
    this.pumping = this.pump().finally(() => {
      this.pumping = null;
      this.schedulePump();
    });
  }

  private readStartup(): void {
    while (this.phase === 'startup' && this.buffer.length >= 8) {
      const length = this.buffer.readInt32BE(0);
      if (this.buffer.length < length) return;
      const code = this.buffer.readInt32BE(4);
      const body = this.buffer.subarray(8, length);
      this.buffer = this.buffer.subarray(length);
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        this.socket.write('N');
      } else if (code === CANCEL_REQUEST) {
        this.socket.end();
        this.phase = 'closed';
      } else if (code >> 16 === 3) {
        this.startSession(parseStartupParameters(body), code !== PROTOCOL_3_0);
      } else {
        this.socket.end(errorResponse('08P01', `unsupported frontend protocol ${code >> 16}.${code & 0xffff}`));
        this.phase = 'closed';
      }
    }
  }

  private startSession(parameters: Map<string, string>, negotiate: boolean): void {
    const user = parameters.get('user') ?? 'postgres';
    for (const [name, value] of parameters) {
      if (!CLIENT_ONLY_PARAMETERS.has(name) && !name.startsWith('_pq_.')) this.settings.set(name.toLowerCase(), value);
    }
    if (user !== 'postgres') this.settings.set('session_authorization', user);
    const reply: Buffer[] = [];
    if (negotiate) {
      reply.push(negotiateProtocolVersion([...parameters.keys()].filter((name) => name.startsWith('_pq_.'))));
    }
    reply.push(authenticationOk());
    const status: Array<[string, string]> = [
      ['server_version', this.server.serverVersion],
      ['server_encoding', 'UTF8'],
      ['client_encoding', 'UTF8'],
      ['DateStyle', 'ISO, MDY'],
      ['IntervalStyle', 'postgres'],
      ['TimeZone', 'UTC'],
      ['integer_datetimes', 'on'],
      ['standard_conforming_strings', 'on'],
      ['is_superuser', user === 'postgres' ? 'on' : 'off'],
      ['session_authorization', user],
      ['application_name', parameters.get('application_name') ?? ''],
    ];
    for (const [name, value] of status) reply.push(parameterStatus(name, value));
    reply.push(backendKeyData(this.id, Math.floor(Math.random() * 0x7fffffff)));
    reply.push(readyForQuery('I'));
    this.socket.write(Buffer.concat(reply));
    this.phase = 'ready';
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.phase === 'ready') {
        if (!(await this.server.takeSession(this))) break;
        const batch = this.queue.splice(0);
        const cycleComplete = ['S', 'Q'].includes(batch[batch.length - 1].type);
        const status = await this.server.run(this, batch);
        if (status === 'I' && cycleComplete && this.queue.length === 0) await this.server.giveBackSession(this);
      }
    } catch (error) {
      this.socket.destroy(error as Error);
    }
  }

  send(data: Uint8Array): void {
    if (this.phase !== 'closed' && data.length > 0) this.socket.write(data);
  }

  /** Messages for PGlite: statement names moved into this connection's namespace. */
  prepare(batch: WireMessage[]): Buffer {
    const parts: Buffer[] = [];
    for (const message of batch) {
      const sql = sqlText(message);
      if (sql !== null) settingChangesIn(sql, this.pendingChanges);
      if (message.type === 'P' && message.body[0] !== 0) this.preparedNames = true;
      const renamed = namespaceStatementNames(message, this.statementPrefix);
      parts.push(encodeMessage(renamed.type, renamed.body));
    }
    return Buffer.concat(parts);
  }
}

export interface WireServerOptions {
  db: PGlite;
  host?: string;
  port: number;
  /** SQL that brings a reset session to the database's defaults (PGlite skips `alter database ... set`). */
  sessionDefaultsSql?: string;
}

export class WireServer {
  readonly db: PGlite;
  readonly host: string;
  port: number;
  serverVersion = '18';
  private readonly sessionDefaultsSql: string;
  private readonly lock = new SessionLock();
  private readonly connections = new Set<Connection>();
  private server: Server | null = null;
  private nextId = 1;
  /** Whose settings the PGlite session holds now; null means the database defaults. */
  private sessionSettingsOf: Connection | null = null;

  constructor(options: WireServerOptions) {
    this.db = options.db;
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port;
    this.sessionDefaultsSql = options.sessionDefaultsSql ?? '';
  }

  get url(): string {
    return `postgresql://postgres:postgres@${this.host}:${this.port}/postgres`;
  }

  async start(): Promise<void> {
    const version = await this.db.query<{ server_version: string }>('show server_version');
    this.serverVersion = version.rows[0].server_version;
    const server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        reject(
          error.code === 'EADDRINUSE'
            ? new Error(
                `Port ${this.port} on ${this.host} is already in use (another \`npm start\`, or a Postgres server?). ` +
                  'Stop that process or choose another port.',
              )
            : error,
        );
      });
      server.listen(this.port, this.host, () => resolve());
    });
    const address = server.address();
    if (address && typeof address === 'object') this.port = address.port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    const closing = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    const open = [...this.connections];
    for (const connection of open) connection.socket.destroy();
    await closing;
    // Close handlers roll back open transactions; PGlite must outlive them.
    await Promise.all(open.map((connection) => connection.cleanedUp));
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    const connection = new Connection(this.nextId++, socket, this);
    this.connections.add(connection);
    socket.on('data', (chunk: Buffer) => connection.receive(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => connection.finishCleanup(this.closed(connection)));
  }

  async takeSession(connection: Connection): Promise<boolean> {
    if (connection.holdsSession) return true;
    if (!(await this.lock.acquire(connection))) return false;
    connection.holdsSession = true;
    await this.switchSettingsTo(connection);
    return true;
  }

  async giveBackSession(connection: Connection): Promise<void> {
    if (hasChanges(connection.pendingChanges)) await this.saveSettings(connection);
    connection.holdsSession = false;
    this.lock.release(connection);
  }

  /** Runs one batch of a connection's messages; returns the transaction status if a cycle ended. */
  async run(connection: Connection, batch: WireMessage[]): Promise<'I' | 'T' | 'E' | null> {
    const input = connection.prepare(batch);
    let output: Uint8Array;
    try {
      output = await this.db.execProtocolRaw(input);
    } catch (error) {
      connection.send(errorResponse('XX000', `embedded database error: ${(error as Error).message}`, 'ERROR'));
      connection.send(readyForQuery(this.db.isInTransaction() ? 'E' : 'I'));
      return this.db.isInTransaction() ? 'E' : 'I';
    }
    const { status, forClient } = readBackendOutput(output);
    connection.send(forClient);
    return status;
  }

  private async switchSettingsTo(connection: Connection): Promise<void> {
    if (this.sessionSettingsOf === connection) return;
    const previous = this.sessionSettingsOf;
    if (previous !== null && previous.settings.size > 0) {
      await this.db.exec(`reset all; reset session authorization; reset role; ${this.sessionDefaultsSql}`);
    }
    this.sessionSettingsOf = connection;
    if (connection.settings.size === 0) return;
    const ordered = [...connection.settings].sort(([a], [b]) => settingOrder(a) - settingOrder(b));
    try {
      await this.db.query(
        `select pg_catalog.set_config(e.item ->> 0, e.item ->> 1, false)
           from pg_catalog.jsonb_array_elements($1::jsonb) with ordinality as e(item, n) order by e.n`,
        [JSON.stringify(ordered)],
      );
    } catch {
      // A setting that no longer applies (a dropped role, say) is dropped, as a new session would not have it either.
      connection.settings.clear();
    }
  }

  private async saveSettings(connection: Connection): Promise<void> {
    const changes = connection.pendingChanges;
    connection.pendingChanges = emptyChanges();
    if (changes.resetAll) connection.settings.clear();
    const names = new Set(changes.names);
    if (changes.unknownNames) {
      const session = await this.db.query<{ name: string }>(
        "select lower(name) as name from pg_catalog.pg_settings where source = 'session'",
      );
      for (const row of session.rows) names.add(row.name);
      names.add('role');
    }
    if (names.size === 0) return;
    const current = await this.db.query<{ name: string; value: string | null; reset: string | null }>(
      `select name, pg_catalog.current_setting(name, true) as value,
              (select reset_val from pg_catalog.pg_settings where lower(pg_settings.name) = n.name) as reset
         from pg_catalog.unnest($1::text[]) as n(name)`,
      [[...names]],
    );
    for (const { name, value, reset } of current.rows) {
      const isDefault =
        value === null ||
        value === reset ||
        (name === 'role' && value === 'none') ||
        (name === 'session_authorization' && value === 'postgres') ||
        (reset === null && value === '' && name.includes('.'));
      if (isDefault) connection.settings.delete(name);
      else connection.settings.set(name, value);
    }
  }

  /** Ends what a vanished client left behind: its open transaction, its prepared statements, its settings. */
  private async closed(connection: Connection): Promise<void> {
    connection.phase = 'closed';
    this.connections.delete(connection);
    this.lock.forget(connection);
    await connection.pumping;
    // Its settings need no undoing here: the next connection to take the session resets them.
    if (!connection.holdsSession && !connection.preparedNames) return;
    if (!connection.holdsSession) await this.lock.acquire(connection);
    try {
      if (this.db.isInTransaction()) await this.db.exec('rollback');
      if (connection.preparedNames) {
        const statements = await this.db.query<{ name: string }>(
          'select name from pg_catalog.pg_prepared_statements where starts_with(name, $1)',
          [connection.statementPrefix],
        );
        for (const { name } of statements.rows) await this.db.exec(`deallocate "${name.replace(/"/g, '""')}"`);
      }
    } finally {
      connection.holdsSession = false;
      this.lock.release(connection);
    }
  }
}

/** `session_authorization` resets `role`, so it must be applied first. */
function settingOrder(name: string): number {
  if (name === 'session_authorization') return 0;
  if (name === 'role') return 1;
  return 2;
}
