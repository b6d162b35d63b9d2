/**
 * Postgres text cannot hold NUL, so the database would refuse such a value
 * only after what the request set off first (a paid embedding, a stored chat
 * message): schemas refuse it at the boundary instead.
 */
export const hasNoNul = (value: string): boolean => !value.includes('\u0000');

export const NUL_MESSAGE = 'must not contain a NUL character';
