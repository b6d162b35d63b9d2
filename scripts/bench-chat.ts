/**
 * `npm run bench:chat`: how long a chat turn makes the user wait before the
 * first token, and how much of that is ours (auth, rate limit and quota,
 * storing the question, embedding it, retrieval, the prompt) rather than the
 * model's. The earlier product promised a first token within 4 s with
 * OpenAI; our share must be a small fraction of it. Target: p95 under 100 ms
 * with the offline provider, one client at a time.
 *
 * On a throwaway embedded stack (PGlite, WASM, behind the wire server; the
 * functions in Deno behind the local gateway; no scheduler), seeded with a
 * shop's knowledge base (20 documents × 10 pages, a catalog) and three other
 * orgs' documents, three paths are timed from the client:
 * 1. the offline provider over SSE (`POST /functions/v1/chat`, a signed-in
 *    member; the first `event: delta`);
 * 2. the offline provider over the OpenAI-compatible endpoint
 *    (`POST /functions/v1/chat/v1/chat/completions`, stream: true, a bot API
 *    key; the first chunk with non-empty `delta.content`);
 * 3. the same endpoint for a bot on gpt-4o-mini, with a second functions
 *    runtime given OPENAI_API_KEY and OPENAI_BASE_URL pointing at a local
 *    OpenAI-wire server that answers at once (tests/support/openai-stub.ts,
 *    whose embeddings are the offline lexical vectors, so retrieval finds the
 *    same chunks): the question's embedding and the completion go over HTTP
 *    through the openai SDK, as they would to OpenAI, minus OpenAI's time.
 * Each path: 10 warm-up turns, 200 turns one at a time, then 200 turns from
 * 10 concurrent clients; every turn asks one of 24 questions in rotation and
 * starts a new conversation. Prints the figures and a PASS/FAIL line against
 * the target; exits 0 whatever they are (non-zero only if a turn fails).
 */
import { cpus, totalmem } from 'node:os';
import { createSql, type Sql } from '../functions/_shared/db.ts';
import { startOpenAiStub } from '../tests/support/openai-stub.ts';
import { type BenchTenant, PAGES_PER_DOCUMENT, QUESTIONS, seedBenchData } from './bench/chat-data.ts';
import { completionsTurn, percentile, type RunResult, runTurns, type Turn, webChatTurn } from './bench/chat-load.ts';
import { startFunctionsServer } from './local/functions-server.ts';
import { ROOT_DIR, type Stack, startStack } from './local/stack.ts';

const WARM_UP = 10;
const REQUESTS = 200;
const CLIENTS = 10;
const TARGET_P95_MS = 100;
const OPENAI_FIRST_TOKEN_PROMISE_MS = 4000;
/** Members to spread the SSE turns over: a signed-in user may chat 60 times a minute. */
const MEMBERS = 20;
const OTHER_ORGS = 3;

interface Row {
  path: string;
  provider: string;
  clients: number;
  result: RunResult;
  /** How many turns had sources to answer from, and how that was seen. */
  grounded: string;
}

const question = (index: number) => QUESTIONS[index % QUESTIONS.length];

/** Warm-up, then the sequential and the concurrent run of one path; `grounded` reads the run's evidence of retrieval. */
async function measure(
  path: string,
  provider: string,
  turn: Turn,
  grounded: (result: RunResult) => string,
  before: () => void = () => undefined,
): Promise<Row[]> {
  console.log(`  ${path}, ${provider}: ${WARM_UP} warm-up, ${REQUESTS} sequential, ${REQUESTS} from ${CLIENTS} clients`);
  await runTurns(turn, WARM_UP, 1);
  const rows: Row[] = [];
  let index = WARM_UP;
  for (const clients of [1, CLIENTS]) {
    before();
    const result = await runTurns(turn, REQUESTS, clients, index);
    index += REQUESTS;
    rows.push({ path, provider, clients, result, grounded: grounded(result) });
  }
  return rows;
}

