import type { PGlite } from '@electric-sql/pglite';
import type { JwtClaims } from '../../functions/_shared/auth.ts';
import { createSql, type Sql, type TransactionSql, withUserScope } from '../../functions/_shared/db.ts';
import { toPgDirection, toPgVector } from '../../functions/_shared/embeddings/index.ts';
import { startStack } from '../local/stack.ts';

/**
 * Retrieval bench (part of `npm run bench:rag`). The issue asks for:
 * - 100,000 chunks (1536 dimensions) spread over 20 orgs; for one org, p50 and
 *   p95 latency of public.match_document_chunks and recall@10 against an exact
 *   (sequential) scan of the same org; targets recall@10 >= 0.95 and a p95 at
 *   least 10x faster than the exact scan;
 * - filtered search keeping its recall when the org holds a small share of
 *   all chunks (here 1.5%). public.document_chunks is partitioned by org, each
 *   partition with its own HNSW graph (migration 20261123001000), so a search
 *   walks the org's own graph and no org filter is left to cost recall.
 *
 * Everything runs on a throwaway embedded stack (PGlite, WASM). The vectors are
 * synthetic but clustered like real embeddings: a mean direction every
 * embedding shares, a style direction per org, topics drawn from a pool that
 * several orgs share, a per-topic latent subspace and isotropic noise, all
 * from a seeded PRNG. Queries are new samples of the org's topics without the
 * org's style. Org sizes are skewed: a small org (1.5%), a large one (25%),
 * 18 of about 4% each; all three kinds are measured.
 *
 * Searches run as a member of the org through the wire server in a transaction
 * like the edge functions' withUserScope (RLS applies); the time is the search
 * statement's round trip. Ground truth is the same query with index scans off
 * (HNSW cannot serve a bitmap scan, so the result is exact); "exact:
 * sequential scan" reads the org's partition in full and sorts. Besides the
 * function as deployed, the HNSW index is measured on its own (forced), with
 * iterative scans relaxed, strict and off and several ef_search values. Last,
 * the graphs' recall without any filter, over all orgs, as the service role.
 *
 * Environment: RAG_BENCH_CHUNKS (default 100000), RAG_BENCH_QUERIES (100),
 * RAG_BENCH_INDEX_WITH (e.g. "m = 24, ef_construction = 128": build the index
 * with other parameters than the migration's, to compare).
 */

const DIM = 1536;
const TOTAL_CHUNKS = positiveInt(process.env.RAG_BENCH_CHUNKS, 100_000);
const QUERIES = positiveInt(process.env.RAG_BENCH_QUERIES, 100);
const WARM_UP = 5;
const ORGS = 20;
/** Org 0, the small tenant: its share of all chunks (the filtered-recall case). */
const SMALL_SHARE = 0.015;
/** Org 1, the large tenant; orgs 2..19 share the rest evenly (about 4% each). */
const LARGE_SHARE = 0.25;
/** The orgs measured: small, typical, large. */
const MEASURED = [
  { org: 0, label: 'small' },
  { org: 2, label: 'typical' },
  { org: 1, label: 'large' },
];
const CHUNKS_PER_DOCUMENT = 50;
/**
 * Collections of the large org, for the collection filter (a bot answering
 * from its collections): one of every 50th document (2% of the org's chunks,
 * the hard case for a filtered graph walk) and one of every other (50%).
 */
const COLLECTIONS = [
  { name: 'rare', every: 50 },
  { name: 'half', every: 2 },
];
const COLLECTION_ORG = 1;
const TOPIC_POOL = 64;
const TOPICS_PER_ORG = 8;
const LATENT = 24;
const MATCH_COUNT = 10;
/** match_document_chunks takes match_count * 4 vector candidates before fusing. */
const CANDIDATES = MATCH_COUNT * 4;
const TARGET_RECALL = 0.95;
const TARGET_SPEED_UP = 10;
/** For the HNSW build; PGlite's default (64 MB) holds about 10,000 of these vectors. */
const BUILD_MEMORY = '1GB';
const INDEX_WITH = process.env.RAG_BENCH_INDEX_WITH?.trim() || null;
/** PGlite's WASM memory cannot grow past this. */
const WASM_LIMIT_BYTES = 2 * 1024 ** 3;
const SEED = 20261123;

function positiveInt(value: string | undefined, fallback: number): number {
  const parsed = Number(value);
  return Number.isInteger(parsed) && parsed > 0 ? parsed : fallback;
}

// ---------------------------------------------------------------------------
// Synthetic embeddings
// ---------------------------------------------------------------------------

/** mulberry32: small, fast, seeded. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples (Box-Muller) from a uniform source. */
function normal(uniform: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const value = spare;
      spare = null;
      return value;
    }
    let u = 0;
    while (u === 0) u = uniform();
    const radius = Math.sqrt(-2 * Math.log(u));
    const angle = 2 * Math.PI * uniform();
    spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
}

function randomUnit(gauss: () => number): Float64Array {
  const v = new Float64Array(DIM);
  for (let i = 0; i < DIM; i++) v[i] = gauss();
  return normalise(v);
}

function normalise(v: Float64Array): Float64Array {
  let norm = 0;
  for (let i = 0; i < DIM; i++) norm += v[i] * v[i];
  norm = Math.sqrt(norm);
  for (let i = 0; i < DIM; i++) v[i] /= norm;
  return v;
}

