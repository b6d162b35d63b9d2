import { z } from 'zod';

/** A file written so far: its name under the export's prefix, the table it holds, its rows and size. */
const fileSchema = z.object({
  name: z.string().min(1).max(200),
  table: z.string().min(1).max(100),
  rows: z.number().int().min(0),
  bytes: z.number().int().min(0),
});
export type ExportFile = z.infer<typeof fileSchema>;

/**
 * Where an export resumes (data_exports.cursor). The SQL starts it as
 * `{ table: <first>, after: null, part: 0 }` and only checks `table`; the
 * rest is this function's own bookkeeping, carried from step to step:
 * - `after`: the last row_key written of `table` (null: from its start);
 * - `part`: parts of `table` written so far (0: none, so a table finished in
 *   its first step is one file, `<table>.json`, and a longer one is
 *   `<table>.part-0001.json`, `-0002`, ...);
 * - `files`: every file written, for the manifest;
 * - `table: null`: every table is written and the next step packages.
 */
export const cursorSchema = z.object({
  table: z.string().min(1).nullable(),
  after: z.string().nullable().default(null),
  part: z.number().int().min(0).default(0),
  files: z.array(fileSchema).default([]),
});
export type ExportCursor = z.infer<typeof cursorSchema>;

/** An export that cannot go on (an unreadable cursor, a written file gone): it fails rather than loops. */
export class BrokenExportError extends Error {}
