/**
 * REST calls to /api/dashboard. When the server requires an access token, open the dashboard
 * once as /?access_token=...: the token is kept in sessionStorage (not in the address bar or
 * history) and sent as a bearer header, and as ?access_token= on the WebSocket upgrade.
 */
const TOKEN_KEY = 'rta.accessToken';

export function captureAccessToken(): void {
  const url = new URL(location.href);
  const token = url.searchParams.get('access_token');
  if (!token) return;
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // storage disabled: the token then only lives for this page view
    memoryToken = token;
  }
  url.searchParams.delete('access_token');
  history.replaceState(history.state, '', url.pathname + url.search + url.hash);
}

let memoryToken: string | null = null;

function token(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? memoryToken;
  } catch {
    return memoryToken;
  }
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

async function call<T>(method: 'GET' | 'POST', path: string, signal?: AbortSignal): Promise<T> {
  const t = token();
  const res = await fetch(`/api/dashboard${path}`, { method, signal, headers: t ? { authorization: `Bearer ${t}` } : {} });
  const body = res.headers.get('content-type')?.includes('json') ? await res.json() : null;
  if (!res.ok) throw new ApiError(res.status, body?.error ?? 'ERR_HTTP', body?.message ?? `${method} ${path} failed with ${res.status}`);
  return body as T;
}

export const api = {
  get: <T>(path: string, signal?: AbortSignal) => call<T>('GET', path, signal),
  post: <T>(path: string) => call<T>('POST', path),
};

export function wsUrl(): string {
  const u = new URL('/dashboard-ws', location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const t = token();
  if (t) u.searchParams.set('access_token', t);
  // Deltas as raw DEFLATE binary frames, deflated once per tick for every dashboard: measured
  // faster to deliver than per-message permessage-deflate (BENCHMARKS.md, bench:fanout).
  if (typeof DecompressionStream === 'function') u.searchParams.set('deltas', 'deflate');
  return u.toString();
}
