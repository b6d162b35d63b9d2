import { asServiceRole, type Sql } from '../_shared/db.ts';
import type { ReleaseOutcome } from './throttle.ts';

/**
 * A claimed call that waited in the pass longer than this (behind earlier
 * dials, each allowed 15 s) is checked again before it is dialled: its
 * campaign may have been canceled meanwhile (cancel_call_campaign leaves
 * leased calls to the dispatcher, cancel_call refuses them), its bot or org
 * deleted, its bot taken off the voice channel. As the webhook dispatcher
 * does for deliveries that waited at hand.
 */
export const RECHECK_AFTER_MS = 1000;

/** A dial claim: the call and the attempt claim_due_calls counted. */
export interface DialClaim {
  call_id: string;
  attempt: number;
}

/**
 * What became of a claim checked again: dialled as claimed (`dial`), or not
 * dialled: what give_back_dial_claim did with it (a canceled campaign's call
 * `canceled`, any other `released`), or `stale` (the claim moved on) or
 * `gone` (the call or its org was deleted), left alone.
 */
export type RecheckOutcome = 'dial' | ReleaseOutcome;

/** private.dial_claim_verdict's answer. */
interface Verdict {
  verdict: 'dial' | 'give_back' | 'stale' | 'gone';
  reason: string | null;
}

/** One query: whether the call is still queued as this attempt's claim, its campaign not canceled, its bot able to take it. */
async function verdictOf(sql: Sql, claim: DialClaim): Promise<Verdict> {
  const [row] = await asServiceRole(sql, (tx) =>
    tx<Verdict[]>`
      select verdict, reason from private.dial_claim_verdict(${claim.call_id}::uuid, ${claim.attempt}::integer)`);
  return row;
}

/**
 * Gives back one claim: no attempt counted, due again a second later (the next claim fails it if it still cannot be
 * dialled), or canceled with its campaign; unlike a throttled claim given back, its throttle clock is left alone.
 */
async function giveBack(sql: Sql, claim: DialClaim, reason: string): Promise<ReleaseOutcome> {
  const [row] = await asServiceRole(sql, (tx) =>
    tx<{ outcome: ReleaseOutcome }[]>`
      select private.give_back_dial_claim(${claim.call_id}::uuid, ${claim.attempt}::integer, ${reason}::text) as outcome`);
  return row.outcome;
}

/** Checks a claim again; one that may no longer be dialled is given back (or left, when stale or gone). */
export async function recheckClaim(sql: Sql, claim: DialClaim): Promise<RecheckOutcome> {
  const { verdict, reason } = await verdictOf(sql, claim);
  if (verdict === 'dial' || verdict === 'stale' || verdict === 'gone') return verdict;
  return giveBack(sql, claim, `not dialled: ${reason ?? 'the call changed while it waited to be dialled'}`);
}
