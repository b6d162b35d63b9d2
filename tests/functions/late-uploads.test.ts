/**
 * An org deleted while one of its jobs runs leaves no file behind
 * (20261123005700_no_files_for_deleted_orgs.sql). The interleaving the review
 * found is played deterministically: an export step, an export's packaging
 * and an invoice render are driven here, against the stack's database and
 * Storage, with the real Storage store wrapped so that just before the job's
 * upload the org is deleted through DELETE /account/organizations/:id (rows,
 * then its files listed and removed: the request's own pass). The upload
 * then comes after that pass. Whatever the job does next, once the scheduled
 * cleanup (POST /account/storage-cleanup) has run too, no object is left
 * under the org's prefix and its removal stays recorded. (The other
 * interleaving, an upload that began before the deletion and commits after
 * it, cannot happen on this single-session database; pgTAP 225 shows the
 * upload holding the org row that a deletion would wait for.)
 */
import { randomUUID } from 'node:crypto';
import type { SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asServiceRole, createSql, type Sql } from '../../functions/_shared/db.ts';
import { HttpError } from '../../functions/_shared/errors.ts';
import { renderPendingInvoices } from '../../functions/billing/render-batch.ts';
import { supabaseInvoiceStore } from '../../functions/billing/store.ts';
import { DEFAULT_EXPORT_BUDGET } from '../../functions/export/step.ts';
import { exportStep } from '../../functions/export/step-route.ts';
import { type ExportStore, supabaseExportStore } from '../../functions/export/store.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { type ChatOrg, createChatOrg } from '../support/chat-fixtures.ts';
import { supabaseClient } from '../support/supabase-client.ts';

let stack: Stack;
let sql: Sql;
let service: SupabaseClient;

beforeAll(async () => {
  stack = await startStack({ dbPort: 0, apiPort: await freePort(), functions: true, scheduler: false });
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
  token: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${stack.apiUrl}/functions/v1/${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) as Record<string, unknown> : {} };
}

/** An org with a file of its own (a call recording), so its deletion has something to remove. */
async function orgWithAFile(label: string): Promise<ChatOrg> {
  const org = await createChatOrg(sql, label);
  const path = `${org.id}/calls/${randomUUID()}/recording.wav`;
  const { error } = await service.storage.from('recordings').upload(path, new Blob(['RIFF'], { type: 'audio/wav' }));
  expect(error).toBeNull();
  return org;
}

/** The owner deletes the org; the request removes its files before it answers. */
async function deleteOrg(org: ChatOrg, label: string): Promise<void> {
  const deleted = await call('DELETE', `account/organizations/${org.id}`, org.tokens.owner, { confirm_name: label });
  expect(deleted.status).toBe(200);
  expect(deleted.body).toMatchObject({ deleted: true, files_remaining: 0 });
}

/** Runs `before` once, just ahead of the first upload under the org's prefix. */
function beforeFirstUpload<S extends { upload(path: string, ...rest: never[]): Promise<void> }>(
  store: S,
  orgId: string,
  before: () => Promise<void>,
): S & { uploadsAfter: () => number } {
  let fired = false;
  let after = 0;
  const upload = async (path: string, ...rest: never[]) => {
    if (path.startsWith(`${orgId}/`)) {
      if (!fired) {
        fired = true;
        await before();
      }
      after += 1;
    }
    return await store.upload(path, ...rest);
  };
  return { ...store, upload, uploadsAfter: () => after };
}

/** What the scheduled cleanup does, then what is left of the org in Storage and whether its removal is recorded. */
async function afterTheCleanup(orgId: string): Promise<{ files: number; removed: boolean }> {
  const cleanup = await call('POST', 'account/storage-cleanup', stack.keys.serviceRoleKey);
  expect(cleanup.status).toBe(200);
  const [state] = await sql<{ files: number; removed: boolean }[]>`
    select (select count(*)::int from storage.objects where starts_with(name, ${`${orgId}/`})) as files,
           (select storage_removed_at is not null from private.deleted_organizations where org_id = ${orgId})
             as removed`;
  return state;
}

