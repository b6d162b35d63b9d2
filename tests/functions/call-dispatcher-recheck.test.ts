/**
 * Claimed calls are checked again before they are dialled when they waited
 * in the pass (20261123014200_dial_recheck.sql), against the Vapi stand-in on
 * the run's database. A pass claims a batch and dials `concurrency` at a
 * time; here Vapi's answers to the first dials are held (the dialer returns
 * them only when the test lets it), so the rest of the batch waits, claimed
 * and leased, as behind slow dials. Meanwhile the campaign is canceled
 * (cancel_call_campaign leaves leased calls to the dispatcher), or the bot or
 * the org deleted. The waiting calls are never POSTed to Vapi: a canceled
 * campaign's end canceled, a deleted bot's are given back without an attempt
 * and the next pass fails them with the reason, a deleted org's are gone. A
 * call nothing changed is still dialled once.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { createVapiDialer, type VoiceDialer } from '../../functions/_shared/voice/index.ts';
import { dialDueCalls, type DialSummary } from '../../functions/call-dispatcher/dial.ts';
import { RECHECK_AFTER_MS } from '../../functions/call-dispatcher/recheck.ts';
import { createOutboundCall, middayZone, provisionVoiceIds } from '../support/call-fixtures.ts';
import { type ChatOrg, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { runExclusively } from '../support/exclusive.ts';
import { startVapiStub, type VapiStub, type VapiStubRequest } from '../support/vapi-stub.ts';
import { startTestDatabase, type TestDatabase } from './support.ts';

// A dial pass takes every org's due calls: one such file at a time.
runExclusively('dial-pass');

let database: TestDatabase;
let sql: Sql;
let vapi: VapiStub;
let vapiDialer: VoiceDialer;

/** The pass dials 2 at a time: of a batch of 4, the last 2 wait for the first 2's answers. */
const CONCURRENCY = 2;
const HELD = CONCURRENCY;

interface CallState {
  id: string;
  status: string;
  dial_attempts: number;
  stamped: boolean;
  leased: boolean;
  last_dial_error: string | null;
  ended_reason: string | null;
}

async function states(ids: string[]): Promise<CallState[]> {
  return sql<CallState[]>`
    select id, status, dial_attempts, dial_started_at is not null as stamped, dial_lease_until is not null as leased,
           last_dial_error, ended_reason
    from public.calls where id = any (${ids}::uuid[])
    order by id`;
}

const callIdOf = (request: VapiStubRequest) =>
  (request.body.assistantOverrides as { metadata?: { call_id?: string } } | undefined)?.metadata?.call_id;

/** Our call ids Vapi was asked to dial (every POST /call, taken or not). */
const posted = () =>
  vapi.requests.filter((request) => request.method === 'POST').map(callIdOf).filter((id): id is string => id !== undefined);

/**
 * Vapi's dialer whose first `HELD` answers (the calls created at Vapi) are held until `release()`; `held` resolves
 * once all of them are answered and waiting.
 */
function holdingDialer(): { dialer: VoiceDialer; held: Promise<void>; release: () => void } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let allHeld!: () => void;
  const held = new Promise<void>((resolve) => (allHeld = resolve));
  let started = 0;
  let answered = 0;
  const dialer: VoiceDialer = {
    dial: async (request) => {
      const holdThis = started < HELD;
      started += 1;
      try {
        return await vapiDialer.dial(request);
      } finally {
        if (holdThis) {
          answered += 1;
          if (answered === HELD) allHeld();
          await released;
        }
      }
    },
    findCall: (lookup) => vapiDialer.findCall(lookup),
  };
  return { dialer, held, release };
}

/**
 * Runs a pass over a batch of 4 whose first 2 answers are held: `meanwhile` runs once both are held, then the
 * waiting claims are left waiting past RECHECK_AFTER_MS before the answers come.
 */
async function passWhile(meanwhile: () => Promise<void>): Promise<DialSummary> {
  const { dialer, held, release } = holdingDialer();
  const pass = dialDueCalls({ sql, dialer, concurrency: CONCURRENCY, batchSize: 4, timeoutMs: 5_000, log: () => undefined });
  try {
    await held;
    await meanwhile();
    await new Promise((resolve) => setTimeout(resolve, RECHECK_AFTER_MS + 200));
  } finally {
    release();
  }
  return pass;
}

const plainPass = () => dialDueCalls({ sql, dialer: vapiDialer, concurrency: CONCURRENCY, batchSize: 4, timeoutMs: 5_000, log: () => undefined });

/** An org with a bot ready to dial out, with assistant and phone number ids unique to this file. */
async function voiceOrg(label: string): Promise<{ org: ChatOrg; bot: string }> {
  const org = await createChatOrg(sql, label);
  const bot = await createBot(sql, org.id, { slug: label });
  await withUserScope(sql, org.claims.admin, (tx) => tx`select public.create_call_provider_secret(${org.id}, 'vapi')`);
  await provisionVoiceIds(sql, org.id, bot, `asst-${label}`, `pn-${label}`);
  return { org, bot };
}

async function queueCalls(org: ChatOrg, bot: string, first: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < 4; i += 1) ids.push(await createOutboundCall(sql, org, bot, `+1415556${String(first + i).padStart(4, '0')}`));
  return ids;
}