/** Weights of the parts of an embedding (each part is about unit length). */
const WEIGHT = { mean: 0.3, org: 0.3, topic: 0.5, latent: 0.6, noise: 0.35 };

export class Corpus {
  private readonly uniform: () => number;
  private readonly gauss: () => number;
  private readonly mean: Float64Array;
  private readonly orgStyle: Float64Array[];
  private readonly topics: Float64Array[];
  /** Per topic, LATENT unit directions spanning its sub-topics. */
  private readonly latent: Float64Array[][];
  /** The topics each org writes about (indexes into the pool). */
  readonly orgTopics: number[][];

  constructor(seed: number) {
    const uniform = prng(seed);
    this.uniform = uniform;
    this.gauss = normal(uniform);
    this.mean = randomUnit(this.gauss);
    this.orgStyle = Array.from({ length: ORGS }, () => randomUnit(this.gauss));
    this.topics = Array.from({ length: TOPIC_POOL }, () => randomUnit(this.gauss));
    this.latent = this.topics.map(() => Array.from({ length: LATENT }, () => randomUnit(this.gauss)));
    this.orgTopics = Array.from({ length: ORGS }, () => {
      const chosen = new Set<number>();
      while (chosen.size < TOPICS_PER_ORG) chosen.add(Math.floor(uniform() * TOPIC_POOL));
      return [...chosen];
    });
  }

  /** A document's topic: one of the org's, picked by the PRNG. */
  pickTopic(org: number): number {
    const topics = this.orgTopics[org];
    return topics[Math.floor(this.uniform() * topics.length)];
  }

  /** A chunk (with the org's style) or a query (org = null) about a topic. */
  sample(org: number | null, topic: number): Float32Array {
    const v = new Float64Array(DIM);
    const noiseScale = WEIGHT.noise / Math.sqrt(DIM);
    for (let i = 0; i < DIM; i++) {
      v[i] = WEIGHT.mean * this.mean[i] + WEIGHT.topic * this.topics[topic][i] + noiseScale * this.gauss();
    }
    if (org !== null) {
      for (let i = 0; i < DIM; i++) v[i] += WEIGHT.org * this.orgStyle[org][i];
    }
    for (const direction of this.latent[topic]) {
      const z = (WEIGHT.latent * this.gauss()) / Math.sqrt(LATENT);
      for (let i = 0; i < DIM; i++) v[i] += z * direction[i];
    }
    return Float32Array.from(normalise(v));
  }
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

export const orgId = (org: number): string => `5a6b0000-0000-4000-9000-${String(org + 1).padStart(12, '0')}`;
const collectionId = (index: number): string => `5a6b0000-0000-4000-b000-${String(index + 1).padStart(12, '0')}`;
/** The collection a document belongs to (the rarest that takes it), or null. */
function collectionOf(org: number, doc: number): string | null {
  if (org !== COLLECTION_ORG) return null;
  const index = COLLECTIONS.findIndex(({ every }) => doc % every === 0);
  return index < 0 ? null : collectionId(index);
}
const documentId = (org: number, doc: number): string =>
  `5a6b0000-0000-4000-a${String(org).padStart(3, '0')}-${String(doc).padStart(12, '0')}`;
export const memberId = (org: number): string => `5a6b0000-0000-4000-8000-${String(org + 1).padStart(12, '0')}`;

/** Org 0 holds SMALL_SHARE of the chunks, org 1 LARGE_SHARE, the others share the rest evenly. */
export function chunksPerOrg(total: number): number[] {
  const small = Math.max(CHUNKS_PER_DOCUMENT, Math.round(total * SMALL_SHARE));
  const large = Math.round(total * LARGE_SHARE);
  const rest = total - small - large;
  const others = ORGS - 2;
  const evenShare = (org: number) => Math.floor(rest / others) + (org - 2 < rest % others ? 1 : 0);
  return Array.from({ length: ORGS }, (_, org) => (org === 0 ? small : org === 1 ? large : evenShare(org)));
}

const TOPIC_WORDS = (
  'opening hours|refund policy|delivery times|parking|warranty|pricing|membership|returns|' +
  'appointments|allergens|invoices|accessibility|gift cards|privacy|shipping|support'
).split('|');

function uuidBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

/**
 * PostgreSQL's binary COPY format: about 7x faster than INSERT with vector
 * literals here, since PGlite then parses no floats.
 */
class BinaryCopy {
  private readonly parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)];

  row(
    org: string,
    doc: string,
    collection: string | null,
    chunkIndex: number,
    page: number,
    content: string,
    embedding: Float32Array,
  ): void {
    const text = Buffer.from(content, 'utf8');
    const row = Buffer.alloc(2 + 3 * 20 + 3 * 8 + 4 + text.length + 8 + 8 + 4 * DIM);
    let o = row.writeInt16BE(9, 0);
    for (const id of [org, doc, collection]) {
      if (id === null) {
        o = row.writeInt32BE(-1, o);
        continue;
      }
      o = row.writeInt32BE(16, o);
      o += uuidBytes(id).copy(row, o);
    }
    for (const value of [chunkIndex, page, page]) {
      o = row.writeInt32BE(4, o);
      o = row.writeInt32BE(value, o);
    }
    o = row.writeInt32BE(text.length, o);
    o += text.copy(row, o);
    o = row.writeInt32BE(4, o);
    o = row.writeInt32BE(Math.ceil(text.length / 4), o);
    // pgvector's binary form: dimensions (int16), unused (int16), float4 values.
    o = row.writeInt32BE(4 + 4 * DIM, o);
    o = row.writeInt16BE(DIM, o);
    o = row.writeInt16BE(0, o);
    for (const x of embedding) o = row.writeFloatBE(x, o);
    this.parts.push(row.subarray(0, o));
  }

  blob(): Blob {
    const trailer = Buffer.alloc(2);
    trailer.writeInt16BE(-1);
    return new Blob([Buffer.concat([...this.parts, trailer])]);
  }
}

