/**
 * Ingestion figures, with the offline embeddings provider (no API key):
 * 1. throughput: pages per second for a 50-page PDF through the ingest
 *    function (gateway + Deno, Storage download, extraction, chunking,
 *    embedding, staging), steps called back to back as fast as they answer;
 * 2. upload to searchable: with the scheduler running, the time from a
 *    supabase-js upload of a 2-page PDF until its status is ready (trigger →
 *    pg_net → function), the path a user waits on; the promise is 5 s; and
 *    the same for a 500-page PDF (the limit), whose steps chain through pg_net.
 */
import { randomUUID } from 'node:crypto';
import type { SupabaseClient } from '@supabase/supabase-js';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { signUserToken } from '../local/keys.ts';
import { type Stack, startStack } from '../local/stack.ts';
import { pageMarker, textPdf } from '../../tests/support/pdfs.ts';
import { supabaseClient } from '../../tests/support/supabase-client.ts';
import { freePort } from '../local/free-port.ts';

const THROUGHPUT_PAGES = 50;
const THROUGHPUT_RUNS = 3;
const LATENCY_RUNS = 10;
/** The page limit: a file this long is ingested in resumable steps, each woken through pg_net by the last. */
const LIMIT_PAGES = 500;

interface Tenant {
  orgId: string;
  memberId: string;
  member: SupabaseClient;
}

