import type { JwtClaims } from '../../functions/_shared/auth.ts';
import { type Sql, withUserScope } from '../../functions/_shared/db.ts';

export interface FileToRegister {
  name: string;
  mime_type: string;
  size_bytes: number;
  checksum_sha256?: string;
}

/**
 * Registers one file as the user through create_upload_batch, as a frontend
 * does before uploading it (a batch of one; the document is `uploading`, to be
 * stored at `<org>/<document>/<name>`).
 */
export async function registerFile(
  sql: Sql,
  userId: string,
  orgId: string,
  file: FileToRegister,
): Promise<{ id: string; storage_path: string }> {
  const claims: JwtClaims = {
    role: 'authenticated',
    sub: userId,
    aud: 'authenticated',
    exp: Math.floor(Date.now() / 1000) + 600,
  };
  const [document] = await withUserScope(sql, claims, (tx) =>
    tx<{ id: string; storage_path: string }[]>`
      select id, storage_path from public.create_upload_batch(${orgId}::uuid, ${tx.json([{ ...file }])})`
  );
  return document;
}

/** What the ingest function answered last: `status` is `ready` or `failed` once the run is done. */
export interface IngestAnswer {
  status: string;
  reason?: string;
}

/**
 * Calls the ingest function for the document until its run is done (202 is
 * a step with more to come; the scheduler is off in the function tests), at
 * most ten steps; returns the last answer.
 */
export async function ingestUntilDone(
  stack: { apiUrl: string; serviceRoleKey: string },
  id: string,
): Promise<IngestAnswer> {
  let body: IngestAnswer = { status: 'processing' };
  for (let step = 0; step < 10; step++) {
    const response = await fetch(`${stack.apiUrl}/functions/v1/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.serviceRoleKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ document_id: id }),
    });
    body = (await response.json()) as IngestAnswer;
    if (response.status !== 202) return body;
  }
  return body;
}