const logged: string[] = [];
const log = (message: string) => void logged.push(message);

describe('an export running when its org is deleted', () => {
  const exportStore = () => supabaseExportStore(() => service);

  async function queuedExport(org: ChatOrg): Promise<string> {
    const created = await call('POST', 'export', org.tokens.owner, { org_id: org.id });
    expect(created.status).toBe(202);
    return (created.body.export as { id: string }).id;
  }

  it('stores nothing once the org\'s files were removed: a step writing tables', async () => {
    const label = 'late-export-step';
    const org = await orgWithAFile(label);
    const exportId = await queuedExport(org);
    const store = beforeFirstUpload<ExportStore>(exportStore(), org.id, () => deleteOrg(org, label));
    logged.length = 0;

    const step = exportStep({ sql, store, log }, exportId, DEFAULT_EXPORT_BUDGET);
    await expect(step).rejects.toBeInstanceOf(HttpError);
    await expect(step).rejects.toMatchObject({ status: 404, code: 'not_found' });
    expect(store.uploadsAfter()).toBeGreaterThanOrEqual(1);
    expect(logged).toEqual([]);
    expect(await afterTheCleanup(org.id)).toEqual({ files: 0, removed: true });
  });

  it('stores nothing once the org\'s files were removed: the packaging step', async () => {
    const label = 'late-export-package';
    const org = await orgWithAFile(label);
    const exportId = await queuedExport(org);
    // Every table written by the function itself; what is left is packaging.
    let table: unknown = 'organizations';
    for (let steps = 0; table !== null; steps++) {
      expect(steps).toBeLessThan(100);
      const step = await call('POST', 'export/step', stack.keys.serviceRoleKey, { export_id: exportId });
      expect(step.status).toBe(202);
      table = step.body.table;
    }
    const [{ files }] = await sql<{ files: number }[]>`
      select count(*)::int as files from storage.objects
      where bucket_id = 'exports' and starts_with(name, ${`${org.id}/`})`;
    expect(files).toBeGreaterThan(10);
    const store = beforeFirstUpload<ExportStore>(exportStore(), org.id, () => deleteOrg(org, label));
    logged.length = 0;

    const step = exportStep({ sql, store, log }, exportId, DEFAULT_EXPORT_BUDGET);
    await expect(step).rejects.toMatchObject({ status: 404, code: 'not_found' });
    expect(store.uploadsAfter()).toBeGreaterThanOrEqual(1);
    expect(logged).toEqual([]);
    expect(await afterTheCleanup(org.id)).toEqual({ files: 0, removed: true });
  });
});

describe('an invoice rendered when its org is deleted', () => {
  it('stores no PDF once the org\'s files were removed, and is not reported as a failure', async () => {
    const label = 'late-invoice';
    const org = await orgWithAFile(label);
    // On its plan since before last month, so last month is invoiced.
    const since = new Date(Date.now() - 70 * 86_400_000);
    await sql`update public.subscriptions set started_at = ${since}, current_period_start = ${since},
                current_period_end = private.add_months_utc(${since}::timestamptz, 1)
              where org_id = ${org.id} and status = 'active'`;
    const now = new Date();
    const lastMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1)).toISOString().slice(0, 10);
    await asServiceRole(sql, (tx) => tx`select private.generate_invoices(${lastMonth}::date)`);
    const [invoice] = await sql<{ id: string }[]>`select id from public.invoices where org_id = ${org.id}`;
    expect(invoice).toBeDefined();
    const store = beforeFirstUpload(supabaseInvoiceStore(() => service), org.id, () => deleteOrg(org, label));
    logged.length = 0;

    const summary = await renderPendingInvoices({ sql, store, log }, { invoices: 20, ms: 60_000 });
    expect(store.uploadsAfter()).toBe(1);
    expect(summary.rendered).not.toContain(invoice.id);
    expect(summary.failed).toEqual([]);
    expect(logged).toEqual([]);
    expect(await afterTheCleanup(org.id)).toEqual({ files: 0, removed: true });
  });
});