const COPY_SQL =
  `copy public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
  from '/dev/blob' with (format binary)`;

interface Stage {
  label: string;
  seconds: number;
  wasmMb: number;
  rssMb: number;
}

function wasmBytes(db: PGlite): number {
  // PGlite exposes its Emscripten module, but not in its public types.
  const module = (db as unknown as { Module?: { wasmMemory?: WebAssembly.Memory } }).Module;
  return module?.wasmMemory?.buffer.byteLength ?? Number.NaN;
}

export async function load(db: PGlite, corpus: Corpus, sizes: number[], log: (stage: Stage) => void): Promise<string> {
  const stage = (label: string, started: number) =>
    log({
      label,
      seconds: (performance.now() - started) / 1000,
      wasmMb: wasmBytes(db) / 1e6,
      rssMb: process.memoryUsage().rss / 1e6,
    });

  let started = performance.now();
  const orgs = sizes.map((_, org) => org);
  const users = orgs.map((org) =>
    `('${memberId(org)}', '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated', ` +
    `'member${org}@rag-bench.test', '{}', '{}', now(), now())`
  );
  const organizations = orgs.map((org) => `('${orgId(org)}', 'RAG bench ${org}', 'rag-bench-${org}')`);
  const memberships = orgs.map((org) => `('${orgId(org)}', '${memberId(org)}', 'member')`);
  const documents = orgs.flatMap((org) =>
    Array.from({ length: Math.ceil(sizes[org] / CHUNKS_PER_DOCUMENT) }, (_, doc) => {
      const chunks = Math.min(CHUNKS_PER_DOCUMENT, sizes[org] - doc * CHUNKS_PER_DOCUMENT);
      const id = documentId(org, doc);
      const name = `doc-${doc}.pdf`;
      const path = `${orgId(org)}/${id}/${name}`;
      const collection = collectionOf(org, doc);
      return `('${id}', '${orgId(org)}', ${collection ? `'${collection}'` : 'null'}, '${name}', 'application/pdf', 100000, '${path}', 'ready', 100, ${chunks})`;
    })
  );
  await db.exec(`
    begin;
    insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values ${users.join(',\n')};
    insert into public.organizations (id, name, slug) values ${organizations.join(',\n')};
    insert into public.memberships (org_id, user_id, role) values ${memberships.join(',\n')};
    -- Room for the large org's 500 documents (a new org's Free plan holds 50).
    update public.subscriptions s set plan_id = 'business'
    from public.organizations o where o.id = s.org_id and o.slug like 'rag-bench-%' and s.status = 'active';
    insert into public.collections (id, org_id, name)
    values ${COLLECTIONS.map(({ name }, index) => `('${collectionId(index)}', '${orgId(COLLECTION_ORG)}', '${name}')`).join(', ')};
    insert into public.documents (id, org_id, collection_id, name, mime_type, size_bytes, storage_path, status, progress, chunk_count)
    values ${documents.join(',\n')};
    commit;`);
  stage('orgs, members, documents', started);

  // Bulk-loading and then building the index is how pgvector recommends
  // loading; the index is rebuilt from its own definition, unchanged.
  const [{ indexdef }] = (await db.query<{ indexdef: string }>(
    `select indexdef from pg_indexes where schemaname = 'public' and indexname = 'document_chunks_embedding_idx'`,
  )).rows;
  await db.exec('drop index public.document_chunks_embedding_idx');

  started = performance.now();
  const BATCH = 2000;
  let copy = new BinaryCopy();
  let pending = 0;
  for (let org = 0; org < sizes.length; org++) {
    let topic = 0;
    for (let chunk = 0; chunk < sizes[org]; chunk++) {
      const doc = Math.floor(chunk / CHUNKS_PER_DOCUMENT);
      const index = chunk % CHUNKS_PER_DOCUMENT;
      if (index === 0) topic = corpus.pickTopic(org);
      const words = TOPIC_WORDS[topic % TOPIC_WORDS.length];
      copy.row(
        orgId(org),
        documentId(org, doc),
        collectionOf(org, doc),
        index,
        1 + Math.floor(index / 5),
        `Org ${org}, ${words}, part ${chunk}: synthetic chunk text about topic ${topic}.`,
        corpus.sample(org, topic),
      );
      if (++pending === BATCH) {
        await db.query(COPY_SQL, [], { blob: copy.blob() });
        copy = new BinaryCopy();
        pending = 0;
      }
    }
  }
  if (pending > 0) await db.query(COPY_SQL, [], { blob: copy.blob() });
  stage(`${TOTAL_CHUNKS.toLocaleString('en')} chunks (binary COPY)`, started);

  started = performance.now();
  // pg_indexes shows a partitioned index as "ON ONLY", which would build it for the parent alone.
  const recursive = indexdef.replace(' ON ONLY ', ' ON ');
  const definition = INDEX_WITH ? `${recursive.replace(/ WITH \(.*\)$/, '')} with (${INDEX_WITH})` : recursive;
  await db.exec(`set maintenance_work_mem = '${BUILD_MEMORY}'; ${definition}; reset maintenance_work_mem;`);
  stage(`HNSW build (maintenance_work_mem ${BUILD_MEMORY})`, started);

  started = performance.now();
  await db.exec('analyze public.documents, public.document_chunks');
  stage('analyze', started);
  return definition;
}

