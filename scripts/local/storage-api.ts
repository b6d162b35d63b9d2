/**
 * The local stand-in for Supabase's Storage API (the subset this project's
 * functions and frontends use through supabase-js `storage`): upload (raw or
 * multipart, optional upsert), download, list and remove objects, and signed
 * URLs (createSignedUrl, createSignedUrls), at `/storage/v1/object/...` on the
 * API port.
 *
 * As the real service does, each request runs as the caller's role with its
 * JWT claims, so the policies on storage.objects decide; bucket limits
 * (file_size_limit, allowed_mime_types) are checked before the body is read
 * when the size is declared. Rows live in storage.objects; bytes on local disk.
 * Object keys follow the real service's rules (characters it accepts on upload).
 * Errors use the Storage API's JSON shape `{ statusCode, error, message }`.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { verifyJwt } from '../../functions/_shared/auth.ts';
import type { Sql } from '../../functions/_shared/db.ts';
import { withUserScope } from '../../functions/_shared/db.ts';
import type { EnvReader } from '../../functions/_shared/env.ts';
import { HttpError } from '../../functions/_shared/errors.ts';

export interface StorageApiOptions {
  /** postgres.js client of the local database (connects as postgres). */
  sql: Sql;
  /** Where object bytes are kept. */
  dataDir: string;
  /** Reads SUPABASE_JWT_SECRET to verify callers. */
  env: EnvReader;
  /** The service's global upload limit (Supabase's default is 50 MB). */
  maxFileSize?: number;
}

export const STORAGE_PREFIX = '/storage/v1';
// The request headers supabase-js storage sends, which a browser preflights and hosted Storage allows: besides
// the client's own (and, with tracePropagation on, the trace context), x-upsert on every POST upload,
// cache-control and content-encoding on uploads, x-metadata with a raw body's metadata. The answers it reads
// (content-type, content-length) are CORS-safelisted, so nothing more is exposed.
const STORAGE_ALLOW_HEADERS = [
  'authorization', 'x-client-info', 'apikey', 'content-type', 'x-upsert', 'cache-control', 'content-encoding',
  'x-metadata', 'traceparent', 'tracestate', 'baggage',
].join(', ');
const DEFAULT_MAX_FILE_SIZE = 50 * 1024 * 1024;

class StorageError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

function storageErrorResponse(error: unknown): Response {
  if (error instanceof StorageError) {
    return json(error.status, { statusCode: String(error.status), error: error.error, message: error.message });
  }
  if (error instanceof HttpError) {
    return json(error.status, { statusCode: String(error.status), error: error.code, message: error.message });
  }
  const code = (error as { code?: string }).code;
  if (code === '42501') {
    return json(403, { statusCode: '403', error: 'Unauthorized', message: 'new row violates row-level security policy' });
  }
  if (code === '23505') {
    return json(409, { statusCode: '409', error: 'Duplicate', message: 'The resource already exists' });
  }
  console.error('[storage]', error);
  return json(500, { statusCode: '500', error: 'internal', message: 'Internal Server Error' });
}

/** Object names as the Storage API accepts them: no empty, `.` or `..` segment, at most 1,024 characters. */
function checkObjectName(name: string): string {
  const segments = name.split('/');
  if (name.length === 0 || name.length > 1024 || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new StorageError(400, 'InvalidKey', `Invalid key: ${name}`);
  }
  return name;
}

/**
 * The characters Supabase's Storage accepts in the key of an object it
 * writes (its isValidKey; `\w` is ASCII only). Checked here too, so a name
 * that would be refused once deployed (any non-ASCII letter, `%`, `#`,
 * control characters) is refused locally as well.
 */
