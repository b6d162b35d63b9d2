import type { PGlite } from '@electric-sql/pglite';
import type { JwtClaims } from '../functions/_shared/auth.ts';
import { createSql, withUserScope } from '../functions/_shared/db.ts';
import { startStack } from './local/stack.ts';

/**
 * `npm run bench:rls`: listing 10,000 rows of a tenant table as an org member
 * (row-level security picks the rows) against the same rows as the service
 * role (no RLS, an explicit `where org_id`), through the wire server as the
 * edge functions do and in-process on PGlite (the database's own share).
 * The figure is the ratio member / service; the target is at most 1.5x.
 * Prints figures and always exits 0; it throws only when the member does not
 * get exactly the 10,000 rows of its org, since then it would time the wrong thing.
 */
const ROWS = 10_000;
const RUNS = 30;
const WARM_UP = 5;
const TARGET = 1.5;
/** Other tenants' log rows, so org A is under a tenth of the table, as on a shared project. */
const NOISE_ORGS = 50;
const NOISE_ROWS_PER_ORG = 2_000;

const ORG_A = '00000000-0000-4000-9000-0000000b0a0a';
const ORG_B = '00000000-0000-4000-9000-0000000b0b0b';
/** Bench user n (1-based); users 1..10,000 are in org A, the next 100 in org B. */
const user = (n: number): string => `00000000-0000-4000-8000-1${String(n).padStart(11, '0')}`;
const ADMIN_OF_A = user(1);
const VIEWER_OF_A = user(2);

const SEED_SQL = `
begin;
-- Without the triggers the audit trigger would add a log row per membership
-- and org, and the orgs would no longer hold exactly ${ROWS} log rows each.
-- Local to this transaction, so the wire server's sessions never see it.
set local session_replication_role = replica;

insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select ('00000000-0000-4000-8000-1' || lpad(n::text, 11, '0'))::uuid, '00000000-0000-0000-0000-000000000000',
       'authenticated', 'authenticated', 'bench' || n || '@bench.test', '{}', '{}', now(), now()
from generate_series(1, ${ROWS + 100}) n;

insert into public.organizations (id, name, slug) values
  ('${ORG_A}', 'Bench A', 'bench-a'),
  ('${ORG_B}', 'Bench B', 'bench-b');
insert into public.organizations (id, name, slug)
select ('00000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid, 'Noise ' || n, 'bench-noise-' || n
from generate_series(1, ${NOISE_ORGS}) n;

insert into public.memberships (org_id, user_id, role)
select case when n <= ${ROWS} then '${ORG_A}' else '${ORG_B}' end::uuid,
       ('00000000-0000-4000-8000-1' || lpad(n::text, 11, '0'))::uuid,
       (case n when 1 then 'admin' when 2 then 'viewer' when 3 then 'owner' when ${ROWS + 1} then 'owner' else 'member' end)::public.org_role
from generate_series(1, ${ROWS + 100}) n;

set local session_replication_role = origin;

-- Direct inserts as postgres, each chained by private.chain_audit_row (which
-- overwrites the placeholder seq and hashes), shaped like the trigger's rows.
insert into public.audit_log (org_id, seq, action, table_name, record_id, new_values, prev_hash, hash)
select org_id, 0, 'insert', 'memberships', org_id || ':' || n,
       jsonb_build_object('org_id', org_id, 'user_id', gen_random_uuid(), 'role', 'member', 'created_at', now(), 'updated_at', now()),
       '\\x', '\\x'
from (values ('${ORG_A}'::uuid), ('${ORG_B}'::uuid)) orgs (org_id), generate_series(1, ${ROWS}) n;

insert into public.audit_log (org_id, seq, action, table_name, record_id, new_values, prev_hash, hash)
select ('00000000-0000-4000-9000-' || lpad(o::text, 12, '0'))::uuid, 0, 'insert', 'memberships', o || ':' || n,
       jsonb_build_object('role', 'member'), '\\x', '\\x'
from generate_series(1, ${NOISE_ORGS}) o, generate_series(1, ${NOISE_ROWS_PER_ORG}) n;
commit;

-- Planner statistics, as autovacuum would have them on a real project.
analyze auth.users, public.organizations, public.memberships, public.audit_log, private.audit_chain_heads;
`;