const cited = (result: RunResult) =>
  `${result.timings.filter((timing) => timing.cited).length}/${result.timings.length} cite a source`;

async function offlineRows(stack: Stack, tenant: BenchTenant): Promise<Row[]> {
  const functionsUrl = `${stack.apiUrl}/functions/v1`;
  const sse = webChatTurn({
    functionsUrl,
    botId: tenant.offlineBot.id,
    token: (index) => tenant.memberTokens[index % tenant.memberTokens.length],
    question,
  });
  const completions = completionsTurn({ functionsUrl, apiKey: tenant.apiKey, model: tenant.offlineBot.slug, question });
  return [
    ...(await measure('SSE /chat', 'offline', sse, cited)),
    ...(await measure('chat/completions', 'offline', completions, cited)),
  ];
}

/** Path 3: a second functions runtime on the same database, its OpenAI calls answered by the local stub. */
async function openAiStubRows(stack: Stack, tenant: BenchTenant): Promise<Row[]> {
  const stub = await startOpenAiStub();
  const logs: string[] = [];
  const functions = await startFunctionsServer({
    port: 0,
    rootDir: ROOT_DIR,
    env: {
      SUPABASE_DB_URL: stack.dbUrl,
      SUPABASE_ANON_KEY: stack.keys.anonKey,
      SUPABASE_SERVICE_ROLE_KEY: stack.keys.serviceRoleKey,
      SUPABASE_JWT_SECRET: stack.keys.jwtSecret,
      OPENAI_API_KEY: 'sk-bench-local-stub',
      OPENAI_BASE_URL: stub.baseURL,
    },
    log: (line) => logs.push(line),
  });
  try {
    const turn = completionsTurn({
      functionsUrl: `${functions.url}/functions/v1`,
      apiKey: tenant.apiKey,
      model: tenant.openAiBot.slug,
      question,
    });
    // The stub keeps every prompt: one whose system message lists sources had retrieval's results.
    const withSources = (result: RunResult) => {
      const prompts = stub.chatRequests.map((request) => String(request.messages[0]?.content ?? ''));
      const grounded = prompts.filter((prompt) => prompt.includes('Sources:\n\n[1]')).length;
      return `${grounded}/${result.timings.length} prompts with sources (${stub.chatRequests.length} completions, ` +
        `${stub.requests.length} embeddings)`;
    };
    return await measure('chat/completions', 'OpenAI-wire stub', turn, withSources, () => stub.reset());
  } catch (error) {
    for (const line of logs.slice(-20)) console.error(`[functions] ${line}`);
    throw error;
  } finally {
    await functions.stop();
    await stub.close();
  }
}

const ms = (value: number) => value.toFixed(1);

function printTable(rows: Row[]): void {
  const header = [
    'path',
    'provider',
    'clients',
    'first token p50',
    'p95',
    'max',
    'last token p50',
    'p95',
    'stream end p50',
    'req/s',
    'retrieval',
  ];
  const lines = rows.map((row) => {
    const first = row.result.timings.map((timing) => timing.firstToken);
    const last = row.result.timings.map((timing) => timing.lastToken);
    const end = row.result.timings.map((timing) => timing.end);
    return [
      row.path,
      row.provider,
      String(row.clients),
      ms(percentile(first, 50)),
      ms(percentile(first, 95)),
      ms(Math.max(...first)),
      ms(percentile(last, 50)),
      ms(percentile(last, 95)),
      ms(percentile(end, 50)),
      (row.result.timings.length / row.result.seconds).toFixed(1),
      row.grounded,
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column].length)));
  const format = (cells: string[]) =>
    cells.map((cell, column) => (column < 2 || column === cells.length - 1 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])))
      .join('  ').trimEnd();
  console.log(format(header));
  console.log(widths.map((width) => '-'.repeat(width)).join('  '));
  for (const line of lines) console.log(format(line));
  console.log('(times in ms from sending the request; req/s = turns / wall time of the run)');
}

