/**
 * The billing, export and account functions over HTTP through the gateway
 * and real Deno, on a stack of their own with Storage and the scheduler off
 * (the service routes are called here with the service-role key, as pg_net
 * would): invoices rendered to PDF and linked for admins only, exports in
 * resumable steps holding one org's rows and none of another's, org deletion
 * leaving no row or file, and account deletion refused for a sole owner.
 */
import { randomUUID } from 'node:crypto';
import type { SupabaseClient } from '@supabase/supabase-js';
import { unzipSync } from 'fflate';
import { decodeJwt, SignJWT } from 'jose';
import { extractText } from 'unpdf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asServiceRole, createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { signUserToken } from '../../scripts/local/keys.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { type ChatOrg, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { supabaseClient } from '../support/supabase-client.ts';

let stack: Stack;
let sql: Sql;
let service: SupabaseClient;

beforeAll(async () => {
  stack = await startStack({
    dbPort: 0,
    // Known in advance: the functions reach Storage through SUPABASE_URL.
    apiPort: await freePort(),
    functions: true,
    scheduler: false,
    // 5 rows a step, so a table of a dozen rows takes several steps (and parts).
    functionEnv: { EXPORT_STEP_ROWS: '5' },
  });
  sql = createSql(stack.dbUrl, { max: 2 });
  service = supabaseClient(stack.apiUrl!, stack.keys.anonKey, stack.keys.serviceRoleKey);
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

async function call(
  method: string,
  path: string,
  token: string | null,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${stack.apiUrl}/functions/v1/${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) as Record<string, unknown> : {} };
}

const errorCode = (body: Record<string, unknown>) => (body.error as { code?: string } | undefined)?.code;

async function pdfText(bytes: Uint8Array): Promise<string> {
  const { text } = await extractText(new Uint8Array(bytes), { mergePages: true });
  return text;
}

describe('invoices: generated once, rendered to PDF, linked for owners and admins', () => {
  let org: ChatOrg;
  let invoiceId: string;
  const monthStart = () => {
    const now = new Date();
    return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  };
  const at = (days: number) => new Date(monthStart().getTime() + days * 86_400_000);

  beforeAll(async () => {
    org = await createChatOrg(sql, 'billing-e2e');
    // On pro since before last month; usage in it, and some in this month that must not count.
    await sql`update public.subscriptions set plan_id = 'pro', started_at = ${at(-10)}, current_period_start = ${at(-10)},
                current_period_end = private.add_months_utc(${at(-10)}::timestamptz, 1)
              where org_id = ${org.id} and status = 'active'`;
    await sql`insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at) values
      (${org.id}, 'chat', 'gpt-4o-mini', 4000000, 1000000, ${at(2)}),
      (${org.id}, 'chat', 'gpt-4o-mini', 30000, 7250, ${at(15)}),
      (${org.id}, 'embedding', 'text-embedding-3-small', 51000000, 0, ${at(3)}),
      (${org.id}, 'chat', 'gpt-4o-mini', 9000000, 0, now())`;
    await sql`insert into public.calls (org_id, direction, status, started_at, ended_at, duration_seconds) values
      (${org.id}, 'inbound', 'ended', ${at(5)}, ${new Date(at(5).getTime() + 60_001_000)}, 60001)`;
  });

  it('makes the month\'s invoice once, with totals that match the usage computed by hand', async () => {
    const period = monthStart().toISOString().slice(0, 10);
    const generate = () =>
      asServiceRole(sql, async (tx) => (await tx<{ n: number }[]>`select private.generate_invoices(${period}::date) as n`)[0].n);
    expect(await generate()).toBeGreaterThanOrEqual(1);
    expect(await generate()).toBe(0);
    const invoices = await sql<{ id: string; total_cents: string; pdf_path: string | null }[]>`
      select id, total_cents::text, pdf_path from public.invoices where org_id = ${org.id}`;
    expect(invoices).toHaveLength(1);
    invoiceId = invoices[0].id;
    // Plan 4,900. Chat 5,037,250 tokens: 37,250 over = 37.25 x 0.2 = 7.45 -> 7. Embedding 51,000,000:
    // 1,000,000 over = 1,000 x 0.002 = 2. Calls 60,001 s -> 1,001 minutes: 1 over x 5 = 5. Total 4,914.
    expect(invoices[0].total_cents).toBe('4914');
    const lines = await sql<{ metric: string | null; quantity: string; amount_cents: string }[]>`
      select metric, quantity::text, amount_cents::text from public.invoice_lines where invoice_id = ${invoiceId} order by position`;
    expect(lines).toEqual([
      { metric: null, quantity: '1.000', amount_cents: '4900' },
      { metric: 'chat_tokens', quantity: '37.250', amount_cents: '7' },
      { metric: 'embedding_tokens', quantity: '1000.000', amount_cents: '2' },
      { metric: 'call_minutes', quantity: '1.000', amount_cents: '5' },
    ]);
  });

  it('has no link before its PDF is rendered', async () => {
    const early = await call('GET', `billing/invoices/${invoiceId}/pdf`, org.tokens.admin);
    expect(early.status).toBe(409);
    expect(errorCode(early.body)).toBe('pdf_not_ready');
  });

  it('renders the PDF into the org\'s prefix of the invoices bucket, showing the org, lines and totals', async () => {
    expect((await call('POST', 'billing', org.tokens.owner, { action: 'render_pdfs' })).status).toBe(403);
    const pass = await call('POST', 'billing', stack.keys.serviceRoleKey, { action: 'render_pdfs' });
    expect(pass.status).toBe(200);
    expect(pass.body.rendered).toContain(invoiceId);
    expect(pass.body.failed).toEqual([]);
    const path = `${org.id}/invoices/${invoiceId}.pdf`;
    const [invoice] = await sql<{ pdf_path: string }[]>`select pdf_path from public.invoices where id = ${invoiceId}`;
    expect(invoice.pdf_path).toBe(path);

    const { data, error } = await service.storage.from('invoices').download(path);
    expect(error).toBeNull();
    const text = await pdfText(new Uint8Array(await data!.arrayBuffer()));
    expect(text).toContain('billing-e2e');
    expect(text).toContain(invoiceId);
    expect(text).toContain('USD 49.14');
    expect(text).toContain('USD 49.00');
    expect(text).toContain('USD 0.002');
    expect(text).toMatch(/37\.25 1k tokens/);
    // A second pass finds nothing to do.
    expect((await call('POST', 'billing', stack.keys.serviceRoleKey)).body).toMatchObject({ rendered: [], more: false });
  });

  it('gives an admin a short-lived link that downloads the PDF; members and viewers get nothing', async () => {
    for (const role of ['member', 'viewer'] as const) {
      const refused = await call('GET', `billing/invoices/${invoiceId}/pdf`, org.tokens[role]);
      expect(refused.status).toBe(404);
    }
    expect((await call('GET', `billing/invoices/${invoiceId}/pdf`, null)).status).toBe(401);
    expect((await call('GET', `billing/invoices/not-a-uuid/pdf`, org.tokens.admin)).status).toBe(404);

    const link = await call('GET', `billing/invoices/${invoiceId}/pdf`, org.tokens.admin);
    expect(link.status).toBe(200);
    const url = link.body.url as string;
    const expiresAt = Date.parse(link.body.expires_at as string);
    expect(expiresAt - Date.now()).toBeGreaterThan(50_000);
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(300_000);
    const token = new URL(url).searchParams.get('token')!;
    const claims = decodeJwt(token);
    expect(Math.abs(claims.exp! * 1000 - expiresAt)).toBeLessThan(3000);

    const downloaded = await fetch(url);
    expect(downloaded.status).toBe(200);
    expect(await pdfText(new Uint8Array(await downloaded.arrayBuffer()))).toContain('USD 49.14');

    const tampered = url.replace(`token=${token}`, `token=${token.slice(0, -3)}${token.endsWith('abc') ? 'xyz' : 'abc'}`);
    expect((await fetch(tampered)).status).toBe(400);
    // The same link once its time is up (re-signed with a past exp: the stand-in checks exp as Storage does).
    const past = Math.floor(Date.now() / 1000) - 5;
    const expired = await new SignJWT({ url: claims.url as string }).setProtectedHeader({ alg: 'HS256' })
      .setIssuedAt(past - 120).setExpirationTime(past).sign(new TextEncoder().encode(stack.keys.jwtSecret));
    const late = await fetch(url.replace(`token=${token}`, `token=${expired}`));
    expect(late.status).toBe(400);
    expect(await late.json()).toMatchObject({ message: 'jwt expired' });
  });
});

describe('data export: resumable steps, one org\'s rows only, expiring links', () => {
  let org: ChatOrg;
  let other: ChatOrg;
  let bot: string;
  let otherBot: string;
  let exportId: string;
  let documentId: string;
  let knowledgePath: string;
  // A platform admin (app_metadata.platform_admin) who is no member of the org: exports are owners' only.
  const platformAdminId = randomUUID();
  const platformAdminClaims = {
    role: 'authenticated', aud: 'authenticated', sub: platformAdminId, exp: Math.floor(Date.now() / 1000) + 3600,
    app_metadata: { platform_admin: true },
  };
  let platformAdminToken: string;

  beforeAll(async () => {
    platformAdminToken = await signUserToken(
      { id: platformAdminId, email: 'ops@export-e2e.test', appMetadata: { platform_admin: true } },
      { expiresInSeconds: 3600 },
    );
    org = await createChatOrg(sql, 'export-e2e');
    other = await createChatOrg(sql, 'export-e2e-other');
    bot = await createBot(sql, org.id, { slug: 'exported' });
    await sql`update public.bots set name = ${'Shop, "the" bot'} where id = ${bot}`;
    otherBot = await createBot(sql, other.id, { slug: 'not-exported' });
    for (const [orgId, botId, count] of [[org.id, bot, 12], [other.id, otherBot, 3]] as const) {
      const [conversation] = await sql<{ id: string }[]>`
        insert into public.conversations (org_id, bot_id, channel) values (${orgId}, ${botId}, 'web') returning id`;
      for (let index = 0; index < count; index++) {
        await sql`insert into public.messages (org_id, conversation_id, role, content)
                  values (${orgId}, ${conversation.id}, ${index % 2 === 0 ? 'user' : 'assistant'}, ${`message ${index} of ${orgId}\nline two`})`;
      }
    }
    // Tables the first list left out (team invitations, upload batches, call events) and a knowledge original.
    for (const target of [org, other]) {
      await sql`insert into public.invitations (org_id, email, role, expires_at)
                values (${target.id}, ${`invitee-${target.id}@export.test`}, 'member', now() + interval '1 day')`;
      await sql`insert into public.upload_batches (org_id) values (${target.id})`;
      await sql`insert into public.call_events (org_id, provider, event_id, event_type, occurred_at)
                values (${target.id}, 'vapi', ${`evt-${target.id}`}, 'call.status', now())`;
      const id = randomUUID();
      const path = `${target.id}/${id}/notes.txt`;
      await sql`insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path)
                values (${id}, ${target.id}, 'notes.txt', 'text/plain', 5, ${path})`;
      expect((await service.storage.from('knowledge').upload(path, new Blob(['notes'], { type: 'text/plain' }))).error).toBeNull();
      if (target === org) [documentId, knowledgePath] = [id, path];
    }
  });

  it('is refused to members and queued for an owner, once at a time', async () => {
    const byMember = await call('POST', 'export', org.tokens.member, { org_id: org.id });
    expect(byMember.status).toBe(403);
    const byAdmin = await call('POST', 'export', org.tokens.admin, { org_id: org.id });
    expect(byAdmin.status).toBe(403);
    expect((await call('POST', 'export', org.tokens.owner, { org: org.id })).status).toBe(422);

    const created = await call('POST', 'export', org.tokens.owner, { org_id: org.id });
    expect(created.status).toBe(202);
    const record = created.body.export as { id: string; status: string; storage_prefix: string };
    expect(record).toMatchObject({ status: 'queued', storage_prefix: `${org.id}/exports/${record.id}/` });
    exportId = record.id;
    const again = await call('POST', 'export', org.tokens.owner, { org_id: org.id });
    expect(again.status).toBe(409);
    expect(errorCode(again.body)).toBe('export_in_progress');
    expect((await call('GET', `export/${exportId}`, org.tokens.owner)).body).toMatchObject({ files: [] });
  });

  it('runs in several steps within its row budget, then packages and finishes', async () => {
    expect((await call('POST', 'export/step', org.tokens.owner, { export_id: exportId })).status).toBe(403);
    // pg_net posts to the function's root; /export/step is the same step by name.
    const first = await call('POST', 'export', stack.keys.serviceRoleKey, { export_id: exportId });
    expect(first.status).toBe(202);
    const statuses: string[] = [String(first.body.status)];
    const progress: number[] = [Number(first.body.progress)];
    for (let step = 0; step < 300 && statuses.at(-1) !== 'ready'; step++) {
      const next = await call('POST', 'export/step', stack.keys.serviceRoleKey, { export_id: exportId });
      expect([200, 202]).toContain(next.status);
      statuses.push(String(next.body.status));
      if (next.body.progress !== undefined) progress.push(Number(next.body.progress));
    }
    expect(statuses.at(-1)).toBe('ready');
    expect(statuses.filter((status) => status === 'running').length).toBeGreaterThanOrEqual(3);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const [row] = await sql<{ status: string; steps: number; progress_percent: number }[]>`
      select status::text, steps, progress_percent from public.data_exports where id = ${exportId}`;
    expect(row).toMatchObject({ status: 'ready', progress_percent: 100 });
    expect(row.steps).toBeGreaterThanOrEqual(3);
    // A late duplicate wake-up changes nothing.
    expect((await call('POST', 'export/step', stack.keys.serviceRoleKey, { export_id: exportId })).body)
      .toMatchObject({ status: 'skipped' });
    const events = await sql<{ payload: { download_url: string; link_expires_at: string } }[]>`
      select payload from public.events where org_id = ${org.id} and type = 'export.ready'`;
    expect(events).toHaveLength(1);
    // The event carries a signed link to the zip that works for a day, and only owners read the event.
    const { download_url: link, link_expires_at: linkExpires } = events[0].payload;
    expect(new URL(link).pathname).toMatch(/\/export\.zip$/);
    expect(Date.parse(linkExpires) - Date.now()).toBeGreaterThan(23 * 3_600_000);
    const zipped = await fetch(link);
    expect(zipped.status).toBe(200);
    expect(new Uint8Array(await zipped.arrayBuffer()).slice(0, 2)).toEqual(new Uint8Array([0x50, 0x4b]));
    const visible = (claims: typeof org.claims.owner) =>
      withUserScope(sql, claims, async (tx) => {
        const [row] = await tx<{ count: number }[]>`
          select count(*)::int from public.events where org_id = ${org.id} and type = 'export.ready'`;
        return row.count;
      });
    expect(await visible(org.claims.owner)).toBe(1);
    expect(await visible(org.claims.admin)).toBe(0);
    expect(await visible(platformAdminClaims)).toBe(0);
  });

  it('holds the org\'s rows and none of another org\'s, as JSON, CSV and a zip, behind expiring links', async () => {
    expect((await call('GET', `export/${exportId}`, org.tokens.admin)).status).toBe(404);
    // No links signed for a platform admin either (RLS on data_exports, 20261123006700).
    const byPlatformAdmin = await call('GET', `export/${exportId}`, platformAdminToken);
    expect(byPlatformAdmin.status).toBe(404);
    expect(byPlatformAdmin.body).not.toHaveProperty('files');
    expect((await call('GET', `export/${exportId}`, other.tokens.owner)).status).toBe(404);
    const view = await call('GET', `export/${exportId}`, org.tokens.owner);
    expect(view.status).toBe(200);
    const files = view.body.files as Array<{ name: string; url: string }>;
    const names = files.map((file) => file.name);
    expect(names).toEqual(expect.arrayContaining(['manifest.json', 'export.zip', 'bots.json', 'bots.csv', 'organizations.json']));
    // 12 messages at 5 rows a step: in parts.
    expect(names).toEqual(expect.arrayContaining(['messages.part-0001.json', 'messages.part-0002.json', 'messages.part-0003.json']));
    const linksExpire = Date.parse(view.body.links_expire_at as string);
    expect(linksExpire - Date.now()).toBeGreaterThan(3_500_000);
    expect(linksExpire - Date.now()).toBeLessThanOrEqual(3_600_000);
    for (const file of files) {
      expect(decodeJwt(new URL(file.url).searchParams.get('token')!).exp! * 1000).toBeLessThanOrEqual(linksExpire + 1000);
    }
    const fetchText = async (name: string) => {
      const response = await fetch(files.find((file) => file.name === name)!.url);
      expect(response.status).toBe(200);
      return await response.text();
    };

    const manifest = JSON.parse(await fetchText('manifest.json')) as {
      tables: Array<{ name: string; rows: number; files: string[] }>;
      created_at: string;
    };
    const table = (name: string) => manifest.tables.find((entry) => entry.name === name)!;
    expect(table('bots')).toMatchObject({ rows: 1, files: ['bots.json', 'bots.csv'] });
    expect(table('messages').rows).toBe(12);
    expect(table('memberships').rows).toBe(4);
    expect(Date.parse(manifest.created_at)).toBeGreaterThan(0);
    // Every org table (document chunks aside, derived from the documents), and the org's files listed.
    expect(manifest.tables.map((entry) => entry.name)).toEqual(expect.arrayContaining([
      'invitations', 'upload_batches', 'call_events', 'call_providers', 'webhook_deliveries', 'webhook_attempts',
      'data_exports', 'storage_objects',
    ]));
    expect(manifest.tables.every((entry) => entry.files.length >= 2)).toBe(true);
    expect(names.some((name) => name.startsWith('document_chunks'))).toBe(false);
    expect(table('invitations').rows).toBe(1);
    expect(table('upload_batches').rows).toBe(1);
    expect(table('call_events').rows).toBe(1);
    // A table is one file, or parts when it did not end in the step it started in.
    const tableRows = async (name: string) => {
      const rows: Array<Record<string, unknown>> = [];
      for (const file of table(name).files.filter((entry) => entry.endsWith('.json'))) {
        rows.push(...JSON.parse(await fetchText(file)) as typeof rows);
      }
      return rows;
    };
    expect((await tableRows('invitations')).map((entry) => entry.email)).toEqual([`invitee-${org.id}@export.test`]);
    expect((await tableRows('call_events')).map((entry) => entry.event_id)).toEqual([`evt-${org.id}`]);
    expect(await tableRows('storage_objects')).toEqual([expect.objectContaining({
      bucket_id: 'knowledge', name: knowledgePath, size_bytes: 5, mime_type: 'text/plain', document_id: documentId, org_id: org.id,
    })]);
    const exportsRows = await tableRows('data_exports');
    expect(exportsRows.map((entry) => entry.id)).toEqual([exportId]);
    expect(exportsRows[0]).not.toHaveProperty('cursor');

    const bots = JSON.parse(await fetchText('bots.json')) as Array<{ id: string; org_id: string }>;
    expect(bots.map((entry) => entry.id)).toEqual([bot]);
    const csv = await fetchText('bots.csv');
    expect(csv.split('\r\n')[0].split(',')).toEqual(expect.arrayContaining(['id', 'org_id', 'name']));
    expect(csv).toContain('"Shop, ""the"" bot"');

    const messages: Array<{ org_id: string; content: string }> = [];
    for (const name of names.filter((entry) => entry.startsWith('messages.part-') && entry.endsWith('.json'))) {
      messages.push(...JSON.parse(await fetchText(name)) as typeof messages);
    }
    expect(messages).toHaveLength(12);
    expect(new Set(messages.map((message) => message.org_id))).toEqual(new Set([org.id]));
    expect(await fetchText('messages.part-0001.csv')).toContain(`"message 0 of ${org.id}\nline two"`);

    // Through Storage as well, every file: nothing of the other org anywhere.
    const prefix = `${org.id}/exports/${exportId}`;
    for (const name of names.filter((entry) => entry !== 'export.zip')) {
      const { data, error } = await service.storage.from('exports').download(`${prefix}/${name}`);
      expect(error).toBeNull();
      const text = await data!.text();
      expect(text).not.toContain(other.id);
      expect(text).not.toContain(otherBot);
    }
    const zip = unzipSync(new Uint8Array(await (await fetch(files.find((file) => file.name === 'export.zip')!.url)).arrayBuffer()));
    expect(Object.keys(zip)).toEqual(expect.arrayContaining(['manifest.json', 'bots.json', 'messages.part-0003.csv']));
    expect(JSON.parse(new TextDecoder().decode(zip['bots.json']))).toHaveLength(1);

    // The owner cannot reach the files without a link (the bucket is written by the service role only).
    const owner = supabaseClient(stack.apiUrl!, stack.keys.anonKey, org.tokens.owner);
    expect((await owner.storage.from('exports').upload(`${prefix}/extra.txt`, new Blob(['x']))).error).not.toBeNull();
  });

  it('removes an expired export\'s files through Storage and marks it, once; only the service role runs it', async () => {
    const [{ jobs }] = await sql<{ jobs: number }[]>`select count(*)::int as jobs from cron.job where jobname = 'expire-exports'`;
    expect(jobs).toBe(1);
    expect((await call('POST', 'export/expire', org.tokens.owner, {})).status).toBe(403);
    const badBody = await call('POST', 'export/expire', stack.keys.serviceRoleKey, { max_exports: 1 });
    expect(badBody.status).toBe(422);
    expect(errorCode(badBody.body)).toBe('invalid_request');
    // Not expired yet: nothing to do.
    expect((await call('POST', 'export/expire', stack.keys.serviceRoleKey, {})).body).toEqual({ exports: [], pending: 0 });

    const prefix = `${org.id}/exports/${exportId}/`;
    const countFiles = async () => {
      const [{ files }] = await sql<{ files: number }[]>`
        select count(*)::int as files from storage.objects where bucket_id = 'exports' and starts_with(name, ${prefix})`;
      return files;
    };
    const files = await countFiles();
    expect(files).toBeGreaterThan(10);
    const [event] = await sql<{ payload: { download_url: string } }[]>`
      select payload from public.events where org_id = ${org.id} and type = 'export.ready'`;
    expect((await fetch(event.payload.download_url)).status).toBe(200);

    // Seven days on (the clock moved by hand): no more links, then the files go.
    await sql`update public.data_exports set finished_at = finished_at - interval '7 days', expires_at = expires_at - interval '7 days'
              where id = ${exportId}`;
    expect((await call('GET', `export/${exportId}`, org.tokens.owner)).body).toMatchObject({ files: [], links_expire_at: null });
    // What the hourly job checks before waking the function (this stack has no scheduler to wake it).
    const due = async () => {
      const rows = await sql<{ export_id: string }[]>`select export_id from private.exports_due_for_expiry(100)`;
      return rows.map((entry) => entry.export_id);
    };
    expect(await due()).toEqual([exportId]);
    const pass = await call('POST', 'export/expire', stack.keys.serviceRoleKey, {});
    expect(pass.status).toBe(200);
    expect(pass.body).toEqual({ exports: [{ export_id: exportId, files_removed: files, files_remaining: 0 }], pending: 0 });
    expect(await countFiles()).toBe(0);
    const [row] = await sql<{ status: string; expired: boolean }[]>`
      select status::text, expired_at is not null as expired from public.data_exports where id = ${exportId}`;
    expect(row).toEqual({ status: 'ready', expired: true });
    const view = await call('GET', `export/${exportId}`, org.tokens.owner);
    expect(view.body).toMatchObject({ files: [], export: { id: exportId, status: 'ready' } });
    expect((view.body.export as { expired_at: string | null }).expired_at).not.toBeNull();
    // The event's link, still within its day, now finds nothing.
    const late = await fetch(event.payload.download_url);
    expect(late.status).toBe(400);
    expect(await late.json()).toMatchObject({ message: 'Object not found' });
    // Idempotent: nothing is due any more, so the scheduled job has nothing to wake the function for.
    expect(await due()).toEqual([]);
    expect((await call('POST', 'export/expire', stack.keys.serviceRoleKey)).body).toEqual({ exports: [], pending: 0 });
    // The other org's files are untouched.
    const [{ others }] = await sql<{ others: number }[]>`
      select count(*)::int as others from storage.objects where starts_with(name, ${`${other.id}/`})`;
    expect(others).toBe(1);
  });
});

describe('deleting an organization', () => {
  let doomed: ChatOrg;
  let survivor: ChatOrg;
  let survivorFile: string;

  beforeAll(async () => {
    doomed = await createChatOrg(sql, 'doomed-e2e');
    survivor = await createChatOrg(sql, 'survivor-e2e');
    for (const org of [doomed, survivor]) {
      const bot = await createBot(sql, org.id, { slug: 'bot' });
      const [conversation] = await sql<{ id: string }[]>`
        insert into public.conversations (org_id, bot_id, channel) values (${org.id}, ${bot}, 'web') returning id`;
      await sql`insert into public.messages (org_id, conversation_id, role, content) values (${org.id}, ${conversation.id}, 'user', 'hi')`;
      const documentId = randomUUID();
      const path = `${org.id}/${documentId}/notes.txt`;
      await sql`insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path)
                values (${documentId}, ${org.id}, 'notes.txt', 'text/plain', 5, ${path})`;
      expect((await service.storage.from('knowledge').upload(path, new Blob(['notes'], { type: 'text/plain' }))).error).toBeNull();
      const [call] = await sql<{ id: string }[]>`
        insert into public.calls (org_id, direction, status, started_at) values (${org.id}, 'inbound', 'ended', now()) returning id`;
      const recording = `${org.id}/calls/${call.id}/recording.wav`;
      expect((await service.storage.from('recordings').upload(recording, new Blob(['RIFF'], { type: 'audio/wav' }))).error)
        .toBeNull();
      if (org === survivor) survivorFile = recording;
    }
  });

  const countRows = async (orgId: string) => {
    const [counts] = await sql<Record<string, number>[]>`
      select (select count(*)::int from public.organizations where id = ${orgId}) as organizations,
             (select count(*)::int from public.memberships where org_id = ${orgId}) as memberships,
             (select count(*)::int from public.bots where org_id = ${orgId}) as bots,
             (select count(*)::int from public.conversations where org_id = ${orgId}) as conversations,
             (select count(*)::int from public.messages where org_id = ${orgId}) as messages,
             (select count(*)::int from public.documents where org_id = ${orgId}) as documents,
             (select count(*)::int from public.calls where org_id = ${orgId}) as calls,
             (select count(*)::int from public.org_settings where org_id = ${orgId}) as org_settings,
             (select count(*)::int from public.subscriptions where org_id = ${orgId}) as subscriptions,
             (select count(*)::int from storage.objects where name like ${`${orgId}/%`}) as files`;
    return counts;
  };

  it('refuses a wrong name and anyone but an owner', async () => {
    const wrong = await call('DELETE', `account/organizations/${doomed.id}`, doomed.tokens.owner, { confirm_name: 'doomed' });
    expect(wrong.status).toBe(422);
    expect(errorCode(wrong.body)).toBe('name_mismatch');
    const byAdmin = await call('DELETE', `account/organizations/${doomed.id}`, doomed.tokens.admin, { confirm_name: 'doomed-e2e' });
    expect(byAdmin.status).toBe(403);
    const byMember = await call('DELETE', `account/organizations/${doomed.id}`, doomed.tokens.member, { confirm_name: 'doomed-e2e' });
    expect(byMember.status).toBe(403);
    expect((await call('DELETE', `account/organizations/${doomed.id}`, doomed.tokens.owner, {})).status).toBe(422);
    expect((await countRows(doomed.id)).organizations).toBe(1);
  });

  it('leaves no row and no file of the org, and the other org intact', async () => {
    const before = await countRows(survivor.id);
    const deleted = await call('DELETE', `account/organizations/${doomed.id}`, doomed.tokens.owner, { confirm_name: 'doomed-e2e' });
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ deleted: true, files_removed: 2, files_remaining: 0 });
    expect(Object.values(await countRows(doomed.id)).every((count) => count === 0)).toBe(true);
    const [record] = await sql<{ storage_removed: boolean; deleted_by: string }[]>`
      select storage_removed_at is not null as storage_removed, deleted_by from private.deleted_organizations where org_id = ${doomed.id}`;
    expect(record).toEqual({ storage_removed: true, deleted_by: doomed.users.owner });

    expect(await countRows(survivor.id)).toEqual(before);
    expect(before.files).toBe(2);
    expect((await service.storage.from('recordings').download(survivorFile)).error).toBeNull();
  });

  it('finishes removing files left behind on the scheduled cleanup, which only the service role may run', async () => {
    const [{ jobs }] = await sql<{ jobs: number }[]>`select count(*)::int as jobs from cron.job where jobname = 'org-storage-cleanup'`;
    expect(jobs).toBe(1);
    const leftover = await createChatOrg(sql, 'leftover-e2e');
    const path = `${leftover.id}/calls/${randomUUID()}/recording.wav`;
    expect((await service.storage.from('recordings').upload(path, new Blob(['RIFF'], { type: 'audio/wav' }))).error).toBeNull();
    // Deleted by another path (no files removed): pending.
    await sql`delete from public.organizations where id = ${leftover.id}`;
    expect((await call('POST', 'account/storage-cleanup', leftover.tokens.owner)).status).toBe(403);
    const cleanup = await call('POST', 'account/storage-cleanup', stack.keys.serviceRoleKey);
    expect(cleanup.status).toBe(200);
    expect(cleanup.body.orgs).toContainEqual({ org_id: leftover.id, files_removed: 1, files_remaining: 0 });
    expect(cleanup.body.pending).toBe(0);
    expect((await countRows(leftover.id)).files).toBe(0);
  });
});

