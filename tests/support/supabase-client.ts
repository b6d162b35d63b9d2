import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import type { WebSocketLikeConstructor } from '@supabase/realtime-js';
import WebSocket from 'ws';

/**
 * Node 20 has no global WebSocket, which supabase-js's realtime client needs
 * to be constructed, so it gets `ws` (as realtime-js documents). ws types its
 * events with its own classes rather than the DOM's, hence the cast; at run
 * time the two are interchangeable.
 */
const transport = WebSocket as unknown as WebSocketLikeConstructor;

/** A supabase-js client of the local API for one user's access token (or the anon key alone). */
export function supabaseClient(apiUrl: string, anonKey: string, accessToken?: string): SupabaseClient {
  return createClient(apiUrl, anonKey, {
    global: accessToken ? { headers: { Authorization: `Bearer ${accessToken}` } } : {},
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport },
  });
}