// ---------------------------------------------------------------------------
// Searches
// ---------------------------------------------------------------------------

interface Variant {
  name: string;
  /** Transaction-local settings before the search. */
  settings: Record<string, string>;
  /** The search; $1 org id, $2 query vector. Returns chunk ids, nearest first. */
  sql: string;
  /** $2 is the query's direction as integers (toPgDirection), as the chat function passes it; else pgvector's text. */
  direction?: boolean;
  /** Whether the search is exact (the ground truth). */
  exact?: boolean;
  /** Not a search: the floor any search pays (no recall). */
  floor?: boolean;
  /**
   * A hybrid search: $3 is a question about the query's topic, as the chat
   * function passes the user's message; its ranking fuses the text half, so
   * no recall against the vector-only exact scan is shown.
   */
  text?: 'question' | 'common words' | 'rare word';
}

const TEXT_PARAM = '$2::extensions.vector';
const DIRECTION_PARAM = '$2::integer[]::extensions.vector';

/** The vector part of match_document_chunks, run outside it to vary its settings. */
const innerSearch = (limit: number) =>
  `select id as chunk_id from public.document_chunks where org_id = $1
   order by embedding operator(extensions.<=>) ${DIRECTION_PARAM} limit ${limit}`;

/**
 * The exact search: ordering by an expression no index provides forces every
 * distance to be computed and sorted, whatever the enable_* settings (with
 * partitions, Postgres 18 would otherwise still walk the HNSW index, flagged
 * "Disabled", when asked not to).
 */
const exactSearch = (limit: number, param: string) =>
  `select id as chunk_id from public.document_chunks where org_id = $1
   order by (embedding operator(extensions.<=>) ${param}) + 0 limit ${limit}`;

/**
 * Settings that make Postgres walk the HNSW index: a plan through the org_id
 * B-tree (or a sequential scan) needs a sort by distance; the HNSW scan does not.
 */
const HNSW_ONLY = { enable_sort: 'off', enable_bitmapscan: 'off', enable_seqscan: 'off' };

/** Iterative scan modes and ef_search values for the HNSW index on its own. */
const HNSW_CASES = [
  { mode: 'relaxed_order', ef: '40' },
  { mode: 'relaxed_order', ef: '100' },
  { mode: 'relaxed_order', ef: '200' },
  { mode: 'strict_order', ef: '100' },
  { mode: 'off', ef: '100' },
  { mode: 'off', ef: '40' },
];

const VARIANTS: Variant[] = [
  {
    // Parsing the query vector's 1536 floats from text takes about 2.5 ms in
    // PGlite's WASM build; the same direction as integers about 0.4 ms.
    name: 'floor: vector as text',
    settings: {},
    sql: `select $1::uuid, ${TEXT_PARAM} is not null`,
    floor: true,
  },
  {
    name: 'floor: direction as integers',
    settings: {},
    sql: `select $1::uuid, ${DIRECTION_PARAM} is not null`,
    direction: true,
    floor: true,
  },
  {
    name: 'match_document_chunks',
    settings: {},
    sql: `select chunk_id from public.match_document_chunks($1, ${DIRECTION_PARAM}, null, ${MATCH_COUNT})`,
    direction: true,
  },
  {
    name: 'hybrid: a question',
    settings: {},
    sql: `select chunk_id from public.match_document_chunks($1, ${DIRECTION_PARAM}, $3, ${MATCH_COUNT})`,
    direction: true,
    text: 'question',
  },
  {
    // "about" and "topic" are in every chunk of the synthetic corpus, as a
    // business's name is in most of its documents.
    name: 'hybrid: words in every chunk',
    settings: {},
    sql: `select chunk_id from public.match_document_chunks($1, ${DIRECTION_PARAM}, $3, ${MATCH_COUNT})`,
    direction: true,
    text: 'common words',
  },
  {
    // A word one chunk holds (a part number), with words every chunk holds:
    // the text half ranks that one chunk.
    name: 'hybrid: a rare word',
    settings: {},
    sql: `select chunk_id from public.match_document_chunks($1, ${DIRECTION_PARAM}, $3, ${MATCH_COUNT})`,
    direction: true,
    text: 'rare word',
  },
  {
    // The ground truth: the query's own floats.
    name: 'exact: sequential scan',
    settings: { enable_indexscan: 'off', enable_bitmapscan: 'off' },
    sql: exactSearch(MATCH_COUNT, TEXT_PARAM),
    exact: true,
  },
  {
    // The baseline of the speed-up: the same parameter as the function's.
    name: 'exact: sequential, integers',
    settings: { enable_indexscan: 'off', enable_bitmapscan: 'off' },
    sql: exactSearch(MATCH_COUNT, DIRECTION_PARAM),
    direction: true,
    exact: true,
  },
  {
    name: 'exact: org index + sort',
    settings: { enable_seqscan: 'off' },
    sql: exactSearch(MATCH_COUNT, DIRECTION_PARAM),
    direction: true,
    exact: true,
  },
  ...HNSW_CASES.map(({ mode, ef }): Variant => ({
    name: `HNSW ${mode === 'off' ? 'iterative off' : mode}, ef ${ef}`,
    settings: { ...HNSW_ONLY, 'hnsw.iterative_scan': mode, 'hnsw.ef_search': ef },
    sql: innerSearch(CANDIDATES),
    direction: true,
  })),
];