function verdict(rows: Row[]): void {
  const offline = rows.filter((row) => row.provider === 'offline' && row.clients === 1);
  const checks = offline.map((row) => {
    const p95 = percentile(row.result.timings.map((timing) => timing.firstToken), 95);
    return { label: `${row.path} ${ms(p95)} ms`, pass: p95 < TARGET_P95_MS };
  });
  const pass = checks.every((check) => check.pass);
  console.log(
    `${pass ? 'PASS' : 'FAIL'}: first token p95 under ${TARGET_P95_MS} ms, offline provider, one client at a time (` +
      `${checks.map((check) => `${check.label} ${check.pass ? 'pass' : 'FAIL'}`).join('; ')})`,
  );
  const stub = rows.find((row) => row.provider === 'OpenAI-wire stub' && row.clients === 1);
  if (stub) {
    const p95 = percentile(stub.result.timings.map((timing) => timing.firstToken), 95);
    console.log(
      `with an OpenAI-wire server that answers at once, first token p95 ${ms(p95)} ms = ` +
        `${((p95 / OPENAI_FIRST_TOKEN_PROMISE_MS) * 100).toFixed(1)}% of the ${OPENAI_FIRST_TOKEN_PROMISE_MS / 1000} s ` +
        `first-token promise made with OpenAI`,
    );
  }
}

/** Why the org is on the business plan: what these turns metered against the free plan's allowance. */
async function printTokenUse(sql: Sql, tenant: BenchTenant): Promise<void> {
  const [usage] = await sql<{ turns: number; tokens: number; free: number }[]>`
    select count(*)::int as turns, coalesce(sum(tokens_in + tokens_out), 0)::int as tokens,
           (select monthly_chat_tokens::int from public.plans where id = 'free') as free
    from public.usage_events where org_id = ${tenant.org.id} and kind = 'chat'`;
  const perTurn = usage.tokens / Math.max(1, usage.turns);
  console.log(
    `chat tokens metered: ${usage.tokens.toLocaleString('en')} over ${usage.turns} turns (${perTurn.toFixed(0)} a turn); ` +
      `the free plan's ${usage.free.toLocaleString('en')} a month would last ${Math.floor(usage.free / perTurn)} such turns`,
  );
}

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(
    `chat turn latency — ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown'}), ` +
      `${(totalmem() / 1024 ** 3).toFixed(0)} GB, Node ${process.version}; Postgres is PGlite (WASM, one session lent to ` +
      `one connection at a time) in this process, behind the wire server; the functions run in Deno behind the local ` +
      `gateway (also this process); clients and the OpenAI-wire stub run in this process too`,
  );
  const stack = await startStack({ dbPort: 0, apiPort: 0, functions: true, scheduler: false, log: () => undefined });
  const sql = createSql(stack.dbUrl, { max: 2 });
  try {
    const seeding = performance.now();
    const tenant = await seedBenchData(sql, { members: MEMBERS, otherOrgs: OTHER_ORGS });
    const [{ total }] = await sql<{ total: number }[]>`select count(*)::int as total from public.document_chunks`;
    console.log(
      `seeded in ${((performance.now() - seeding) / 1000).toFixed(1)} s: the measured org holds ${tenant.chunks} chunks ` +
        `(${tenant.chunks / PAGES_PER_DOCUMENT} documents × ${PAGES_PER_DOCUMENT} pages, lexical embeddings) and ` +
        `${tenant.products} products; ${total} chunks in all (${OTHER_ORGS} other orgs); ${tenant.memberTokens.length} ` +
        `members; the org on the business plan; the API key allowed 10,000 requests a minute`,
    );
    const rows = [...(await offlineRows(stack, tenant)), ...(await openAiStubRows(stack, tenant))];
    console.log('');
    printTable(rows);
    console.log('');
    verdict(rows);
    await printTokenUse(sql, tenant);
  } finally {
    await sql.end({ timeout: 1 });
    await stack.stop();
  }
}

await main();
