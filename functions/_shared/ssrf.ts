import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { HttpError } from './errors.ts';

/**
 * The guard against server-side request forgery for URLs users give us
 * (webhook endpoints): `https` only, and never an address inside a private,
 * loopback, link-local, carrier-grade NAT, multicast or reserved range (cloud
 * metadata services live at 169.254.169.254 and fd00:ec2::254). Checked after
 * DNS resolution, on every address the name resolves to, and again before
 * each request, so a name that later resolves somewhere private is caught.
 *
 * `allowLoopback` (local development only) also admits `http` and loopback
 * addresses, so a receiver on 127.0.0.1 can be used with the local stack.
 *
 * DNS rebinding: a request that resolves the name again after this check (as
 * fetch does) can reach whatever the name answers by then. Webhook deliveries
 * therefore send through pinned-request.ts, which connects only to the
 * addresses {@link resolvePublicDestination} approved and never resolves the
 * name again (TLS still verifies the certificate against the URL's host).
 * Callers that check with {@link assertPublicDestination} and then fetch (the
 * call recordings' download) keep that window.
 *
 * Only a name that does not exist or has no addresses is refused (422
 * `unsafe_url`). A resolver that fails (SERVFAIL, refused, timed out) says
 * nothing about the URL, so that is 503 `dns_unavailable` with Retry-After:
 * the same request may succeed a moment later.
 */
export interface DestinationPolicy {
  allowLoopback: boolean;
  resolve?: (hostname: string) => Promise<string[]>;
  /** How long a lookup may take before it counts as the resolver failing; {@link DNS_TIMEOUT_MS} unless a test says less. */
  lookupTimeoutMs?: number;
}

/** Past this a lookup is a resolver failure: getaddrinfo alone may wait on its retries for far longer. */
export const DNS_TIMEOUT_MS = 5000;
/** What a `dns_unavailable` answer asks the client to wait. */
export const DNS_RETRY_AFTER_SECONDS = 5;

export async function resolveAll(hostname: string): Promise<string[]> {
  const found = await lookup(hostname, { all: true, verbatim: true });
  return found.map((entry) => entry.address);
}

const unsafe = (message: string) => new HttpError(422, 'unsafe_url', message);

/**
 * The answers that mean the name has no address (NXDOMAIN, or no A/AAAA
 * record): getaddrinfo's, as Node and Deno name them, and c-ares's. Any other
 * failure, or one without a code, is the resolver's.
 */
const NO_SUCH_NAME = new Set(['ENOTFOUND', 'ENODATA', 'EAI_NONAME', 'EAI_NODATA']);

function lookupFailure(hostname: string, error: unknown): HttpError {
  const code = error instanceof Error && 'code' in error ? error.code : undefined;
  if (typeof code === 'string' && NO_SUCH_NAME.has(code)) return unsafe(`The host ${hostname} does not resolve.`);
  return new HttpError(
    503,
    'dns_unavailable',
    `Looking up the host ${hostname} failed; try again shortly.`,
    { 'retry-after': String(DNS_RETRY_AFTER_SECONDS) },
    { cause: error },
  );
}

