/**
 * Fair ingestion over HTTP (20261123011600_fair_ingestion.sql), against the
 * local OpenAI-wire test double: a step the provider throttles (429, 5xx) is
 * deferred without a stall and resumes at its cursor; other provider failures
 * are not deferred; an org has at most 3 runs under way, the rest wait queued
 * and the end of a run asks for the next. The scheduler is off, so the steps
 * pg_net is asked for stay in net.http_request_queue, where the test reads them.
 */
import { randomUUID } from 'node:crypto';
import type { SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { signUserToken } from '../../scripts/local/keys.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { type OpenAiStub, startOpenAiStub } from '../support/openai-stub.ts';
import { registerFile } from '../support/knowledge.ts';
import { pageMarker, textPdf } from '../support/pdfs.ts';
import { supabaseClient } from '../support/supabase-client.ts';

const API_KEY = 'sk-fairness-key';

let stub: OpenAiStub;
let stack: Stack;
let sql: Sql;

interface Org {
  id: string;
  memberId: string;
  member: SupabaseClient;
}

let flood: Org;
let small: Org;

beforeAll(async () => {
  stub = await startOpenAiStub({ apiKey: API_KEY });
  stack = await startStack({
    dbPort: 0,
    // Known in advance: the function reaches Storage through SUPABASE_URL (see ingest.test.ts).
    apiPort: await freePort(),
    scheduler: false,
    functionEnv: {
      OPENAI_API_KEY: API_KEY,
      OPENAI_BASE_URL: stub.baseURL,
      // One try: the stub's failure is the step's failure.
      OPENAI_MAX_RETRIES: '0',
      INGEST_STEP_PAGES: '1',
      INGEST_STEP_MS: '60000',
    },
  });
  sql = createSql(stack.dbUrl, { max: 2 });
  // With the scheduler off nothing sends pg_net's requests; with these secrets they are at least made.
  await sql`select vault.create_secret('https://ingest-fairness.example.test/', 'project_url')`;
  await sql`select vault.create_secret('ingest-fairness-service-key', 'service_role_key')`;
  flood = await createOrg('fairness-flood');
  small = await createOrg('fairness-small');
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

beforeEach(() => stub.reset());

async function createOrg(label: string): Promise<Org> {
  const id = randomUUID();
  const memberId = randomUUID();
  await sql.begin(async (tx) => {
    await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
             values (${memberId}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                     ${`${label}@ingest-fairness.test`}, '{}', '{}')`;
    await tx`insert into public.organizations (id, name, slug) values (${id}, ${label}, ${`${label}-${id.slice(0, 8)}`})`;
    await tx`insert into public.memberships (org_id, user_id, role) values (${id}, ${memberId}, 'member')`;
  });
  const token = await signUserToken({ id: memberId }, { expiresInSeconds: 1800 });
  return { id, memberId, member: supabaseClient(stack.apiUrl!, stack.keys.anonKey, token) };
}

/** Registered and uploaded by the org's member: the upload queues it (and asks pg_net for its first step). */
async function upload(org: Org, name: string, pages: string[]): Promise<string> {
  const bytes = await textPdf(pages);
  const { id, storage_path: path } = await registerFile(sql, org.memberId, org.id, {
    name,
    mime_type: 'application/pdf',
    size_bytes: bytes.byteLength,
  });
  const { error } = await org.member.storage.from('knowledge').upload(path, new Blob([bytes], { type: 'application/pdf' }));
  expect(error).toBeNull();
  return id;
}

interface StepAnswer {
  status: number;
  retryAfter: string | null;
  body: Record<string, unknown> & { error?: { code: string } };
}

async function step(id: string): Promise<StepAnswer> {
  const response = await fetch(`${stack.apiUrl}/functions/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.keys.serviceRoleKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ document_id: id }),
  });
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.json() };
}

interface RunState {
  status: string;
  ingest_run: string | null;
  ingest_cursor: number;
  ingest_stalls: number;
  /** Seconds from now to ingest_wake_at, or null. */
  wake_in: number | null;
}

async function runState(id: string): Promise<RunState> {
  const [row] = await sql<RunState[]>`
    select status, ingest_run, ingest_cursor, ingest_stalls,
      round(extract(epoch from ingest_wake_at - now()))::integer as wake_in
    from public.documents where id = ${id}`;
  return row;
}

/** The documents pg_net was asked to ingest since `after` (a net.http_request_queue id). */
async function requestedSince(after: number): Promise<string[]> {
  const rows = await sql<{ document_id: string }[]>`
    select convert_from(body, 'UTF8')::jsonb ->> 'document_id' as document_id
    from net.http_request_queue where id > ${after} and url like '%/functions/v1/ingest' order by id`;
  return rows.map((row) => row.document_id);
}

async function lastRequest(): Promise<number> {
  const [{ id }] = await sql<{ id: string }[]>`select coalesce(max(id), 0)::text as id from net.http_request_queue`;
  return Number(id);
}

/** As if no step had touched the document for `minutes`, and any deferral were due. */
async function leaveIdle(id: string, minutes: number): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`alter table public.documents disable trigger documents_set_updated_at`;
    await tx`update public.documents
             set updated_at = now() - make_interval(mins => ${minutes}::integer),
                 ingest_wake_at = case when ingest_wake_at is not null then now() - interval '1 second' end
             where id = ${id}`;
    await tx`alter table public.documents enable trigger documents_set_updated_at`;
  });
}

