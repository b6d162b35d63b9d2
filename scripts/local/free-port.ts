import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A port free right now on 127.0.0.1, for a server whose URL must be known
 * before it starts (the functions reach Storage through SUPABASE_URL).
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