describe('deleting an account', () => {
  it('is refused to a sole owner, naming the org; a non-owner\'s goes with their memberships', async () => {
    const org = await createChatOrg(sql, 'sole-owner-e2e');
    const refused = await call('DELETE', 'account', org.tokens.owner);
    expect(refused.status).toBe(409);
    expect(errorCode(refused.body)).toBe('sole_owner');
    expect((refused.body.error as { message: string }).message).toContain('"sole-owner-e2e"');
    const [{ owners }] = await sql<{ owners: number }[]>`
      select count(*)::int as owners from public.memberships where org_id = ${org.id} and role = 'owner'`;
    expect(owners).toBe(1);

    expect((await call('DELETE', 'account', org.tokens.admin)).status).toBe(204);
    const [left] = await sql<{ memberships: number; users: number }[]>`
      select (select count(*)::int from public.memberships where user_id = ${org.users.admin}) as memberships,
             (select count(*)::int from auth.users where id = ${org.users.admin}) as users`;
    expect(left).toEqual({ memberships: 0, users: 0 });
    expect((await call('DELETE', 'account', null)).status).toBe(401);
  });

  it('works for someone who joined by invitation: the accepted invitation goes with them', async () => {
    const org = await createChatOrg(sql, 'invited-delete-e2e');
    const joinerId = randomUUID();
    const email = `joiner-${joinerId.slice(0, 8)}@invited-delete-e2e.test`;
    await sql`insert into auth.users (id, instance_id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
              values (${joinerId}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated', ${email}, now(), '{}', '{}')`;
    const [invitation] = await withUserScope(sql, org.claims.owner, (tx) =>
      tx<{ id: string; token: string }[]>`select id, token from public.invite_member(${org.id}::uuid, ${email}, 'member')`);
    const joinerClaims = { ...org.claims.member, sub: joinerId };
    await withUserScope(sql, joinerClaims, (tx) => tx`select public.accept_invitation(${invitation.token})`);
    const joinerToken = await signUserToken({ id: joinerId, email }, { expiresInSeconds: 3600 });

    const deleted = await call('DELETE', 'account', joinerToken);
    expect(deleted.status, JSON.stringify(deleted.body)).toBe(204);
    const [left] = await sql<{ users: number; memberships: number; invitations: number }[]>`
      select (select count(*)::int from auth.users where id = ${joinerId}) as users,
             (select count(*)::int from public.memberships where user_id = ${joinerId}) as memberships,
             (select count(*)::int from public.invitations where id = ${invitation.id}) as invitations`;
    expect(left).toEqual({ users: 0, memberships: 0, invitations: 0 });
  });
});

describe('the export wake-up path and the public anon key', () => {
  it('answers POST /export {export_id} with the anon key 401 user_required, and the export does not move', async () => {
    const owner = await createChatOrg(sql, 'export-anon-key');
    const created = await call('POST', 'export', owner.tokens.owner, { org_id: owner.id });
    expect(created.status).toBe(202);
    const exportId = (created.body.export as { id: string }).id;
    const row = () => sql<{ status: string; steps: number; cursor: unknown }[]>`
      select status::text as status, steps, cursor from public.data_exports where id = ${exportId}`;
    const before = await row();
    expect(before).toMatchObject([{ status: 'queued', steps: 0 }]);

    const byAnon = await call('POST', 'export', stack.keys.anonKey, { export_id: exportId });
    expect(byAnon.status).toBe(401);
    expect(errorCode(byAnon.body)).toBe('user_required');
    expect(await row()).toEqual(before);
  });
});