/** The API port must be known before start: the functions reach Storage through SUPABASE_URL. */
async function createTenant(stack: Stack, sql: Sql): Promise<Tenant> {
  const orgId = randomUUID();
  const memberId = randomUUID();
  await sql.begin(async (tx) => {
    await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
             values (${memberId}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                     ${`bench-${memberId.slice(0, 8)}@rag.bench`}, '{}', '{}')`;
    await tx`insert into public.organizations (id, name, slug) values (${orgId}, 'Bench', ${`bench-${orgId.slice(0, 8)}`})`;
    await tx`insert into public.memberships (org_id, user_id, role) values (${orgId}, ${memberId}, 'member')`;
  });
  const token = await signUserToken({ id: memberId }, { expiresInSeconds: 3600 });
  return { orgId, memberId, member: supabaseClient(stack.apiUrl!, stack.keys.anonKey, token) };
}

/** Registers the file as create_upload_batch does and uploads it as the member; returns the document id. */
async function upload(sql: Sql, tenant: Tenant, name: string, bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const id = randomUUID();
  const path = `${tenant.orgId}/${id}/${name}`;
  await sql`insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, created_by)
            values (${id}, ${tenant.orgId}, ${name}, 'application/pdf', ${bytes.byteLength}, ${path}, ${tenant.memberId})`;
  const { error } = await tenant.member.storage.from('knowledge').upload(path, new Blob([bytes], { type: 'application/pdf' }));
  if (error) throw new Error(`upload failed: ${error.message}`);
  return id;
}

/** Long enough pages (about 450 tokens) that chunking and embedding do real work. */
function benchPage(page: number): string {
  const clauses = Array.from({ length: 40 }, (_, index) => `section ${page}.${index} sets the rate for service ${index}`);
  return `${pageMarker(page)} ${clauses.join('; ')}.`;
}

async function untilReady(sql: Sql, id: string, started: number, limitMs: number): Promise<void> {
  for (;;) {
    const [row] = await sql<{ status: string; failure_reason: string | null }[]>`
      select status, failure_reason from public.documents where id = ${id}`;
    if (row.status === 'ready') return;
    if (row.status === 'failed') throw new Error(`ingestion failed: ${row.failure_reason}`);
    if (performance.now() - started > limitMs) throw new Error(`not ready within ${limitMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function throughput(): Promise<void> {
  const stack = await startStack({ dbPort: 0, apiPort: await freePort(), scheduler: false, log: () => undefined });
  const sql = createSql(stack.dbUrl, { max: 2 });
  try {
    const tenant = await createTenant(stack, sql);
    const pdf = await textPdf(Array.from({ length: THROUGHPUT_PAGES }, (_, index) => benchPage(index + 1)));
    const rates: number[] = [];
    for (let run = 0; run < THROUGHPUT_RUNS; run++) {
      const id = await upload(sql, tenant, `catalogue-${run}.pdf`, pdf);
      const started = performance.now();
      let steps = 0;
      for (;;) {
        steps += 1;
        const response = await fetch(`${stack.apiUrl}/functions/v1/ingest`, {
          method: 'POST',
          headers: { authorization: `Bearer ${stack.keys.serviceRoleKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ document_id: id }),
        });
        const body = (await response.json()) as { status?: string; chunks?: number };
        if (response.status === 202) continue;
        if (body.status !== 'ready') throw new Error(`ingestion ended ${response.status} ${JSON.stringify(body)}`);
        const seconds = (performance.now() - started) / 1000;
        rates.push(THROUGHPUT_PAGES / seconds);
        console.log(
          `  run ${run + 1}: ${THROUGHPUT_PAGES} pages, ${body.chunks} chunks, ${steps} steps in ${seconds.toFixed(2)} s` +
            ` = ${(THROUGHPUT_PAGES / seconds).toFixed(1)} pages/s`,
        );
        break;
      }
    }
    console.log(`ingest throughput (50-page PDF, offline embeddings): median ${median(rates).toFixed(1)} pages/s`);
  } finally {
    await sql.end({ timeout: 1 });
    await stack.stop();
  }
}

async function uploadToSearchable(): Promise<void> {
  const stack = await startStack({ dbPort: 0, apiPort: await freePort(), scheduler: true, log: () => undefined });
  const sql = createSql(stack.dbUrl, { max: 2 });
  try {
    const tenant = await createTenant(stack, sql);
    const pdf = await textPdf([benchPage(1), benchPage(2)]);
    const times: number[] = [];
    for (let run = 0; run < LATENCY_RUNS; run++) {
      const started = performance.now();
      const id = await upload(sql, tenant, `two-pages-${run}.pdf`, pdf);
      await untilReady(sql, id, started, 30_000);
      times.push(performance.now() - started);
    }
    console.log(
      `upload → searchable (2-page PDF, scheduler + pg_net): median ${median(times).toFixed(0)} ms, ` +
        `max ${Math.max(...times).toFixed(0)} ms over ${LATENCY_RUNS} uploads (promise: 5,000 ms; pg_net's ` +
        `wake-up sends the ingest request as the upload commits)`,
    );
    const manual = await textPdf(Array.from({ length: LIMIT_PAGES }, (_, index) => benchPage(index + 1)));
    const started = performance.now();
    const id = await upload(sql, tenant, 'manual.pdf', manual);
    await untilReady(sql, id, started, 300_000);
    const seconds = (performance.now() - started) / 1000;
    const [{ chunks }] = await sql<{ chunks: number }[]>`
      select count(*)::int as chunks from public.document_chunks where org_id = ${tenant.orgId} and document_id = ${id}`;
    // The last step's answer is stored just after it marks the document ready.
    let requests = 0;
    for (let waited = 0; waited < 5_000; waited += 10) {
      const [row] = await sql<{ requests: number; answered: boolean }[]>`
        select count(*)::int as requests, bool_or(content like '%"status":"ready"%') as answered
        from net._http_response where content like ${`%${id}%`}`;
      requests = row.requests;
      if (row.answered) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    console.log(
      `upload → searchable (${LIMIT_PAGES}-page PDF, ${(manual.byteLength / 1e6).toFixed(1)} MB, the limit; ` +
        `${requests} ingest steps chained through pg_net): ${seconds.toFixed(1)} s, ${chunks} chunks, ` +
        `${(LIMIT_PAGES / seconds).toFixed(0)} pages/s`,
    );
  } finally {
    await sql.end({ timeout: 1 });
    await stack.stop();
  }
}

export async function benchIngest(): Promise<void> {
  console.log('RAG ingestion');
  await throughput();
  await uploadToSearchable();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  benchIngest().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
