import postgres from 'postgres';
import { signUserToken } from './local/keys.ts';
import { localConfig } from './local/config.ts';

/**
 * `npm run token -- <email or user id> [hours]`: prints an access token for a
 * user of the running local stack (or of DATABASE_URL), signed with the local JWT secret.
 */
const [who, hours = '1'] = process.argv.slice(2);
if (!who) {
  console.error('usage: npm run token -- <email or user id> [hours valid, default 1]');
  process.exit(2);
}
const url = process.env.DATABASE_URL ?? `postgresql://postgres:postgres@127.0.0.1:${localConfig().dbPort}/postgres`;
const sql = postgres(url, { max: 1, onnotice: () => undefined });
try {
  const [user] = await sql<{ id: string; email: string; raw_app_meta_data: Record<string, unknown> }[]>`
    select id, email, raw_app_meta_data from auth.users where email = ${who} or id::text = ${who}`;
  if (!user) {
    console.error(`No user ${who} in auth.users.`);
    process.exitCode = 1;
  } else {
    console.log(
      await signUserToken(
        { id: user.id, email: user.email, appMetadata: user.raw_app_meta_data },
        { expiresInSeconds: Number(hours) * 3600, secret: process.env.SUPABASE_JWT_SECRET },
      ),
    );
  }
} catch (error) {
  console.error(`Could not reach the database at ${url} (is \`npm start\` running?): ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  await sql.end();
}
