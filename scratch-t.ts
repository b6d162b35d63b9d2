import postgres from 'postgres';
import { openDatabase } from './scripts/local/pglite.ts';
import { WireServer } from './scripts/local/wire-server.ts';
console.log('open');
const db = await openDatabase();
console.log('opened');
await db.exec(`create role authenticated nologin; create table notes (id bigint generated always as identity primary key, owner uuid not null, body text not null); grant select, insert on notes to authenticated;`);
const server = new WireServer({ db, port: 0 });
await server.start();
console.log('started');
const a = postgres(server.url, { max: 1 });
console.log(await a`select ${1}::int + 1 as v`);
const clients = Array.from({ length: 4 }, () => postgres(server.url, { onnotice: () => undefined }));
await Promise.all(clients.flatMap((sql, n) => Array.from({ length: 5 }, async (_, k) => {
  await sql.begin(async (tx) => { await tx`select set_config('role', 'authenticated', true)`; await tx`insert into notes (owner, body) values (gen_random_uuid(), 'x')`; });
})));
console.log('done');
process.exit(0);