const pageText = (page: number) =>
  `${pageMarker(page)} ${Array.from({ length: 20 }, (_, index) => `fairness item ${page}-${index} costs ${index + 2} euros`).join(', ')}.`;

describe('a throttled provider defers the run', () => {
  it('answers a 429 with 503 and its Retry-After, counts no stall, and resumes the run at its cursor', async () => {
    const id = await upload(small, 'fairness-two-pages.pdf', [pageText(1), pageText(2)]);
    expect((await step(id)).status).toBe(202);
    const before = await runState(id);
    expect(before).toMatchObject({ status: 'processing', ingest_cursor: 1, wake_in: null });
    const [{ staged }] = await sql<{ staged: number }[]>`
      select count(*)::integer as staged from private.document_chunk_staging where document_id = ${id}`;
    expect(staged).toBeGreaterThan(0);

    stub.failNext({ status: 429, headers: { 'retry-after': '120' }, message: 'Rate limit reached for requests' });
    const throttled = await step(id);
    expect(throttled.status).toBe(503);
    expect(throttled.body.error?.code).toBe('ingest_unavailable');
    expect(throttled.retryAfter).toBe('120');
    const deferred = await runState(id);
    expect(deferred).toMatchObject({ status: 'processing', ingest_run: before.ingest_run, ingest_cursor: 1, ingest_stalls: 0 });
    expect(deferred.wake_in).toBeGreaterThanOrEqual(115);
    expect(deferred.wake_in).toBeLessThanOrEqual(120);
    // The staged chunks stay staged: nothing of the run is visible yet.
    const [{ kept, visible }] = await sql<{ kept: number; visible: number }[]>`
      select (select count(*)::integer from private.document_chunk_staging where document_id = ${id}) as kept,
             (select count(*)::integer from public.document_chunks where document_id = ${id}) as visible`;
    expect({ kept, visible }).toEqual({ kept: staged, visible: 0 });

    // Idle well past the sweeper's 2 minutes, the deferral due: woken, and still no stall.
    await leaveIdle(id, 10);
    const mark = await lastRequest();
    await sql`select private.retry_stuck_ingestion()`;
    expect(await requestedSince(mark)).toEqual([id]);
    expect(await runState(id)).toMatchObject({ ingest_run: before.ingest_run, ingest_cursor: 1, ingest_stalls: 0, wake_in: null });

    const done = await step(id);
    expect(done.status).toBe(200);
    expect(done.body.status).toBe('ready');
    const chunks = await sql<{ content: string }[]>`
      select content from public.document_chunks where document_id = ${id} order by chunk_index`;
    expect(chunks.some((chunk) => chunk.content.includes(pageMarker(1)))).toBe(true);
    expect(chunks.some((chunk) => chunk.content.includes(pageMarker(2)))).toBe(true);
  });

  it('defers a 5xx without Retry-After by 60 seconds', async () => {
    const id = await upload(small, 'fairness-outage.pdf', [pageText(1), pageText(2)]);
    stub.failNext({ status: 502 });
    const down = await step(id);
    expect(down.status).toBe(503);
    expect(down.retryAfter).toBe('60');
    expect(await runState(id)).toMatchObject({ status: 'processing', ingest_cursor: 0, ingest_stalls: 0 });
    expect((await runState(id)).wake_in).toBeGreaterThanOrEqual(55);
    expect((await step(id)).status).toBe(202);
    expect((await step(id)).status).toBe(200);
  });

  it('does not defer a failure that is not throttling: the sweeper counts it as a stall', async () => {
    const id = await upload(small, 'fairness-refused.pdf', [pageText(1)]);
    stub.failNext({ status: 400, message: 'Invalid request' });
    const refused = await step(id);
    expect(refused.status).toBe(503);
    expect(refused.body.error?.code).toBe('ingest_unavailable');
    expect(await runState(id)).toMatchObject({ status: 'processing', ingest_stalls: 0, wake_in: null });
    await leaveIdle(id, 3);
    await sql`select private.retry_stuck_ingestion()`;
    expect((await runState(id)).ingest_stalls).toBe(1);
    expect((await step(id)).status).toBe(200);
  });
});

describe('admission', () => {
  it('keeps an org at 3 runs under way, the rest queued, and the end of a run asks for the next', async () => {
    const ids: string[] = [];
    for (let file = 1; file <= 4; file++) ids.push(await upload(flood, `fairness-flood-${file}.pdf`, [pageText(1), pageText(2)]));
    const other = await upload(small, 'fairness-meanwhile.pdf', [pageText(1), pageText(2)]);

    for (const id of ids.slice(0, 3)) expect((await step(id)).status).toBe(202);
    const turnedAway = await step(ids[3]);
    expect(turnedAway).toMatchObject({ status: 200, body: { status: 'queued', skipped: true } });
    expect(await runState(ids[3])).toMatchObject({ status: 'queued', ingest_run: null });
    // Another org's file starts at once.
    expect((await step(other)).status).toBe(202);

    const mark = await lastRequest();
    expect((await step(ids[0])).body.status).toBe('ready');
    expect(await requestedSince(mark)).toEqual([ids[3]]);
    expect((await step(ids[3])).status).toBe(202);
    expect((await runState(ids[3])).status).toBe('processing');

    for (const id of [...ids.slice(1), other]) expect((await step(id)).body.status).toBe('ready');
  });
});
