import { timingSafeEqual } from 'node:crypto';
import { EngineError } from '../engine/errors.js';

export class ServerConfigError extends EngineError {
  override readonly name = 'ServerConfigError';
}

export interface AccessOptions {
  host: string;
  /** Required on every API call and WebSocket upgrade when set; mandatory on a non-loopback address. */
  accessToken?: string | undefined;
  /**
   * Origins allowed to open /dashboard-ws from a browser. Empty: the page's own origin only (the
   * Origin's host equals the Host header), which stops other sites open in the same browser from
   * reading the dashboard (cross-site WebSocket hijacking). '*' allows any origin.
   */
  allowedOrigins: string[];
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/i;

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

/**
 * Who may call the API. Checked synchronously from the request's headers (uWS requests are only
 * readable before the handler returns). Tokens are compared in constant time and never logged.
 */
export class AccessPolicy {
  private readonly token: Buffer | null;

  constructor(readonly opts: AccessOptions) {
    if (opts.accessToken !== undefined && opts.accessToken.length < 16) {
      throw new ServerConfigError('ERR_WEAK_TOKEN', 'accessToken must be at least 16 characters (e.g. `openssl rand -hex 24`)', false);
    }
    if (!isLoopback(opts.host) && !opts.accessToken) {
      throw new ServerConfigError('ERR_TOKEN_REQUIRED',
        `refusing to listen on ${opts.host} without an access token: set --access-token (or RTA_ACCESS_TOKEN), or bind 127.0.0.1`, false);
    }
    this.token = opts.accessToken ? Buffer.from(opts.accessToken) : null;
  }

  get tokenRequired(): boolean {
    return this.token !== null;
  }

  /** `authorization: Bearer <token>`, `x-access-token: <token>`, or (for the WebSocket upgrade, which browsers cannot give headers) `?access_token=`. */
  authorized(authorization: string, xAccessToken: string, query: string | undefined): boolean {
    if (!this.token) return true;
    let presented = '';
    if (authorization.toLowerCase().startsWith('bearer ')) presented = authorization.slice(7).trim();
    else if (xAccessToken) presented = xAccessToken;
    else if (query) presented = new URLSearchParams(query).get('access_token') ?? '';
    const p = Buffer.from(presented);
    return p.length === this.token.length && timingSafeEqual(p, this.token);
  }

  /**
   * Without a token the server trusts only requests addressed to a loopback name: a page from
   * another site that re-resolves its own name to 127.0.0.1 (DNS rebinding) sends its own name as
   * Host and Origin, which would otherwise pass the same-origin check.
   */
  hostAllowed(host: string): boolean {
    if (this.token) return true;
    const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
    return name === '' || isLoopback(name);
  }

  originAllowed(origin: string, host: string): boolean {
    if (!origin) return true; // not a browser: browsers always send Origin on a WebSocket upgrade
    const allowed = this.opts.allowedOrigins;
    if (allowed.includes('*')) return true;
    if (allowed.length) return allowed.includes(origin);
    try {
      return new URL(origin).host === host;
    } catch {
      return false;
    }
  }
}

/**
 * A per-connection token bucket for client messages: `ratePerSec` sustained, bursts up to `burst`.
 * A client that keeps flooding after being told is closed (1008 policy violation).
 */
export class RateLimiter {
  private tokens: number;
  private last: number;
  violations = 0;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    now = Date.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now = Date.now()): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSec);
    this.last = now;
    // A client that has calmed down to a full bucket starts over: only sustained flooding is closed.
    if (this.tokens >= this.burst) this.violations = 0;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.violations++;
    return false;
  }
}
