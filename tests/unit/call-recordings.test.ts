import type { SupabaseClient } from '@supabase/supabase-js';
import { describe, expect, it } from 'vitest';
import { MAX_RECORDING_BYTES, supabaseRecordingStore } from '../../functions/call-dispatcher/recordings.ts';

/**
 * The recording copy counts the download as it arrives: a body past the cap
 * is refused after about the cap is read, its download aborted, whatever it
 * says (or does not say) about its length.
 */
const CHUNK = 64 * 1024;
const CAP = 1024 * 1024;
const call = { call_id: 'call-recordings-1', org_id: 'org-recordings-1', recording_url: 'https://rec.example.com/a.mp3' };
const policy = { allowLoopback: false, resolve: async () => ['93.184.216.34'] };

/** A provider serving `chunks` chunks of 64 KiB (Infinity: endless), counting what it handed over. */
function provider(chunks: number, headers: Record<string, string> = {}) {
  const served = { chunks: 0, signal: undefined as AbortSignal | undefined };
  const fetchStub = async (_url: string | URL | Request, init?: RequestInit) => {
    served.signal = init?.signal ?? undefined;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (served.chunks >= chunks) {
          controller.close();
          return;
        }
        served.chunks += 1;
        controller.enqueue(new Uint8Array(CHUNK));
      },
    });
    return new Response(body, { headers: { 'content-type': 'audio/mpeg', ...headers } });
  };
  return { served, fetch: fetchStub as typeof fetch };
}

/** A bucket that keeps what it is given. */
function bucket() {
  const uploads: { path: string; bytes: number }[] = [];
  const client = {
    storage: {
      from: () => ({
        upload: async (path: string, bytes: Uint8Array) => {
          uploads.push({ path, bytes: bytes.byteLength });
          return { data: { path }, error: null };
        },
      }),
    },
  } as unknown as SupabaseClient;
  return { uploads, client };
}

describe('supabaseRecordingStore: the size cap', () => {
  it('defaults to 100 MB', () => {
    expect(MAX_RECORDING_BYTES).toBe(100 * 1024 * 1024);
  });

  it('refuses an endless chunked body (no content-length) once past the cap, without reading on, and aborts the download', async () => {
    const source = provider(Infinity);
    const target = bucket();
    const store = supabaseRecordingStore(() => undefined, { policy, fetch: source.fetch, client: target.client, maxBytes: CAP });
    await expect(store.copy(call)).rejects.toThrow(`the recording is larger than ${CAP} bytes`);
    // 16 chunks make the cap; the 17th passes it; the stream may have queued one more.
    expect(source.served.chunks).toBeGreaterThan(CAP / CHUNK);
    expect(source.served.chunks).toBeLessThanOrEqual(CAP / CHUNK + 2);
    expect(source.served.signal?.aborted).toBe(true);
    expect(target.uploads).toEqual([]);
  });

  it('refuses a declared content-length over the cap before reading the body', async () => {
    const source = provider(Infinity, { 'content-length': String(CAP + 1) });
    const target = bucket();
    const store = supabaseRecordingStore(() => undefined, { policy, fetch: source.fetch, client: target.client, maxBytes: CAP });
    await expect(store.copy(call)).rejects.toThrow(`the recording is larger than ${CAP} bytes`);
    expect(source.served.chunks).toBeLessThanOrEqual(1);
    expect(source.served.signal?.aborted).toBe(true);
    expect(target.uploads).toEqual([]);
  });

  it('copies a chunked body of exactly the cap whole', async () => {
    const source = provider(CAP / CHUNK);
    const target = bucket();
    const store = supabaseRecordingStore(() => undefined, { policy, fetch: source.fetch, client: target.client, maxBytes: CAP });
    await expect(store.copy(call)).resolves.toBe('org-recordings-1/calls/call-recordings-1/recording.mp3');
    expect(target.uploads).toEqual([{ path: 'org-recordings-1/calls/call-recordings-1/recording.mp3', bytes: CAP }]);
    expect(source.served.signal?.aborted).toBe(false);
  });
});

describe('supabaseRecordingStore: the destination guard', () => {
  /** A provider that counts the requests it is sent. */
  function countingFetch() {
    const sent: string[] = [];
    const fetchStub = async (url: string | URL | Request) => {
      sent.push(String(url));
      return new Response(new Uint8Array(CHUNK), { headers: { 'content-type': 'audio/mpeg' } });
    };
    return { sent, fetch: fetchStub as typeof fetch };
  }

  it('refuses a recording URL whose host resolves to a private address, fetching and uploading nothing', async () => {
    const source = countingFetch();
    const target = bucket();
    const privatePolicy = { allowLoopback: false, resolve: async () => ['10.0.0.5'] };
    const store = supabaseRecordingStore(() => undefined, { policy: privatePolicy, fetch: source.fetch, client: target.client });
    await expect(store.copy(call)).rejects.toMatchObject({ status: 422, code: 'unsafe_url' });
    expect(source.sent).toEqual([]);
    expect(target.uploads).toEqual([]);
  });

  it('refuses the cloud metadata address (plain http, link-local), fetching and uploading nothing', async () => {
    const source = countingFetch();
    const target = bucket();
    const store = supabaseRecordingStore(() => undefined, { policy, fetch: source.fetch, client: target.client });
    await expect(store.copy({ ...call, recording_url: 'http://169.254.169.254/x' }))
      .rejects.toMatchObject({ status: 422, code: 'unsafe_url' });
    expect(source.sent).toEqual([]);
    expect(target.uploads).toEqual([]);
  });

  it('refuses the cloud metadata address over https too (the address, not only the scheme, is refused)', async () => {
    const source = countingFetch();
    const target = bucket();
    const store = supabaseRecordingStore(() => undefined, { policy, fetch: source.fetch, client: target.client });
    await expect(store.copy({ ...call, recording_url: 'https://169.254.169.254/x' }))
      .rejects.toMatchObject({ status: 422, code: 'unsafe_url' });
    expect(source.sent).toEqual([]);
    expect(target.uploads).toEqual([]);
  });
});