const UPLOADABLE_KEY = /^(\w|\/|!|-|\.|\*|'|\(|\)| |&|\$|@|=|;|:|\+|,|\?)*$/;

function checkUploadKey(name: string): string {
  if (!UPLOADABLE_KEY.test(name)) throw new StorageError(400, 'InvalidKey', `Invalid key: ${name}`);
  return name;
}

/** A path's segments, decoded; a malformed escape (`%zz`) is the client's error, as an invalid key is. */
function decodeSegments(path: string): string[] {
  try {
    return path.split('/').map(decodeURIComponent);
  } catch {
    throw new StorageError(400, 'InvalidKey', `Invalid key: ${path}`);
  }
}

export function createStorageApi(options: StorageApiOptions): (request: Request) => Promise<Response> {
  const maxFileSize = options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE;
  const filePath = (bucket: string, name: string) =>
    join(options.dataDir, encodeURIComponent(bucket), ...name.split('/').map(encodeURIComponent));

  async function caller(request: Request) {
    const header = request.headers.get('authorization');
    const token = /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1] ?? request.headers.get('apikey');
    if (!token) throw new StorageError(400, 'Error', 'headers must have required property \'authorization\'');
    try {
      return await verifyJwt(token, { env: options.env });
    } catch {
      throw new StorageError(400, 'Unauthorized', 'Invalid JWT');
    }
  }

  async function bucketLimits(bucket: string) {
    const [found] = await options.sql<{ file_size_limit: string | null; allowed_mime_types: string[] | null }[]>`
      select file_size_limit, allowed_mime_types from storage.buckets where id = ${bucket}`;
    if (!found) throw new StorageError(404, 'Bucket not found', 'Bucket not found');
    const limit = Math.min(maxFileSize, found.file_size_limit ? Number(found.file_size_limit) : maxFileSize);
    return { limit, mimeTypes: found.allowed_mime_types };
  }

  async function upload(request: Request, bucket: string, name: string, upsert: boolean): Promise<Response> {
    const claims = await caller(request);
    const { limit, mimeTypes } = await bucketLimits(bucket);
    const tooLarge = () => new StorageError(413, 'Payload too large', 'The object exceeded the maximum allowed size');
    // Refused before reading when the client declares its size, as the real service does.
    if (Number(request.headers.get('content-length') ?? 0) > limit + 64 * 1024) throw tooLarge();

    let bytes: Uint8Array;
    let contentType = request.headers.get('content-type') ?? 'application/octet-stream';
    let cacheControl = request.headers.get('cache-control') ?? 'max-age=3600';
    if (contentType.startsWith('multipart/form-data')) {
      const form = await request.formData();
      const file = [...form.values()].find((value): value is File => typeof value !== 'string');
      if (!file) throw new StorageError(400, 'Error', 'No file in the form');
      bytes = new Uint8Array(await file.arrayBuffer());
      contentType = file.type || 'application/octet-stream';
      const control = form.get('cacheControl');
      if (typeof control === 'string') cacheControl = /^\d+$/.test(control) ? `max-age=${control}` : control;
    } else {
      bytes = new Uint8Array(await request.arrayBuffer());
    }
    if (bytes.byteLength > limit) throw tooLarge();
    const mimeType = contentType.split(';')[0].trim();
    if (mimeTypes && mimeTypes.length > 0 && !mimeTypes.some((allowed) => allowed === mimeType || (allowed.endsWith('/*') && mimeType.startsWith(allowed.slice(0, -1))))) {
      throw new StorageError(415, 'invalid_mime_type', `mime type ${mimeType} is not supported`);
    }

    const metadata = {
      eTag: `"${randomUUID()}"`,
      size: bytes.byteLength,
      mimetype: mimeType,
      cacheControl,
      lastModified: new Date().toISOString(),
      contentLength: bytes.byteLength,
      httpStatusCode: 200,
    };
    const id = await withUserScope(options.sql, claims, async (tx) => {
      const owner = claims.role === 'authenticated' ? claims.sub ?? null : null;
      const rows = upsert
        ? await tx<{ id: string }[]>`
            insert into storage.objects (bucket_id, name, owner, owner_id, metadata)
            values (${bucket}, ${name}, ${owner}, ${owner}, ${tx.json(metadata)})
            on conflict (bucket_id, name) do update set metadata = excluded.metadata, owner = excluded.owner,
              owner_id = excluded.owner_id, updated_at = now()
            returning id`
        : await tx<{ id: string }[]>`
            insert into storage.objects (bucket_id, name, owner, owner_id, metadata)
            values (${bucket}, ${name}, ${owner}, ${owner}, ${tx.json(metadata)})
            returning id`;
      // The bytes are in place before the row commits, so a reader never finds a row without its file.
      const target = filePath(bucket, name);
      await mkdir(dirname(target), { recursive: true });
      const temporary = `${target}.${randomUUID()}.upload`;
      await writeFile(temporary, bytes);
      await rename(temporary, target);
      return rows[0].id;
    });
    return json(200, { Key: `${bucket}/${name}`, Id: id });
  }

  async function download(request: Request, bucket: string, name: string): Promise<Response> {
    const claims = await caller(request);
    const [found] = await withUserScope(options.sql, claims, (tx) =>
      tx<{ metadata: { mimetype?: string; eTag?: string; cacheControl?: string } | null }[]>`
        select metadata from storage.objects where bucket_id = ${bucket} and name = ${name}`
    );
    if (!found) throw new StorageError(404, 'not_found', 'Object not found');
    const bytes = await readFile(filePath(bucket, name)).catch(() => null);
    if (!bytes) throw new StorageError(404, 'not_found', 'Object not found');
    return new Response(request.method === 'HEAD' ? null : bytes, {
      status: 200,
      headers: {
        'content-type': found.metadata?.mimetype ?? 'application/octet-stream',
        'content-length': String(bytes.byteLength),
        'cache-control': found.metadata?.cacheControl ?? 'no-cache',
        etag: found.metadata?.eTag ?? '',
      },
    });
  }

  async function remove(request: Request, bucket: string): Promise<Response> {
    const claims = await caller(request);
    const body = (await request.json().catch(() => null)) as { prefixes?: unknown } | null;
    const prefixes = body?.prefixes;
    if (!Array.isArray(prefixes) || prefixes.some((p) => typeof p !== 'string') || prefixes.length > 1000) {
      throw new StorageError(400, 'Error', 'body must have required property \'prefixes\' (an array of up to 1,000 names)');
    }
    const deleted = await withUserScope(options.sql, claims, async (tx) => {
      await tx`select set_config('storage.allow_delete_query', 'true', true)`;
      return tx<{ name: string }[]>`
        delete from storage.objects where bucket_id = ${bucket} and name = any(${prefixes as string[]})
        returning id, name, bucket_id, owner, metadata, created_at, updated_at, last_accessed_at`;
    });
    await Promise.all(deleted.map((row) => rm(filePath(bucket, row.name), { force: true })));
    return json(200, deleted);
  }

  async function list(request: Request, bucket: string): Promise<Response> {
    const claims = await caller(request);
    const body = ((await request.json().catch(() => ({}))) ?? {}) as { prefix?: string; limit?: number; offset?: number; search?: string };
    const prefix = (body.prefix ?? '').replace(/\/?$/, body.prefix ? '/' : '');
    const limit = Math.min(Math.max(Number(body.limit ?? 100), 1), 1000);
    const offset = Math.max(Number(body.offset ?? 0), 0);
    const pattern = `${prefix.replace(/[\\%_]/g, '\\$&')}${(body.search ?? '').replace(/[\\%_]/g, '\\$&')}%`;
    // As hosted Storage's storage.search: the folders below the prefix first (an entry with id null, named by the
    // folder, for each holding an object the caller may read), then the objects, one page over both.
    const rows = await withUserScope(options.sql, claims, (tx) =>
      tx<{ name: string }[]>`
        select id, name, created_at, updated_at, last_accessed_at, metadata
        from (
          select null::uuid as id, split_part(substr(o.name, ${prefix.length + 1}), '/', 1) as name,
            null::timestamptz as created_at, null::timestamptz as updated_at,
            null::timestamptz as last_accessed_at, null::jsonb as metadata, 0 as kind
          from storage.objects o
          where o.bucket_id = ${bucket} and o.name like ${pattern}
            and position('/' in substr(o.name, ${prefix.length + 1})) > 0
          group by 2
          union all
          select o.id, substr(o.name, ${prefix.length + 1}), o.created_at, o.updated_at, o.last_accessed_at,
            o.metadata, 1
          from storage.objects o
          where o.bucket_id = ${bucket} and o.name like ${pattern}
            and position('/' in substr(o.name, ${prefix.length + 1})) = 0
        ) entries
        order by kind, name
        limit ${limit} offset ${offset}`
    );
    return json(200, rows);
  }

  /**
   * Signed URLs as Supabase's Storage makes them: the caller must be able to
   * read the object (policies decide, as for a download); the token is an
   * HS256 JWT signed with the project's JWT secret carrying `url`
   * (`<bucket>/<name>`), `iat` and `exp`; whoever holds the URL downloads the
   * object until `exp`, with no other credential.
   */
  function jwtSecret(): Uint8Array {
    const secret = options.env('SUPABASE_JWT_SECRET');
    if (!secret) throw new StorageError(500, 'internal', 'No JWT secret is configured');
    return new TextEncoder().encode(secret);
  }

  function expiresInFrom(body: { expiresIn?: unknown } | null): number {
    const expiresIn = Number(body?.expiresIn);
    if (!Number.isInteger(expiresIn) || expiresIn < 1) {
      throw new StorageError(400, 'Error', 'body/expiresIn must be an integer of at least 1');
    }
    return expiresIn;
  }

  async function signedPath(bucket: string, name: string, expiresIn: number): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ url: `${bucket}/${name}` })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuedAt(now)
      .setExpirationTime(now + expiresIn)
      .sign(jwtSecret());
    return `/object/sign/${bucket}/${name}?token=${token}`;
  }

  /** The names of `names` in the bucket that the caller may read. */
  async function readableNames(request: Request, bucket: string, names: string[]): Promise<Set<string>> {
    const claims = await caller(request);
    const rows = await withUserScope(options.sql, claims, (tx) =>
      tx<{ name: string }[]>`select name from storage.objects where bucket_id = ${bucket} and name = any(${names})`
    );
    return new Set(rows.map((row) => row.name));
  }

  async function sign(request: Request, bucket: string, name: string): Promise<Response> {
    const body = (await request.json().catch(() => null)) as { expiresIn?: unknown } | null;
    const expiresIn = expiresInFrom(body);
    if (!(await readableNames(request, bucket, [name])).has(name)) {
      throw new StorageError(400, 'not_found', 'Object not found');
    }
    return json(200, { signedURL: await signedPath(bucket, name, expiresIn) });
  }

  async function signMany(request: Request, bucket: string): Promise<Response> {
    const body = (await request.json().catch(() => null)) as { expiresIn?: unknown; paths?: unknown } | null;
    const expiresIn = expiresInFrom(body);
    const paths = body?.paths;
    if (!Array.isArray(paths) || paths.some((p) => typeof p !== 'string') || paths.length > 1000) {
      throw new StorageError(400, 'Error', 'body must have required property \'paths\' (an array of up to 1,000 names)');
    }
    const readable = await readableNames(request, bucket, paths as string[]);
    const signed = await Promise.all((paths as string[]).map(async (path) =>
      readable.has(path)
        ? { error: null, path, signedURL: await signedPath(bucket, path, expiresIn) }
        : { error: 'Either the object does not exist or you do not have access to it', path, signedURL: null }
    ));
    return json(200, signed);
  }

  /** GET of a signed URL: the token alone authorizes, for the one object it names, until it expires. */
  async function downloadSigned(request: Request, bucket: string, name: string): Promise<Response> {
    const url = new URL(request.url);
    const token = url.searchParams.get('token');
    if (!token) throw new StorageError(400, 'InvalidJWT', 'querystring must have required property \'token\'');
    let signedUrl: unknown;
    try {
      ({ payload: { url: signedUrl } } = await jwtVerify(token, jwtSecret(), { algorithms: ['HS256'], requiredClaims: ['exp'] }));
    } catch (error) {
      const message = error instanceof joseErrors.JWTExpired ? 'jwt expired' : 'invalid signature';
      throw new StorageError(400, 'InvalidJWT', message);
    }
    if (signedUrl !== `${bucket}/${name}`) throw new StorageError(400, 'InvalidSignature', 'The url do not match the signature');
    const [found] = await options.sql<{ metadata: { mimetype?: string; eTag?: string } | null }[]>`
      select metadata from storage.objects where bucket_id = ${bucket} and name = ${name}`;
    const bytes = found ? await readFile(filePath(bucket, name)).catch(() => null) : null;
    if (!found || !bytes) throw new StorageError(400, 'not_found', 'Object not found');
    const headers: Record<string, string> = {
      'content-type': found.metadata?.mimetype ?? 'application/octet-stream',
      'content-length': String(bytes.byteLength),
      'cache-control': 'no-cache',
      etag: found.metadata?.eTag ?? '',
    };
    const download = url.searchParams.get('download');
    if (download !== null) {
      const filename = (download || name.split('/').pop() || 'download').replace(/["\\\r\n]/g, '_');
      headers['content-disposition'] = `attachment; filename="${filename}"`;
    }
    return new Response(request.method === 'HEAD' ? null : bytes, { status: 200, headers });
  }

  // The gateway adds the origin rules (ALLOWED_ORIGINS); the allowed request headers are Storage's own.
  return async function handle(request: Request): Promise<Response> {
    const response = request.method === 'OPTIONS' ? new Response(null, { status: 204 }) : await route(request);
    response.headers.set('access-control-allow-headers', STORAGE_ALLOW_HEADERS);
    return response;
  };

  async function route(request: Request): Promise<Response> {
    try {
      const path = new URL(request.url).pathname;
      if (!path.startsWith(`${STORAGE_PREFIX}/object/`)) throw new StorageError(404, 'not_found', `No route ${path}`);
      const rest = decodeSegments(path.slice(`${STORAGE_PREFIX}/object/`.length));
      const method = request.method;
      if (method === 'POST' && rest[0] === 'list' && rest.length === 2) return await list(request, rest[1]);
      if (method === 'DELETE' && rest.length === 1) return await remove(request, rest[0]);
      if (rest[0] === 'sign' && rest.length >= 2) {
        const [, signBucket, ...signSegments] = rest;
        if (method === 'POST' && signSegments.length === 0) return await signMany(request, signBucket);
        const signName = checkObjectName(signSegments.join('/'));
        if (method === 'POST') return await sign(request, signBucket, signName);
        if (method === 'GET' || method === 'HEAD') return await downloadSigned(request, signBucket, signName);
        throw new StorageError(405, 'method_not_allowed', `${method} is not supported here`);
      }
      const [bucket, ...segments] = rest[0] === 'authenticated' ? rest.slice(1) : rest;
      if (!bucket || segments.length === 0) throw new StorageError(404, 'not_found', `No route ${method} ${path}`);
      const name = checkObjectName(segments.join('/'));
      if (method === 'POST' || method === 'PUT') {
        const key = checkUploadKey(name);
        return await upload(request, bucket, key, method === 'PUT' || request.headers.get('x-upsert') === 'true');
      }
      if (method === 'GET' || method === 'HEAD') return await download(request, bucket, name);
      throw new StorageError(405, 'method_not_allowed', `${method} is not supported here`);
    } catch (error) {
      return storageErrorResponse(error);
    }
  }
}