interface Case {
  table: string;
  /** The member whose RLS-filtered listing is timed. */
  memberId: string;
  memberSql: string;
  serviceSql: string;
}

const CASES: Case[] = [
  {
    table: 'audit_log',
    memberId: ADMIN_OF_A,
    memberSql: 'select * from public.audit_log order by seq',
    serviceSql: 'select * from public.audit_log where org_id = $1 order by seq',
  },
  {
    table: 'memberships',
    memberId: VIEWER_OF_A,
    memberSql: 'select * from public.memberships',
    serviceSql: 'select * from public.memberships where org_id = $1',
  },
];

type Row = Record<string, unknown>;
/** Runs one listing in a transaction as `claims` and returns its rows. */
type Runner = (claims: JwtClaims, text: string, params: string[]) => Promise<readonly Row[]>;

function claimsFor(role: 'authenticated' | 'service_role', sub?: string): JwtClaims {
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return sub ? { sub, role, aud: 'authenticated', exp } : { role, exp };
}

/** The bench must measure exactly org A's rows, or its figure means nothing. */
function checkRows(rows: readonly Row[], who: string): void {
  if (rows.length !== ROWS || rows.some((row) => row.org_id !== ORG_A)) {
    throw new Error(`${who} got ${rows.length} rows, expected exactly the ${ROWS} rows of org A`);
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

interface Figures {
  median: number;
  p95: number;
}

/** Times member and service runs alternately, so drift (GC, JIT) hits both alike. */
async function measure(run: Runner, c: Case): Promise<{ member: Figures; service: Figures }> {
  const member = claimsFor('authenticated', c.memberId);
  const service = claimsFor('service_role');
  const times = { member: [] as number[], service: [] as number[] };
  for (let i = 0; i < WARM_UP + RUNS; i++) {
    for (const who of ['member', 'service'] as const) {
      const started = performance.now();
      const rows = who === 'member' ? await run(member, c.memberSql, []) : await run(service, c.serviceSql, [ORG_A]);
      const elapsed = performance.now() - started;
      checkRows(rows, `${c.table} as ${who}`);
      if (i >= WARM_UP) times[who].push(elapsed);
    }
  }
  const figures = (list: number[]): Figures => {
    const sorted = [...list].sort((a, b) => a - b);
    return { median: percentile(sorted, 0.5), p95: percentile(sorted, 0.95) };
  };
  return { member: figures(times.member), service: figures(times.service) };
}

/** In-process: the same transaction shape as withUserScope, straight on PGlite. */
function inProcess(db: PGlite): Runner {
  return (claims, text, params) =>
    db.transaction(async (tx) => {
      await tx.query(`select set_config('request.jwt.claims', $1, true), set_config('role', $2, true)`, [
        JSON.stringify(claims),
        claims.role,
      ]);
      return (await tx.query<Row>(text, params)).rows;
    });
}

const stack = await startStack({ dbPort: 0, functions: false, scheduler: false });
const sql = createSql(stack.dbUrl, { max: 1 });
try {
  await stack.db.exec(SEED_SQL);

  const wire: Runner = (claims, text, params) => withUserScope(sql, claims, (tx) => tx.unsafe<Row[]>(text, params));
  const paths: Array<[string, Runner]> = [
    ['wire', wire],
    ['in-process', inProcess(stack.db)],
  ];

  const ms = (value: number): string => value.toFixed(1).padStart(7);
  console.log(
    `${ROWS} rows per listing (audit_log also holds ${ROWS + NOISE_ORGS * NOISE_ROWS_PER_ORG} rows of other orgs), ` +
      `median (p95) of ${RUNS} runs after ${WARM_UP} warm-up runs, ms`,
  );
  console.log('table        path        member            service           ratio  target 1.5x');
  for (const c of CASES) {
    for (const [path, run] of paths) {
      const { member, service } = await measure(run, c);
      const ratio = member.median / service.median;
      console.log(
        `${c.table.padEnd(12)} ${path.padEnd(11)} ${ms(member.median)} (${ms(member.p95)})  ` +
          `${ms(service.median)} (${ms(service.p95)})  ${ratio.toFixed(2).padStart(5)}x ${ratio <= TARGET ? 'PASS' : 'FAIL'}`,
      );
    }
  }
} finally {
  await sql.end({ timeout: 1 });
  await stack.stop();
}
