import type { ServerMessage } from './types.js';

/** The part of the browser WebSocket the connection uses (a fake one in tests). */
export interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'stopped';

export interface ConnectionStatus {
  state: ConnectionState;
  /** Failed attempts since the last snapshot. */
  attempt: number;
  /** When the next attempt starts (wall clock), while reconnecting. */
  nextRetryAt: number | null;
  /** Snapshots received: more than one means the page resynced after a reconnect. */
  snapshots: number;
  lastError: string | null;
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** ± this fraction of the delay, so many dashboards do not reconnect in lockstep after a restart. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 15_000, factor: 2, jitter: 0.2 };

/** Delay before attempt n (0-based): initial * factor^n, capped, with jitter from random() in [0, 1). */
export function backoffDelay(attempt: number, o: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const base = Math.min(o.maxMs, o.initialMs * o.factor ** attempt);
  return Math.round(base * (1 + o.jitter * (2 * random() - 1)));
}

export interface LiveConnectionOptions {
  url: string | (() => string);
  onMessage: (msg: ServerMessage) => void;
  onStatus?: (status: ConnectionStatus) => void;
  createSocket?: (url: string) => SocketLike;
  backoff?: Partial<BackoffOptions>;
  random?: () => number;
  /** How long a request waits for its RESPONSE. */
  requestTimeoutMs?: number;
  /** Binary frames (the server's --ws-compression precompressed mode) are raw DEFLATE of the JSON. */
  inflate?: (data: unknown) => Promise<string>;
}

/** Raw DEFLATE -> text with the browser's DecompressionStream. */
export async function inflateRaw(data: unknown): Promise<string> {
  const blob = data instanceof Blob ? data : new Blob([data as ArrayBuffer]);
  return new Response(blob.stream().pipeThrough(new DecompressionStream('deflate-raw'))).text();
}

interface Pending {
  resolve: (data: unknown) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * The dashboard's live stream: one WebSocket to /dashboard-ws. The server sends a SNAPSHOT on
 * every connect, so resync after a reconnect is just applying that snapshot. The backoff grows
 * until a snapshot arrives (an accept-then-close server does not cause a tight loop).
 */
export class LiveConnection {
  private socket: SocketLike | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly backoff: BackoffOptions;
  private readonly pending = new Map<string, Pending>();
  private nextRequestId = 1;
  private stopped = true;
  /** Messages are applied in arrival order even when some need asynchronous inflating. */
  private inbox: Promise<void> = Promise.resolve();
  private inflating = 0;
  status: ConnectionStatus = { state: 'stopped', attempt: 0, nextRetryAt: null, snapshots: 0, lastError: null };

  constructor(private readonly opts: LiveConnectionOptions) {
    this.backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = s.onmessage = s.onerror = s.onopen = null;
      s.close(1000, 'page closed');
    }
    this.failPending('the connection was stopped');
    this.setStatus({ state: 'stopped', nextRetryAt: null });
  }

  /** Reconnects now instead of waiting for the backoff (the "retry now" button). */
  retryNow(): void {
    if (this.stopped || this.status.state !== 'reconnecting') return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  /** Sends a request (GET_USER_ANALYTICS, GET_ALERT_DETAILS...) and resolves with its RESPONSE data. */
  request<T = unknown>(type: string, params: Record<string, unknown> = {}): Promise<T> {
    const s = this.socket;
    if (!s || this.status.state !== 'live') return Promise.reject(new Error('not connected'));
    const requestId = `r${this.nextRequestId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new Error(`${type} got no answer within ${this.opts.requestTimeoutMs ?? 10_000} ms`));
      }, this.opts.requestTimeoutMs ?? 10_000);
      this.pending.set(requestId, { resolve: resolve as (d: unknown) => void, reject, timer });
      s.send(JSON.stringify({ ...params, type, requestId }));
    });
  }

  private connect(): void {
    const url = typeof this.opts.url === 'function' ? this.opts.url() : this.opts.url;
    this.setStatus({ state: this.status.snapshots === 0 && this.status.attempt === 0 ? 'connecting' : 'reconnecting', nextRetryAt: null });
    let s: SocketLike;
    try {
      s = this.opts.createSocket ? this.opts.createSocket(url) : (new WebSocket(url) as unknown as SocketLike);
    } catch (e) {
      this.scheduleRetry(e instanceof Error ? e.message : String(e));
      return;
    }
    this.socket = s;
    if ('binaryType' in s) (s as unknown as WebSocket).binaryType = 'arraybuffer';
    s.onmessage = (ev) => {
      if (this.socket !== s) return;
      if (typeof ev.data === 'string' && this.inflating === 0) {
        this.receive(ev.data);
        return;
      }
      this.inflating++;
      const text = typeof ev.data === 'string' ? Promise.resolve(ev.data) : (this.opts.inflate ?? inflateRaw)(ev.data);
      this.inbox = this.inbox
        .then(() => text)
        .then((t) => {
          if (this.socket === s) this.receive(t);
        }, () => {})
        .finally(() => this.inflating--);
    };
    s.onclose = (ev) => {
      if (this.socket !== s) return;
      this.socket = null;
      this.failPending('the connection closed');
      this.scheduleRetry(`closed${ev?.code ? ` (${ev.code}${ev.reason ? `: ${ev.reason}` : ''})` : ''}`);
    };
    // An error is always followed by close, which schedules the retry.
    s.onerror = () => {
      if (this.socket === s) this.setStatus({ lastError: 'connection error' });
    };
  }

  private receive(text: string): void {
    let msg: ServerMessage;
    try {
      msg = JSON.parse(text) as ServerMessage;
    } catch {
      return; // not ours to interpret; the server only sends JSON
    }
    if (msg.type === 'SNAPSHOT') this.setStatus({ state: 'live', attempt: 0, nextRetryAt: null, snapshots: this.status.snapshots + 1, lastError: null });
    if ((msg.type === 'RESPONSE' || msg.type === 'ERROR') && msg.requestId !== null && this.pending.has(String(msg.requestId))) {
      const p = this.pending.get(String(msg.requestId))!;
      this.pending.delete(String(msg.requestId));
      clearTimeout(p.timer);
      if (msg.type === 'RESPONSE') p.resolve(msg.data);
      else p.reject(new Error(`${msg.code}: ${msg.message}`));
      return;
    }
    this.opts.onMessage(msg);
  }

  private scheduleRetry(reason: string): void {
    if (this.stopped) return;
    const delay = backoffDelay(this.status.attempt, this.backoff, this.opts.random);
    this.setStatus({ state: 'reconnecting', attempt: this.status.attempt + 1, nextRetryAt: Date.now() + delay, lastError: reason });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  private failPending(reason: string): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(reason));
    }
    this.pending.clear();
  }

  private setStatus(patch: Partial<ConnectionStatus>): void {
    this.status = { ...this.status, ...patch };
    this.opts.onStatus?.(this.status);
  }
}
