import { getSql } from '../_shared/db.ts';
import { createChatHandler } from './handler.ts';

Deno.serve(createChatHandler({ sql: () => getSql() }));