beforeAll(async () => {
  database = await startTestDatabase();
  sql = createSql(database.url, { max: 3 });
  vapi = await startVapiStub();
  vapiDialer = createVapiDialer({ apiKey: vapi.apiKey, baseUrl: vapi.baseUrl, timeoutMs: 5_000 });
  // Only this file's calls are due while it runs.
  await sql`update public.calls set next_dial_at = now() + interval '1 year' where status = 'queued'`;
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await vapi?.close();
  await database?.stop();
});

beforeEach(() => vapi.reset());

describe('a claimed call that waited in the pass', () => {
  it('is not dialled once its campaign is canceled: it ends canceled, never POSTed to Vapi', async () => {
    const { org, bot } = await voiceOrg('recheck-campaign');
    const ids = await withUserScope(sql, org.claims.admin, async (tx) => {
      const numbers = Array.from({ length: 4 }, (_, index) => `+1415556${String(100 + index).padStart(4, '0')}`);
      const [campaign] = await tx<{ campaign_id: string }[]>`
        select campaign_id from public.create_call_campaign(${org.id}, ${bot}, 'Recheck', ${numbers}, null, ${middayZone()})`;
      const rows = await tx<{ id: string }[]>`select id from public.calls where campaign_id = ${campaign.campaign_id}`;
      return { campaign: campaign.campaign_id, calls: rows.map((row) => row.id) };
    });

    const summary = await passWhile(async () => {
      const [canceled] = await withUserScope(sql, org.claims.admin, (tx) =>
        tx<{ count: number }[]>`select public.cancel_call_campaign(${ids.campaign}) as count`);
      // Every call is claimed: two being dialled, two waiting. The cancel leaves them all to the dispatcher.
      expect(canceled.count).toBe(0);
    });

    const dialled = posted();
    expect(dialled).toHaveLength(HELD);
    expect(summary).toMatchObject({ claimed: 4, placed: HELD, canceled: 2, dropped: 0, unrecorded: 0 });
    for (const state of await states(ids.calls)) {
      if (dialled.includes(state.id)) {
        // Vapi took these before the cancel: they ring, as the README says of calls being dialled.
        expect(state).toMatchObject({ status: 'ringing', dial_attempts: 1 });
      } else {
        expect(state).toMatchObject({
          status: 'canceled',
          ended_reason: 'canceled-by-user',
          dial_attempts: 0,
          stamped: false,
          leased: false,
          last_dial_error: 'not dialled: the campaign was canceled',
        });
      }
    }
  });

  it('is not dialled once its bot is deleted: given back without an attempt, then failed with the reason', async () => {
    const { org, bot } = await voiceOrg('recheck-bot');
    const ids = await queueCalls(org, bot, 200);

    const summary = await passWhile(async () => {
      const deleted = await withUserScope(sql, org.claims.admin, (tx) => tx`delete from public.bots where id = ${bot} returning id`);
      expect(deleted).toHaveLength(1);
    });

    const dialled = posted();
    expect(dialled).toHaveLength(HELD);
    expect(summary).toMatchObject({ claimed: 4, placed: HELD, dropped: 2, canceled: 0, unrecorded: 0 });
    const waited = (await states(ids)).filter((state) => !dialled.includes(state.id));
    expect(waited).toHaveLength(2);
    for (const state of waited) {
      expect(state).toMatchObject({
        status: 'queued',
        dial_attempts: 0,
        stamped: false,
        leased: false,
        last_dial_error: 'not dialled: the bot was deleted',
      });
    }

    // Due again a second later: the next claim fails them with the reason, still never dialled.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await plainPass()).toMatchObject({ claimed: 0 });
    expect(posted()).toHaveLength(HELD);
    for (const state of await states(waited.map((call) => call.id))) {
      expect(state).toMatchObject({ status: 'failed', ended_reason: 'dial-failed: the bot was deleted', dial_attempts: 0 });
    }
  });

  it('is not dialled once its org is deleted: the call is gone, nothing is POSTed for it', async () => {
    const { org, bot } = await voiceOrg('recheck-org');
    const ids = await queueCalls(org, bot, 300);

    const summary = await passWhile(async () => {
      await withUserScope(sql, org.claims.owner, (tx) =>
        tx`select public.delete_organization(${org.id}::uuid, (select name from public.organizations where id = ${org.id}::uuid))`);
    });

    expect(posted()).toHaveLength(HELD);
    expect(posted().every((id) => ids.includes(id))).toBe(true);
    // The two dialled are reported for calls since deleted (stale); the two waiting are dropped, never dialled.
    expect(summary).toMatchObject({ claimed: 4, placed: 0, stale: HELD, dropped: 2, unrecorded: 0 });
    expect(await states(ids)).toEqual([]);
  });

  it('is still dialled, once, when nothing changed while it waited', async () => {
    const { org, bot } = await voiceOrg('recheck-unchanged');
    const ids = await queueCalls(org, bot, 400);

    const summary = await passWhile(() => Promise.resolve());

    expect(summary).toMatchObject({ claimed: 4, placed: 4, dropped: 0, canceled: 0, unrecorded: 0 });
    expect(posted().sort()).toEqual([...ids].sort());
    for (const state of await states(ids)) expect(state).toMatchObject({ status: 'ringing', dial_attempts: 1 });
  });
});
