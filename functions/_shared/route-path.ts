/**
 * The path segments below a function's name. The local runtime and
 * Supabase's edge runtime pass `/<name>/...`; the public `/functions/v1`
 * prefix is accepted too, for proxies that forward it. Null when the path is
 * not the function's.
 */
export function functionPath(pathname: string, name: string): string[] | null {
  const segments = pathname.split('/').filter((segment) => segment !== '');
  const start = segments[0] === 'functions' && segments[1] === 'v1' ? 2 : 0;
  return segments[start] === name ? segments.slice(start + 1) : null;
}
