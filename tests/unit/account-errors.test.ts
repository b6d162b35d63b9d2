import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { accountError } from '../../functions/account/delete-account.ts';
import { HttpError } from '../../functions/_shared/errors.ts';

// As postgres.js builds them from the server's error fields (its typings declare Error's
// constructor, a message; the runtime one takes the fields, hence the cast).
const pgError = (fields: Record<string, string>) =>
  new postgres.PostgresError({ name: 'PostgresError', severity: 'ERROR', ...fields } as unknown as string);

describe('account deletion errors', () => {
  it('answers 409 sole_owner only for the sole-owner refusal our SQL raises', () => {
    const refusal = accountError(pgError({
      code: '23514',
      message: 'you are the only owner of "Acme": transfer ownership or delete the organization first',
    }));
    expect(refusal).toBeInstanceOf(HttpError);
    expect(refusal).toMatchObject({ status: 409, code: 'sole_owner', message: expect.stringContaining('"Acme"') });
  });

  it('leaves a table check failing during the deletion a 500, not a sole-owner answer', () => {
    const check = pgError({
      code: '23514',
      message: 'new row for relation "invitations" violates check constraint "invitations_accepted_by"',
      constraint_name: 'invitations_accepted_by',
    });
    expect(accountError(check)).toBe(check);
  });

  it('maps other Postgres errors as every function does', () => {
    expect(accountError(pgError({ code: '42501', message: 'permission denied for function delete_account' })))
      .toMatchObject({ status: 403, code: 'forbidden' });
  });
});
