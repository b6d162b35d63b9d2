import type { SupabaseClient } from '@supabase/supabase-js';
import type { EnvReader } from '../_shared/env.ts';
import { readBodyBytes } from '../_shared/http.ts';
import { assertPublicDestination, type DestinationPolicy } from '../_shared/ssrf.ts';
import { lazyServiceClient } from '../_shared/service-storage.ts';

export const RECORDINGS_BUCKET = 'recordings';

/** Recordings longer than this are left at the provider (an hour of WAV is about 115 MB; of MP3, 30 MB). */
export const MAX_RECORDING_BYTES = 100 * 1024 * 1024;

/** Copies a call's recording from the provider into the org's prefix of the recordings bucket. */
export interface RecordingStore {
  /** The object path written, `<org_id>/calls/<call_id>/recording.<ext>`. */
  copy(call: { call_id: string; org_id: string; recording_url: string }): Promise<string>;
}

const EXTENSIONS: Record<string, string> = {
  'audio/wav': 'wav',
  'audio/x-wav': 'wav',
  'audio/wave': 'wav',
  'audio/mpeg': 'mp3',
  'audio/mp3': 'mp3',
  'audio/ogg': 'ogg',
  'audio/webm': 'webm',
  'audio/mp4': 'm4a',
  'audio/x-m4a': 'm4a',
  'audio/flac': 'flac',
};

/** The extension for a recording: by its content type, else by the URL's, else `audio`. */
export function recordingExtension(contentType: string | null, url: string): string {
  const type = contentType?.split(';')[0].trim().toLowerCase() ?? '';
  if (EXTENSIONS[type]) return EXTENSIONS[type];
  const fromUrl = /\.([a-z0-9]{2,5})$/iu.exec(new URL(url).pathname)?.[1]?.toLowerCase();
  return fromUrl && Object.values(EXTENSIONS).includes(fromUrl) ? fromUrl : 'audio';
}

/**
 * Through supabase-js with the service-role key. The provider's URL is
 * fetched only when it passes the same guard as webhook URLs (https, a
 * public address), since it arrived in an event body.
 */
export function supabaseRecordingStore(
  env: EnvReader,
  options: {
    policy: DestinationPolicy;
    fetch?: typeof fetch;
    client?: SupabaseClient;
    timeoutMs?: number;
    /** The largest recording copied; {@link MAX_RECORDING_BYTES} unless a test says less. */
    maxBytes?: number;
  },
): RecordingStore {
  const client = options.client ? () => options.client as SupabaseClient : lazyServiceClient(env);
  const bucket = () => client().storage.from(RECORDINGS_BUCKET);
  const fetchImpl = options.fetch ?? fetch;
  const maxBytes = options.maxBytes ?? MAX_RECORDING_BYTES;
  return {
    async copy(call) {
      const source = await assertPublicDestination(call.recording_url, options.policy);
      const refused = new AbortController();
      const response = await fetchImpl(source, {
        redirect: 'error',
        signal: AbortSignal.any([AbortSignal.timeout(options.timeoutMs ?? 60_000), refused.signal]),
      });
      let bytes: Uint8Array;
      try {
        if (!response.ok) throw new Error(`the recording answered ${response.status}`);
        // Counted as it arrives (a chunked body states no length): past the cap the read is canceled, never held whole.
        bytes = await readBodyBytes(response, maxBytes, () => new Error(`the recording is larger than ${maxBytes} bytes`));
      } catch (error) {
        // Nothing more is downloaded of a refused recording.
        refused.abort();
        throw error;
      }
      const contentType = response.headers.get('content-type');
      const path = `${call.org_id}/calls/${call.call_id}/recording.${recordingExtension(contentType, call.recording_url)}`;
      const { error } = await bucket().upload(path, bytes, {
        contentType: contentType ?? 'application/octet-stream',
        upsert: true,
      });
      if (error) throw error;
      return path;
    },
  };
}