/** The host's addresses, or the lookup's failure; a lookup still unanswered after the deadline is a failure. */
async function lookUp(hostname: string, policy: DestinationPolicy): Promise<string[]> {
  const timeoutMs = policy.lookupTimeoutMs ?? DNS_TIMEOUT_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([(policy.resolve ?? resolveAll)(hostname), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const BLOCKED_NAMES = /(^|\.)(localhost|localdomain|internal|local)$|^metadata(\.google\.internal)?$/i;

function ipv4ToNumber(address: string): number {
  return address.split('.').reduce((value, part) => value * 256 + Number(part), 0);
}

const IPV4_BLOCKED: Array<[string, number]> = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];

function isBlockedIpv4(address: string): boolean {
  const value = ipv4ToNumber(address);
  return IPV4_BLOCKED.some(([base, bits]) => {
    const size = 2 ** (32 - bits);
    const start = ipv4ToNumber(base);
    return value >= start && value < start + size;
  });
}

function isLoopback(address: string): boolean {
  return isIP(address) === 4 ? address.startsWith('127.') : expandIpv6(address) === '0000:0000:0000:0000:0000:0000:0000:0001';
}

function expandIpv6(address: string): string {
  let text = address.toLowerCase().replace(/^\[|\]$/g, '').split('%')[0];
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = ipv4ToNumber(v4[1]);
    text = text.slice(0, -v4[1].length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail === undefined ? [] : tail ? tail.split(':') : [];
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array(missing).fill('0'), ...tailGroups];
  return groups.map((group) => group.padStart(4, '0')).join(':');
}

function isBlockedIpv6(address: string): boolean {
  const full = expandIpv6(address);
  const first = parseInt(full.slice(0, 4), 16);
  if (full === '0000:0000:0000:0000:0000:0000:0000:0000' || full === '0000:0000:0000:0000:0000:0000:0000:0001') return true;
  if (full.startsWith('0000:0000:0000:0000:0000:ffff:') || full.startsWith('0064:ff9b:')) {
    // IPv4-mapped and NAT64 addresses reach the IPv4 they embed.
    const groups = full.split(':');
    const n = parseInt(groups[6], 16) * 65536 + parseInt(groups[7], 16);
    return isBlockedIpv4([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.'));
  }
  return (
    (first & 0xfe00) === 0xfc00 || // unique local (fc00::/7), incl. fd00:ec2::254
    (first & 0xffc0) === 0xfe80 || // link-local
    (first & 0xff00) === 0xff00 || // multicast
    full.startsWith('2001:0db8:') // documentation
  );
}

/** True when the address may be contacted under the policy. */
export function isAllowedAddress(address: string, policy: Pick<DestinationPolicy, 'allowLoopback'>): boolean {
  const family = isIP(address.replace(/^\[|\]$/g, ''));
  if (family === 0) return false;
  if (policy.allowLoopback && isLoopback(address.replace(/^\[|\]$/g, ''))) return true;
  return family === 4 ? !isBlockedIpv4(address) : !isBlockedIpv6(address);
}

/** A checked URL and every address its host resolved to, all allowed: the only ones a request may connect to. */
export interface ApprovedDestination {
  url: URL;
  /** Unbracketed; an IP-literal host is its own one address. */
  addresses: string[];
}

/**
 * Parses and checks a destination URL; resolves its host and checks every
 * address. Throws HttpError 422 `unsafe_url` with the reason, or 503
 * `dns_unavailable` when the resolver failed.
 */
export async function assertPublicDestination(raw: string, policy: DestinationPolicy): Promise<URL> {
  return (await resolvePublicDestination(raw, policy)).url;
}

/**
 * {@link assertPublicDestination}, also answering the addresses it approved, so
 * the request can be pinned to them instead of resolving the name again.
 */
export async function resolvePublicDestination(
  raw: string,
  policy: DestinationPolicy,
): Promise<ApprovedDestination> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw unsafe('The URL is not valid.');
  }
  if (url.protocol !== 'https:' && !(policy.allowLoopback && url.protocol === 'http:')) {
    throw unsafe('Only https URLs are allowed.');
  }
  if (url.username || url.password) throw unsafe('The URL must not carry credentials.');
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(hostname) === 0 && BLOCKED_NAMES.test(hostname) && !(policy.allowLoopback && /^localhost$/i.test(hostname))) {
    throw unsafe(`The host ${hostname} is internal.`);
  }
  let addresses: string[];
  try {
    addresses = isIP(hostname) ? [hostname] : await lookUp(hostname, policy);
  } catch (error) {
    throw lookupFailure(hostname, error);
  }
  if (addresses.length === 0) throw unsafe(`The host ${hostname} does not resolve.`);
  // The address itself stays out of the message: anyone can own an org, and the
  // answer must not become a way to map internal names.
  const blocked = addresses.find((address) => !isAllowedAddress(address, policy));
  if (blocked) throw unsafe(`The host ${hostname} resolves to a private or reserved address.`);
  return { url, addresses: addresses.map((address) => address.replace(/^\[|\]$/g, '')) };
}