/** A query as both parameters: pgvector's text and the direction as integers. */
interface Query {
  vector: string;
  direction: string;
  topic: number;
  /** A chunk's number in its org of at least 4 digits ("part 1234"): a word only that chunk holds. */
  part: number;
}

function textOf(variant: Variant, query: Query): string[] {
  const words = TOPIC_WORDS[query.topic % TOPIC_WORDS.length];
  if (variant.text === 'question') return [`When are your ${words}?`];
  if (variant.text === 'common words') return [`${words}: tell me about this topic`];
  if (variant.text === 'rare word') return [`What does part ${query.part} say about this topic?`];
  return [];
}

const paramOf = (variant: Variant, query: Query): string => (variant.direction ? query.direction : query.vector);

function claimsFor(org: number): JwtClaims {
  return { sub: memberId(org), role: 'authenticated', aud: 'authenticated', exp: Math.floor(Date.now() / 1000) + 3600 };
}

/**
 * Applies a variant's settings before its search. With none, still one round
 * trip: withUserScope pipelines its claims statement with the first one that
 * follows, so without it a search's time would include the claims' execution
 * (about 0.4 ms here) while a variant with settings would not.
 */
async function applySettings(tx: TransactionSql, settings: Record<string, string>): Promise<void> {
  const entries = Object.entries(settings);
  if (entries.length === 0) {
    await tx`select 1`;
    return;
  }
  await tx.unsafe(
    `select ${entries.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(', ')}`,
    entries.flat(),
  );
}

/** Runs one search as the org's member; returns the ids and the search statement's time. */
async function search(sql: Sql, org: number, variant: Variant, query: Query): Promise<{ ids: number[]; ms: number }> {
  return withUserScope(sql, claimsFor(org), async (tx) => {
    await applySettings(tx, variant.settings);
    const started = performance.now();
    const rows = await tx.unsafe<{ chunk_id: string }[]>(variant.sql, [orgId(org), paramOf(variant, query), ...textOf(variant, query)]);
    const ms = performance.now() - started;
    return { ids: rows.slice(0, MATCH_COUNT).map((row) => Number(row.chunk_id)), ms };
  });
}

/** The scans of document_chunks in an EXPLAIN (FORMAT JSON) result. */
function scansOf(explained: unknown): string {
  const plan = (typeof explained === 'string' ? JSON.parse(explained) : explained) as Array<
    { Plan: Record<string, unknown> }
  >;
  const scans: string[] = [];
  const walk = (node: Record<string, unknown>) => {
    const type = String(node['Node Type']);
    if (/Scan/.test(type) && String(node['Relation Name']).startsWith('document_chunks')) {
      scans.push(node['Index Name'] ? `${type} on ${String(node['Index Name'])}` : type);
    }
    for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
  };
  walk(plan[0].Plan);
  return scans.join(' + ') || 'no scan of document_chunks';
}

/**
 * The scans Postgres picks for a variant, as the member. For
 * match_document_chunks, those of its vector query with the function's
 * settings, planned for these values (custom plan) and, as PL/pgSQL may reuse
 * after five calls, for any org (generic plan).
 */
