/**
 * The creation-window filters of the calls and documents APIs compare to the
 * millisecond, as `created_at` is shown: a client sending back a row's
 * `created_at` as `created_after` (polling for what is new) no longer gets
 * that row again, and as `created_before` leaves it out and keeps what came
 * before, though the database holds microseconds. Cursor pages, which carry
 * the microseconds, still list every row once.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { allPages, type KeyApi, keyApi } from '../support/key-api.ts';

let stack: Stack;
let sql: Sql;
let org: ChatOrg;
let bot: string;
let callsKey: string;
let documentsKey: string;

/**
 * Creation times around one millisecond (…00.123): one before it, two inside
 * it (shown alike as .123Z), two after it, newest first.
 */
const TIMES = {
  after2: '2026-04-01T10:00:00.124001Z',
  after1: '2026-04-01T10:00:00.124000Z',
  inside2: '2026-04-01T10:00:00.123999Z',
  inside1: '2026-04-01T10:00:00.123456Z',
  before: '2026-04-01T10:00:00.122999Z',
} as const;
type Slot = keyof typeof TIMES;
const NEWEST_FIRST = Object.keys(TIMES) as Slot[];

const callsApi = keyApi(() => `${stack.apiUrl}/functions/v1/calls`);
const documentsApi = keyApi(() => `${stack.apiUrl}/functions/v1/knowledge/documents`);

let calls: Record<Slot, string>;
let documents: Record<Slot, string>;

async function seedCall(createdAt: string): Promise<string> {
  const [row] = await sql<{ id: string }[]>`
    insert into public.calls (org_id, bot_id, direction, from_number, to_number, status, created_at)
    values (${org.id}, ${bot}, 'inbound', '+14155550301', '+14155550300', 'ended', ${createdAt}::text::timestamptz)
    returning id`;
  return row.id;
}

async function seedDocument(createdAt: string): Promise<string> {
  const id = randomUUID();
  await sql`
    insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, created_at)
    values (${id}, ${org.id}, 'window.txt', 'text/plain', 10, ${`${org.id}/${id}/window.txt`}, 'queued',
            ${createdAt}::text::timestamptz)`;
  return id;
}

async function seedAll(seed: (createdAt: string) => Promise<string>): Promise<Record<Slot, string>> {
  const ids = {} as Record<Slot, string>;
  for (const slot of NEWEST_FIRST) ids[slot] = await seed(TIMES[slot]);
  return ids;
}

beforeAll(async () => {
  stack = await startStack({ dbPort: 0, apiPort: await freePort(), scheduler: false });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'created-window-filters');
  bot = await createBot(sql, org.id, { slug: 'created-window-filters' });
  callsKey = (await createApiKey(sql, org, ['calls.read'])).key;
  documentsKey = (await createApiKey(sql, org, ['knowledge.read'])).key;
  await sql`update public.api_keys set rate_limit_per_minute = 1000 where org_id = ${org.id}`;
  calls = await seedAll(seedCall);
  documents = await seedAll(seedDocument);
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe.each([
  { name: 'GET /calls', api: (): KeyApi => callsApi, key: () => callsKey, ids: () => calls },
  { name: 'GET /knowledge/documents', api: (): KeyApi => documentsApi, key: () => documentsKey, ids: () => documents },
])('$name: the creation window, to the millisecond', ({ api, key, ids }) => {
  const listed = async (query: string) => (await allPages(api(), query, key())).ids;
  const idsOf = (...slots: Slot[]) => slots.map((slot) => ids()[slot]);

  it('shows created_at to the millisecond, the microseconds cut (not rounded)', async () => {
    const response = await api()('?limit=100', { key: key() });
    expect(response.status).toBe(200);
    const { data } = (await response.json()) as { data: { id: string; created_at: string }[] };
    const shown = Object.fromEntries(data.map((row) => [row.id, row.created_at]));
    expect(shown[ids().inside1]).toBe('2026-04-01T10:00:00.123Z');
    expect(shown[ids().inside2]).toBe('2026-04-01T10:00:00.123Z');
    expect(shown[ids().after1]).toBe('2026-04-01T10:00:00.124Z');
  });

  it('created_after = a row\'s created_at leaves that row (and its millisecond) out', async () => {
    expect(await listed('created_after=2026-04-01T10:00:00.123Z')).toEqual(idsOf('after2', 'after1'));
    // The same instant with an offset, and given to the microsecond: the millisecond is what counts.
    expect(await listed(`created_after=${encodeURIComponent('2026-04-01T12:00:00.123+02:00')}`)).toEqual(idsOf('after2', 'after1'));
    expect(await listed('created_after=2026-04-01T10:00:00.123456Z')).toEqual(idsOf('after2', 'after1'));
    // Polling from the newest created_at seen finds nothing new.
    expect(await listed('created_after=2026-04-01T10:00:00.124Z')).toEqual([]);
    expect(await listed('created_after=2026-04-01T10:00:00.122Z')).toEqual(idsOf('after2', 'after1', 'inside2', 'inside1'));
  });

  it('created_before = a row\'s created_at leaves that row out and keeps the rows before it', async () => {
    expect(await listed('created_before=2026-04-01T10:00:00.123Z')).toEqual(idsOf('before'));
    expect(await listed('created_before=2026-04-01T10:00:00.124Z&limit=1')).toEqual(idsOf('inside2', 'inside1', 'before'));
    expect(await listed('created_before=2026-04-01T10:00:00.122Z')).toEqual([]);
  });

  it('both bounds: the rows of the milliseconds strictly between them', async () => {
    expect(await listed('created_after=2026-04-01T10:00:00.122Z&created_before=2026-04-01T10:00:00.124Z&limit=1'))
      .toEqual(idsOf('inside2', 'inside1'));
    expect(await listed('created_after=2026-04-01T10:00:00.123Z&created_before=2026-04-01T10:00:00.124Z')).toEqual([]);
  });

  it('cursor pages keep the microseconds: one row a page lists every row once, in order', async () => {
    const { ids: paged, pages } = await allPages(api(), 'limit=1', key());
    expect(paged).toEqual(idsOf(...NEWEST_FIRST));
    expect(pages).toBe(NEWEST_FIRST.length);
  });
});
