import { rmSync } from 'node:fs';
import { localConfig } from './local/config.ts';
import { prepareDatabase, storageDirFor } from './local/stack.ts';

/** `npm run db:reset`: deletes the local data folder (and Storage's files) and rebuilds it: stand-ins, migrations, seed. */
const { dataDir } = localConfig();
rmSync(dataDir, { recursive: true, force: true });
rmSync(storageDirFor(dataDir), { recursive: true, force: true });
try {
  const db = await prepareDatabase({ dataDir, log: (line) => console.log(line) });
  await db.close();
  console.log(`Database reset in ${dataDir}.`);
} catch (error) {
  console.error((error as Error).message);
  process.exit(1);
}