async function planOf(sql: Sql, org: number, variant: Variant, query: Query): Promise<string> {
  if (variant.text) return 'both halves (see match_document_chunks)';
  const isMatch = variant.name === 'match_document_chunks';
  const settings = isMatch ? { ...HNSW_ONLY, 'hnsw.iterative_scan': 'off', 'hnsw.ef_search': '40' } : variant.settings;
  const text = isMatch ? innerSearch(CANDIDATES) : variant.sql;
  return withUserScope(sql, claimsFor(org), async (tx) => {
    await applySettings(tx, settings);
    const [custom] = await tx.unsafe<{ 'QUERY PLAN': unknown }[]>(`explain (format json) ${text}`, [
      orgId(org),
      isMatch ? query.direction : paramOf(variant, query),
    ]);
    if (!isMatch) return scansOf(custom['QUERY PLAN']);
    await tx.unsafe(`prepare rag_bench_plan (uuid, integer[]) as ${text}`);
    await tx.unsafe(`set local plan_cache_mode = force_generic_plan`);
    const [generic] = await tx.unsafe<{ 'QUERY PLAN': unknown }[]>(
      `explain (format json) execute rag_bench_plan ('${orgId(org)}', '${query.direction}')`,
    );
    await tx.unsafe('deallocate rag_bench_plan');
    return `custom: ${scansOf(custom['QUERY PLAN'])}; generic: ${scansOf(generic['QUERY PLAN'])}`;
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

interface Result {
  variant: Variant;
  p50: number;
  p95: number;
  recall: number;
  /** Queries that got fewer than MATCH_COUNT rows. */
  short: number;
  plan: string;
}

async function measureOrg(sql: Sql, corpus: Corpus, org: number): Promise<Result[]> {
  const queries = Array.from({ length: WARM_UP + QUERIES }, (_, i): Query => {
    const topics = corpus.orgTopics[org];
    const v = Array.from(corpus.sample(null, topics[i % topics.length]));
    const part = 1000 + ((i * 7919) % Math.max(1, chunksPerOrg(TOTAL_CHUNKS)[org] - 1000));
    return { vector: toPgVector(v), direction: toPgDirection(v), topic: topics[i % topics.length], part };
  });
  const times = VARIANTS.map(() => [] as number[]);
  const recalls = VARIANTS.map(() => [] as number[]);
  const short = VARIANTS.map(() => 0);
  for (let q = 0; q < queries.length; q++) {
    const results: number[][] = [];
    // Variants alternate within each query, so drift (GC, JIT) hits all alike,
    // and the first one changes from query to query: a variant run right
    // after an exact scan finds its index pages evicted from shared buffers.
    for (let step = 0; step < VARIANTS.length; step++) {
      const v = (q + step) % VARIANTS.length;
      const { ids, ms } = await search(sql, org, VARIANTS[v], queries[q]);
      results[v] = ids;
      if (q >= WARM_UP) times[v].push(ms);
    }
    if (q < WARM_UP) continue;
    const truth = new Set(results[VARIANTS.findIndex((variant) => variant.exact)]);
    for (let v = 0; v < VARIANTS.length; v++) {
      if (VARIANTS[v].floor || VARIANTS[v].text) continue;
      recalls[v].push(results[v].filter((id) => truth.has(id)).length / truth.size);
      if (results[v].length < MATCH_COUNT) short[v] += 1;
    }
  }
  const results: Result[] = [];
  for (let v = 0; v < VARIANTS.length; v++) {
    const sorted = [...times[v]].sort((a, b) => a - b);
    results.push({
      variant: VARIANTS[v],
      p50: percentile(sorted, 0.5),
      p95: percentile(sorted, 0.95),
      recall: recalls[v].reduce((a, b) => a + b, 0) / recalls[v].length,
      short: short[v],
      plan: await planOf(sql, org, VARIANTS[v], queries[WARM_UP]),
    });
  }
  // The exact paths must agree, or the ground truth is wrong (ties at rank 10 aside).
  const disagreeing = results.filter((r) => r.variant.exact && r.recall < 0.999);
  if (disagreeing.length > 0) {
    console.log(`warning: the exact searches disagree (${disagreeing.map((r) => `${r.variant.name} ${r.recall.toFixed(3)}`).join(', ')})`);
  }
  return results;
}

/**
 * The graphs' quality without any filter: recall@10 of a search over every
 * org's partition (a merge of their HNSW scans) against an exact one (as
 * postgres, no RLS).
 */
async function measureUnfiltered(sql: Sql, corpus: Corpus, queries: number): Promise<void> {
  const vectors = Array.from({ length: queries }, (_, i) => {
    const topic = corpus.orgTopics[i % ORGS][i % TOPICS_PER_ORG];
    return `[${Array.from(corpus.sample(null, topic)).join(',')}]`;
  });
  const text = (order: string) =>
    `select id from public.document_chunks order by ${order} limit ${MATCH_COUNT}`;
  const distance = 'embedding operator(extensions.<=>) $1::extensions.vector';
  const run = (settings: Record<string, string>, vector: string, exact = false) =>
    sql.begin(async (tx) => {
      await applySettings(tx, settings);
      const started = performance.now();
      const rows = await tx.unsafe<{ id: string }[]>(text(exact ? `(${distance}) + 0` : distance), [vector]);
      return { ids: rows.map((row) => Number(row.id)), ms: performance.now() - started };
    });
  const efs = ['40', '100', '200'];
  const times: number[][] = [[], ...efs.map(() => [])];
  const recalls: number[][] = efs.map(() => []);
  for (const vector of vectors) {
    const exact = await run({}, vector, true);
    times[0].push(exact.ms);
    const truth = new Set(exact.ids);
    for (let e = 0; e < efs.length; e++) {
      // Forced: at ef 200 the planner already prefers the sequential scan.
      const approx = await run({ ...HNSW_ONLY, 'hnsw.ef_search': efs[e] }, vector);
      times[e + 1].push(approx.ms);
      recalls[e].push(approx.ids.filter((id) => truth.has(id)).length / truth.size);
    }
  }
  const figures = (list: number[]) => {
    const sorted = [...list].sort((a, b) => a - b);
    return `${percentile(sorted, 0.5).toFixed(1).padStart(8)} ${percentile(sorted, 0.95).toFixed(1).padStart(8)}`;
  };
  console.log(
    `\nNo filter (index quality): ${queries} queries over all ${TOTAL_CHUNKS.toLocaleString('en')} chunks, as postgres`,
  );
  console.log(`${'search'.padEnd(30)} ${'p50 ms'.padStart(8)} ${'p95 ms'.padStart(8)}  recall@10`);
  console.log(`${'exact: sequential scan'.padEnd(30)} ${figures(times[0])}      1.000`);
  efs.forEach((ef, e) => {
    const recall = recalls[e].reduce((a, b) => a + b, 0) / recalls[e].length;
    console.log(`${`HNSW, ef ${ef}`.padEnd(30)} ${figures(times[e + 1])}  ${recall.toFixed(3).padStart(9)}`);
  });
}

/**
 * The collection filter: match_document_chunks with collection_ids, as a bot
 * answering from its collections calls it, against the exact search of the
 * same collection (ordered by an expression, through the org/collection index).
 */
async function measureCollections(sql: Sql, corpus: Corpus, org: number): Promise<void> {
  console.log(`\nCollection filter (org ${org}): ${QUERIES} queries each, as a member`);
  console.log(`${'search'.padEnd(44)} ${'chunks'.padStart(7)} ${'p50 ms'.padStart(8)} ${'p95 ms'.padStart(8)}  recall@10  <10 rows`);
  const topics = corpus.orgTopics[org];
  const queries = Array.from({ length: WARM_UP + QUERIES }, (_, i) => toPgDirection(Array.from(corpus.sample(null, topics[i % topics.length]))));
  const run = (text: string, collection: string, query: string) =>
    withUserScope(sql, claimsFor(org), async (tx) => {
      await applySettings(tx, {});
      const started = performance.now();
      const rows = await tx.unsafe<{ chunk_id: string }[]>(text, [orgId(org), query, collection]);
      return { ids: rows.map((row) => Number(row.chunk_id)), ms: performance.now() - started };
    });
  const matchSql = `select chunk_id from public.match_document_chunks($1, ${DIRECTION_PARAM}, null, ${MATCH_COUNT}, array[$3::uuid])`;
  const exactSql = `select id as chunk_id from public.document_chunks where org_id = $1 and collection_id = $3
    order by (embedding operator(extensions.<=>) ${DIRECTION_PARAM}) + 0 limit ${MATCH_COUNT}`;
  for (let index = 0; index < COLLECTIONS.length; index++) {
    const collection = collectionId(index);
    const [{ n }] = await sql.unsafe<{ n: number }[]>(
      'select count(*)::integer as n from public.document_chunks where org_id = $1 and collection_id = $2',
      [orgId(org), collection],
    );
    const times = { match: [] as number[], exact: [] as number[] };
    const recalls: number[] = [];
    let short = 0;
    for (let q = 0; q < queries.length; q++) {
      const exact = await run(exactSql, collection, queries[q]);
      const match = await run(matchSql, collection, queries[q]);
      if (q < WARM_UP) continue;
      times.exact.push(exact.ms);
      times.match.push(match.ms);
      const truth = new Set(exact.ids);
      recalls.push(match.ids.filter((id) => truth.has(id)).length / truth.size);
      if (match.ids.length < MATCH_COUNT) short += 1;
    }
    const line = (label: string, list: number[], recall: string, missing: string) => {
      const sorted = [...list].sort((a, b) => a - b);
      console.log(
        `${label.padEnd(44)} ${n.toLocaleString('en').padStart(7)} ${percentile(sorted, 0.5).toFixed(1).padStart(8)} ${
          percentile(sorted, 0.95).toFixed(1).padStart(8)
        }  ${recall.padStart(9)}  ${missing.padStart(8)}`,
      );
    };
    const name = COLLECTIONS[index].name;
    line(`match_document_chunks, collection "${name}"`, times.match, (recalls.reduce((a, b) => a + b, 0) / recalls.length).toFixed(3), String(short));
    line(`exact, collection "${name}"`, times.exact, '1.000', '0');
  }
}

interface Summary {
  label: string;
  chunks: number;
  match: Result;
  floor: Result;
  sequential: Result;
  hnsw: Result;
}

function printOrg(title: string, results: Result[]): void {
  const ms = (value: number) => value.toFixed(1).padStart(8);
  console.log(`\n${title}`);
  console.log(`${'search'.padEnd(30)} ${'p50 ms'.padStart(8)} ${'p95 ms'.padStart(8)}  recall@10  <10 rows  plan`);
  for (const r of results) {
    console.log(
      `${r.variant.name.padEnd(30)} ${ms(r.p50)} ${ms(r.p95)}  ${(r.variant.floor || r.variant.text ? '-' : r.recall.toFixed(3)).padStart(9)}  ${
        String(r.short).padStart(8)
      }  ${r.plan}`,
    );
  }
  const match = results.find((r) => r.variant.name === 'match_document_chunks')!;
  const sequential = results.find((r) => r.variant.name === 'exact: sequential, integers')!;
  const byIndex = results.find((r) => r.variant.name === 'exact: org index + sort')!;
  const speedUp = sequential.p95 / match.p95;
  console.log(
    `match_document_chunks: recall@10 ${match.recall.toFixed(3)} (target >= ${TARGET_RECALL}: ${
      match.recall >= TARGET_RECALL ? 'PASS' : 'FAIL'
    }); p95 ${speedUp.toFixed(1)}x faster than the sequential exact scan with the same parameter (target >= ${TARGET_SPEED_UP}x: ${
      speedUp >= TARGET_SPEED_UP ? 'PASS' : 'FAIL'
    }); ${(byIndex.p95 / match.p95).toFixed(1)}x faster than the exact scan through the org index`,
  );
}

function printSummary(summaries: Summary[]): void {
  const ms = (value: number) => value.toFixed(1).padStart(6);
  console.log(
    `\nSummary (p50 / p95 ms, recall@10; targets: recall >= ${TARGET_RECALL}, p95 >= ${TARGET_SPEED_UP}x faster than the exact scan)`,
  );
  console.log(
    `${'org'.padEnd(22)} ${'match_document_chunks'.padEnd(28)} ${'exact sequential scan'.padEnd(22)} ${
      'speed-up'.padEnd(9)
    } ` +
      `${'HNSW relaxed_order ef 100'.padEnd(28)} ${'speed-up'.padEnd(9)} floor p50 / p95`,
  );
  for (const s of summaries) {
    const cell = (r: Result) => `${ms(r.p50)} / ${ms(r.p95)}  ${r.recall.toFixed(3)}`;
    console.log(
      `${`${s.label} (${s.chunks.toLocaleString('en')})`.padEnd(22)} ${cell(s.match).padEnd(28)} ${
        `${ms(s.sequential.p50)} / ${ms(s.sequential.p95)}`.padEnd(22)
      } ${`${(s.sequential.p95 / s.match.p95).toFixed(1)}x`.padEnd(9)} ${cell(s.hnsw).padEnd(28)} ${
        `${(s.sequential.p95 / s.hnsw.p95).toFixed(1)}x`.padEnd(9)
      } ${ms(s.floor.p50)} / ${ms(s.floor.p95)}`,
    );
  }
}

export async function benchRetrieval(): Promise<void> {
  const sizes = chunksPerOrg(TOTAL_CHUNKS);
  const share = (org: number) => `${((100 * sizes[org]) / TOTAL_CHUNKS).toFixed(1)}%`;
  console.log(
    `RAG retrieval bench: ${TOTAL_CHUNKS.toLocaleString('en')} chunks x ${DIM} dimensions over ${ORGS} orgs on ` +
      `embedded PGlite (WASM); measured: ${
        MEASURED.map(({ org, label }) =>
          `${label} org ${org} (${sizes[org].toLocaleString('en')} chunks, ${share(org)})`
        )
          .join(', ')
      }`,
  );
  const stack = await startStack({ dbPort: 0, apiPort: 0, functions: false, scheduler: false });
  const sql = createSql(stack.dbUrl, { max: 1 });
  try {
    const corpus = new Corpus(SEED);
    console.log('\nLoading (in-process, as postgres)');
    console.log(`${'stage'.padEnd(44)} ${'seconds'.padStart(8)} ${'WASM MB'.padStart(8)} ${'RSS MB'.padStart(8)}`);
    const indexdef = await load(stack.db, corpus, sizes, (s) =>
      console.log(
        `${s.label.padEnd(44)} ${s.seconds.toFixed(1).padStart(8)} ${s.wasmMb.toFixed(0).padStart(8)} ${
          s.rssMb.toFixed(0).padStart(8)
        }`,
      ));
    // Summed over the org partitions (the parent holds no rows).
    const [sizesRow] = (await stack.db.query<{ heap: string; toast: string; hnsw: string; partitions: number }>(`
      select pg_size_pretty(sum(pg_relation_size(p.inhrelid))) as heap,
             pg_size_pretty(sum(pg_total_relation_size(p.inhrelid) - pg_indexes_size(p.inhrelid) - pg_relation_size(p.inhrelid))) as toast,
             pg_size_pretty((select sum(pg_relation_size(i.inhrelid)) from pg_inherits i
                             where i.inhparent = 'public.document_chunks_embedding_idx'::regclass)) as hnsw,
             count(*)::integer as partitions
      from pg_inherits p where p.inhparent = 'public.document_chunks'::regclass`)).rows;
    console.log(
      `sizes: ${sizesRow.partitions} org partitions, tables ${sizesRow.heap} + TOAST ${sizesRow.toast}, HNSW indexes ${sizesRow.hnsw}; ` +
        `WASM memory ${(wasmBytes(stack.db) / 1e6).toFixed(0)} of ${(WASM_LIMIT_BYTES / 1e6).toFixed(0)} MB at most`,
    );
    console.log(
      `index: ${indexdef.replace(/^CREATE INDEX \S+ ON /, '')}${
        INDEX_WITH ? " (RAG_BENCH_INDEX_WITH, not the migration's)" : " (the migration's)"
      }`,
    );

    console.log(
      `\nSearches: ${QUERIES} queries per org after ${WARM_UP} warm-up ones, as a member through the wire server ` +
        `(postgres.js, withUserScope); time of the search statement. Recall@10 against the exact result of the same org. ` +
        `"HNSW" rows force the HNSW index (enable_sort, enable_seqscan and enable_bitmapscan off), fetch ${CANDIDATES} ` +
        `candidates as the function does and keep the first ${MATCH_COUNT}. Plan: the scans Postgres picks.`,
    );
    const summaries: Summary[] = [];
    for (const { org, label } of MEASURED) {
      const results = await measureOrg(sql, corpus, org);
      printOrg(`Org ${org} (${label}): ${sizes[org].toLocaleString('en')} chunks, ${share(org)} of all`, results);
      summaries.push({
        label,
        chunks: sizes[org],
        match: results.find((r) => r.variant.name === 'match_document_chunks')!,
        floor: results.find((r) => r.variant.floor && r.variant.direction)!,
        sequential: results.find((r) => r.variant.name === 'exact: sequential, integers')!,
        hnsw: results.find((r) => r.variant.name === 'HNSW relaxed_order, ef 100')!,
      });
    }
    await measureCollections(sql, corpus, COLLECTION_ORG);
    await measureUnfiltered(sql, corpus, Math.max(10, Math.round(QUERIES / 2)));
    printSummary(summaries);
  } finally {
    await sql.end({ timeout: 1 });
    await stack.stop();
  }
}
