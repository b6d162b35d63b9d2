/**
 * The billing function.
 *
 *   POST /functions/v1/billing `{ "action": "render_pdfs" }`   the service role only (pg_cron hourly and
 *        private.generate_invoices wake it through pg_net): renders waiting invoice PDFs within a budget
 *        → 200 { rendered, failed, more }
 *   GET  /functions/v1/billing/invoices/:id/pdf               a signed-in owner or admin (billing.read)
 *        → 200 { url, expires_at }: a signed link to the PDF that expires in BILLING_LINK_SECONDS
 *        (60–300, default 120); 404 for an invoice the caller cannot see; 409 pdf_not_ready
 *
 * verify_jwt is off (supabase/config.toml): the service-role key of a hosted
 * project need not be a JWT, so each route authenticates its caller here.
 */
import { z } from 'zod';
import { requireUser } from '../_shared/auth.ts';
import { getSql, type Sql } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { positiveIntFromEnv } from '../_shared/env-numbers.ts';
import { createHandler } from '../_shared/handler.ts';
import { json, readOptionalJson } from '../_shared/http.ts';
import { requireServiceRole } from '../_shared/service-auth.ts';
import { lazyServiceClient } from '../_shared/service-storage.ts';
import { invoicePdfLink } from './invoice-link.ts';
import { type RenderBudget, renderPendingInvoices } from './render-batch.ts';
import { matchRoute } from './router.ts';
import { type InvoiceStore, supabaseInvoiceStore } from './store.ts';

export interface BillingDeps {
  sql: () => Sql;
  env?: EnvReader;
  store?: InvoiceStore;
  budget?: RenderBudget;
}

// pg_net's body; an empty body (a manual call) means the same.
const renderBody = z.object({ action: z.literal('render_pdfs').optional() });

export function renderBudgetFromEnv(env: EnvReader): RenderBudget {
  return {
    invoices: positiveIntFromEnv(env, 'BILLING_STEP_INVOICES', 20, 100),
    ms: positiveIntFromEnv(env, 'BILLING_STEP_MS', 1500),
  };
}

/** Between one and five minutes: long enough to click, short enough that a leaked link soon dies. */
export function linkSecondsFromEnv(env: EnvReader): number {
  return Math.max(60, positiveIntFromEnv(env, 'BILLING_LINK_SECONDS', 120, 300));
}

export function createBillingHandler(deps: BillingDeps): (req: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const store = deps.store ?? supabaseInvoiceStore(lazyServiceClient(env));
  return createHandler(async (req) => {
    const route = matchRoute(req.method, new URL(req.url).pathname);
    switch (route.name) {
      case 'renderPdfs': {
        await requireServiceRole(req, { env, what: 'render invoice PDFs' });
        await readOptionalJson(req, renderBody);
        const summary = await renderPendingInvoices({ sql: deps.sql(), store }, deps.budget ?? renderBudgetFromEnv(env));
        return json(summary, 200, { 'cache-control': 'no-store' });
      }
      case 'invoicePdf': {
        const claims = await requireUser(req, { env });
        const link = await invoicePdfLink({ sql: deps.sql(), store }, claims, route.invoiceId, linkSecondsFromEnv(env));
        return json(link, 200, { 'cache-control': 'no-store' });
      }
    }
  }, { env });
}

export const handler = createBillingHandler({ sql: () => getSql() });
