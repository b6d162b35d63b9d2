/**
 * How placing a call or a campaign answers the database's refusals: as
 * httpErrorFromPostgres does (a bot of another org is not found), except that
 * a bot that does not answer on the voice channel is a 422
 * `voice_channel_disabled` (private.require_outbound_setup raises it with
 * constraint bots_voice_channel): dialled, its callee's phone would ring and
 * every turn of the provider's assistant would be refused.
 */
import { HttpError } from '../_shared/errors.ts';
import { httpErrorFromPostgres, isPostgresError } from '../_shared/pg-errors.ts';

export async function mapCreationErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isPostgresError(error) && error.code === '22023' && error.constraint_name === 'bots_voice_channel') {
      throw new HttpError(422, 'voice_channel_disabled', error.message);
    }
    throw httpErrorFromPostgres(error, { notFound: 'The bot was not found.' });
  }
}
