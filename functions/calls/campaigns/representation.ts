/**
 * What the API shows of a call campaign: what it is, when its calls were
 * scheduled and what became of the numbers it was given (calls created,
 * duplicates removed, the numbers that were not phone numbers); never its
 * org or creator.
 */
import type { TransactionSql } from '../../_shared/db.ts';
import { HttpError } from '../../_shared/errors.ts';
import { isoOrNull } from '../representation.ts';

export interface CampaignRow {
  id: string;
  name: string;
  bot_id: string | null;
  status: string;
  scheduled_at: Date | null;
  calls_created: number;
  duplicates_removed: number;
  invalid_numbers: string[];
  canceled_at: Date | null;
  created_at: Date;
  /** created_at to the microsecond (UTC), for the list's cursor. */
  created_at_exact: string;
}

/** The select list for CampaignRow, over a campaign aliased `k`. */
export function campaignColumns(tx: TransactionSql) {
  return tx`
    k.id, k.name, k.bot_id, k.status, k.scheduled_at, k.calls_created, k.duplicates_removed, k.invalid_numbers,
    k.canceled_at, k.created_at,
    to_char(k.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_at_exact`;
}

export function toApiCampaign(row: CampaignRow) {
  return {
    object: 'campaign',
    id: row.id,
    name: row.name,
    bot_id: row.bot_id,
    status: row.status,
    scheduled_at: isoOrNull(row.scheduled_at),
    calls_created: row.calls_created,
    duplicates_removed: row.duplicates_removed,
    invalid_numbers: row.invalid_numbers,
    canceled_at: isoOrNull(row.canceled_at),
    created_at: row.created_at.toISOString(),
  };
}

export const campaignNotFound = () => new HttpError(404, 'not_found', 'The campaign was not found.');
