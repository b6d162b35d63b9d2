/**
 * Uploading files whose names Storage could not take as keys, and empty
 * files (20261123003300_upload_names_and_empty_files.sql), through supabase-js
 * as an org member on its own embedded stack (the Storage API mounted, the
 * ingest function called as pg_net would; no scheduler): each registered
 * document can be uploaded to its storage_path and leaves `uploading`; an
 * empty file is stored and fails its document with a reason; the local
 * Storage answers a malformed escape in a path with 400.
 */
import { randomUUID } from 'node:crypto';
import type { SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { signUserToken } from '../../scripts/local/keys.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { registerFile } from '../support/knowledge.ts';
import { textPdf } from '../support/pdfs.ts';
import { supabaseClient } from '../support/supabase-client.ts';

let stack: Stack;
let sql: Sql;
const orgId = randomUUID();
const memberId = randomUUID();
let member: SupabaseClient;
let memberToken: string;

// The functions reach Storage through SUPABASE_URL, so the API port is chosen before the stack starts.
beforeAll(async () => {
  stack = await startStack({ dbPort: 0, apiPort: await freePort(), scheduler: false });
  sql = createSql(stack.dbUrl, { max: 2 });
  await sql.begin(async (tx) => {
    await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
             values (${memberId}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                     'member@upload-names.test', '{}', '{}')`;
    await tx`insert into public.organizations (id, name, slug) values (${orgId}, 'Upload names', ${`upload-names-${orgId.slice(0, 8)}`})`;
    await tx`insert into public.memberships (org_id, user_id, role) values (${orgId}, ${memberId}, 'member')`;
  });
  memberToken = await signUserToken({ id: memberId, email: 'member@upload-names.test' }, { expiresInSeconds: 1800 });
  member = supabaseClient(stack.apiUrl!, stack.keys.anonKey, memberToken);
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

interface DocumentRow {
  name: string;
  status: string;
  failure_reason: string | null;
  size_bytes: string;
  storage_path: string;
}

async function documentRow(id: string): Promise<DocumentRow> {
  const [row] = await sql<DocumentRow[]>`
    select name, status, failure_reason, size_bytes::text, storage_path from public.documents where id = ${id}`;
  return row;
}

/** Calls the ingest function until the document is no longer in progress, as the chain of pg_net requests would. */
async function ingest(documentId: string): Promise<Record<string, unknown>> {
  for (let count = 0; count < 20; count++) {
    const response = await fetch(`${stack.apiUrl}/functions/v1/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.keys.serviceRoleKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ document_id: documentId }),
    });
    const body = await response.json();
    if (response.status !== 202) return body;
  }
  throw new Error('not done after 20 steps');
}

const text = (words: string) => new TextEncoder().encode(`${words} ${'ordinary price list terms '.repeat(20)}`);

describe('file names', () => {
  it('registers names Storage cannot take as keys, uploads each to its storage_path, and ingests it', async () => {
    const pdf = await textPdf(['Price list: delivery costs 500 a parcel.']);
    const files = [
      { name: 'price #2.txt', mime_type: 'text/plain', bytes: text('price two') },
      { name: 'what?.txt', mime_type: 'text/plain', bytes: text('what question') },
      { name: '50%.txt', mime_type: 'text/plain', bytes: text('fifty percent') },
      { name: 'Прайс.pdf', mime_type: 'application/pdf', bytes: pdf },
      { name: 'naïve café (draft).md', mime_type: 'text/markdown', bytes: text('cafe menu') },
    ];
    for (const file of files) {
      const document = await registerFile(sql, memberId, orgId, {
        name: file.name,
        mime_type: file.mime_type,
        size_bytes: file.bytes.byteLength,
      });
      const uploaded = await member.storage
        .from('knowledge')
        .upload(document.storage_path, new Blob([file.bytes], { type: file.mime_type }));
      expect(uploaded.error, file.name).toBeNull();
      expect(uploaded.data?.path, file.name).toBe(document.storage_path);

      const row = await documentRow(document.id);
      expect(row, file.name).toMatchObject({ name: file.name, status: 'queued', size_bytes: String(file.bytes.byteLength) });
      expect(row.storage_path.startsWith(`${orgId}/${document.id}/`), file.name).toBe(true);
      expect(await ingest(document.id), file.name).toMatchObject({ status: 'ready' });
    }
  });
});

describe('empty files', () => {
  it('stores a 0-byte upload and fails its document with a reason; uploading the file again ingests it', async () => {
    const document = await registerFile(sql, memberId, orgId, { name: 'empty.txt', mime_type: 'text/plain', size_bytes: 120 });
    const empty = await member.storage.from('knowledge').upload(document.storage_path, new Blob([], { type: 'text/plain' }));
    expect(empty.error).toBeNull();
    expect(await documentRow(document.id)).toMatchObject({
      status: 'failed',
      failure_reason: 'The file is empty.',
      size_bytes: '120',
    });
    const events = await sql<{ payload: Record<string, unknown> }[]>`
      select payload from public.events where org_id = ${orgId} and type = 'document.failed'
        and payload ->> 'document_id' = ${document.id}`;
    expect(events.map((event) => event.payload)).toEqual([
      { document_id: document.id, name: 'empty.txt', reason: 'The file is empty.' },
    ]);

    const bytes = text('the real file');
    const again = await member.storage
      .from('knowledge')
      .upload(document.storage_path, new Blob([bytes], { type: 'text/plain' }), { upsert: true });
    expect(again.error).toBeNull();
    expect(await documentRow(document.id)).toMatchObject({
      status: 'queued',
      failure_reason: null,
      size_bytes: String(bytes.byteLength),
    });
    expect(await ingest(document.id)).toMatchObject({ status: 'ready' });
  });
});

describe('the local Storage API and malformed paths', () => {
  it('answers a malformed percent-encoding, and a key hosted Storage refuses, with 400 InvalidKey', async () => {
    const headers = { authorization: `Bearer ${memberToken}`, apikey: stack.keys.anonKey };
    const base = `${stack.apiUrl}/storage/v1/object/knowledge/${orgId}/x`;

    const download = await fetch(`${base}/%zz.txt`, { headers });
    expect(download.status).toBe(400);
    expect(await download.json()).toEqual({
      statusCode: '400',
      error: 'InvalidKey',
      message: `Invalid key: knowledge/${orgId}/x/%zz.txt`,
    });

    const upload = await fetch(`${base}/50%.txt`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'text/plain' },
      body: 'fifty',
    });
    expect(upload.status).toBe(400);
    expect((await upload.json()).error).toBe('InvalidKey');

    // Hosted Storage takes ASCII word characters and a few marks only; so does the stand-in.
    const cyrillic = await member.storage
      .from('knowledge')
      .upload(`${orgId}/x/Прайс.pdf`, new Blob(['%PDF'], { type: 'application/pdf' }));
    expect(cyrillic.error?.message).toBe(`Invalid key: ${orgId}/x/Прайс.pdf`);
  });
});
