import { resolve } from 'node:path';

export const ROOT_DIR = resolve(import.meta.dirname, '../..');
