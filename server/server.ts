import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import uWS from 'uWebSockets.js';
import type { Engine } from '../engine/index.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import { AccessPolicy, RateLimiter } from './security.js';
import { StaticAssets } from './static.js';
import { QueryClient } from './query-client.js';
import type { InstanceRegistry } from '../engine/kafka/instances.js';
import type { LivePartials } from '../engine/kafka/live-partials.js';
import { ALERT_STATUS } from '../engine/state/live-projection.js';
import { QueryUnavailable } from '../engine/query/query.js';
import { scanCodec, type ScanRequest } from '../engine/query/remote.js';
import { DashboardSnapshots, type DashboardQuery, type LiveTiles } from './queries.js';
import type { QueryResponse } from './query-worker.js';
import { ParamError, enumParam, idParam, numberParam, parseQuery } from './params.js';

export interface DashboardServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Live updates are batched per tick. */
  tickMs: number;
  /** A client whose send buffer is past this gets no deltas until it drains, then a snapshot. */
  maxBufferedBytes: number;
  /** Heartbeat: connections silent this long (seconds) are closed (uWS idleTimeout, pings sent). */
  idleTimeoutSec: number;
  /** The built dashboard (Vite output); served at / when it exists. */
  uiDir: string;
  /** Required on API calls and WebSocket upgrades when set; mandatory when host is not a loopback address. */
  accessToken?: string | undefined;
  /** Browser origins allowed to open /dashboard-ws; empty = the page's own origin; '*' = any. */
  allowedOrigins: string[];
  /** Client WebSocket messages: sustained rate and burst per connection. */
  clientMessagesPerSec: number;
  clientMessageBurst: number;
  /** REST dashboard queries: a cached answer is reused for this long while the state changes (0: only while unchanged). */
  restCacheMs: number;
  /** Largest client WebSocket message (bytes); bigger ones close the connection (1009). */
  maxClientMessageBytes: number;
  /**
   * How deltas are compressed. 'shared': permessage-deflate without context takeover, compressed
   * once per tick for every client (uWS publish); 'dedicated-4kb'/'dedicated-32kb': a sliding window
   * per client (better ratio, one compression per client per tick, memory per client); 'off';
   * 'precompressed': deltas deflated once by us and sent as binary frames (raw DEFLATE; clients
   * must inflate them: for non-browser consumers). bench:fanout measures them.
   */
  wsCompression: WsCompression;
  /** Where the live-update tick builds its snapshot: on the query thread (default) or on the event loop (as before; for comparison). */
  tickSnapshot: 'query-thread' | 'event-loop';
}

export const WS_COMPRESSION = ['shared', 'dedicated-4kb', 'dedicated-32kb', 'off', 'precompressed'] as const;
export type WsCompression = (typeof WS_COMPRESSION)[number];
const UWS_COMPRESSOR: Record<WsCompression, number> = {
  shared: uWS.SHARED_COMPRESSOR,
  'dedicated-4kb': uWS.DEDICATED_COMPRESSOR_4KB,
  'dedicated-32kb': uWS.DEDICATED_COMPRESSOR_32KB,
  off: uWS.DISABLED,
  precompressed: uWS.DISABLED,
};
/**
 * The live series a client can subscribe to (SUBSCRIBE_METRIC / UNSUBSCRIBE_METRIC), each fed by
 * one pipeline's windows. A new client gets all of them; tiles, stream time and new alerts are
 * always in a delta. A delta carries, for each subscribed series, exactly the windows whose commit
 * was announced since the previous tick, read from the same snapshot a new client would get: so
 * applying deltas to a snapshot (upsert by window) reproduces a fresh snapshot.
 */
export const LIVE_METRICS = { activeUsers: 'active_users', revenue: 'revenue', platformEvents: 'platform_events', latency: 'performance' } as const;
export type LiveMetric = keyof typeof LIVE_METRICS;
const ALL_METRICS = Object.keys(LIVE_METRICS) as LiveMetric[];

/**
 * Clients with the same subscriptions and delta encoding share a topic, so each distinct delta is
 * built and compressed once per tick. 'z' topics get raw DEFLATE binary frames (deflated once by
 * us); 't' topics get JSON text (with permessage-deflate when negotiated).
 */
function topicOf(subscriptions: Set<string>, deflate: boolean): string {
  return `deltas:${deflate ? 'z' : 't'}:` + ALL_METRICS.filter((m) => subscriptions.has(m)).join(',');
}

const DEFAULTS: DashboardServerOptions = { host: '127.0.0.1', port: 8080, tickMs: 250, maxBufferedBytes: 256 * 1024, idleTimeoutSec: 60, uiDir: defaultUiDir(),
  allowedOrigins: [], clientMessagesPerSec: 20, clientMessageBurst: 40, maxClientMessageBytes: 4096, wsCompression: 'shared', restCacheMs: 1000, tickSnapshot: 'query-thread' };

/** Distinct cached REST answers (oldest evicted first). */
const MAX_CACHED_RESPONSES = 1000;

/** Per client: past this, uWS drops further messages to it (deltas stop much earlier: maxBufferedBytes). */
const MAX_BACKPRESSURE = 4 * 1024 * 1024;

/** How old a consumer-lag figure in /health and the snapshot tiles may be. */
const LAG_MEMO_MS = 100;

/** A client that is rate limited this many times is closed with 1008 (policy violation). */
const MAX_RATE_VIOLATIONS = 50;

/** ui/dist at the package root, whether this file runs from the build (dist/server) or from source (server/). */
function defaultUiDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'ui', 'dist');
}

interface Client {
  id: number;
  slow: boolean;
  subscriptions: Set<string>;
  /** The delta topic this client is subscribed to (null while it is slow). */
  topic: string | null;
  /** Deltas as raw DEFLATE binary frames (asked for with ?deltas=deflate, or --ws-compression precompressed). */
  deflate: boolean;
  limiter: RateLimiter;
}

type Json = Record<string, unknown> | unknown[];

/**
 * The dashboard server on uWebSockets.js: the REST query API under /api/dashboard, the live
 * WebSocket /dashboard-ws (a snapshot on connect, then at most one delta message per tick),
 * /metrics (Prometheus) and health endpoints. Every route answers synchronously from the query
 * layer (LMDB reads) except the alert status changes, which register onAborted before awaiting.
 */
export class DashboardServer {
  private listenSocket: uWS.us_listen_socket | null = null;
  private app: uWS.TemplatedApp | null = null;
  private snapshotText: string | null = null;
  private snapshotObj: Record<string, unknown> | null = null;
  private readonly snapshots: DashboardSnapshots;
  /** Bumped whenever committed state or alerts change: cached REST answers from before are stale. */
  private stateVersion = 0;
  private readonly responseCache = new Map<string, { version: number; at: number; body: string }>();
  readonly restStats = { hits: 0, misses: 0 };
  private readonly recomputing = new Map<string, Promise<QueryResponse>>();
  /** Bumped when the cache must forget everything (an alert status change): answers computed before are not stored. */
  private cacheEpoch = 0;
  private readonly queries: QueryClient;
  private snapshotAt = 0;
  /** The tick's snapshot is being built on the query thread. */
  private snapshotInFlight = false;
  /** New clients waiting for the delta in flight to be sent before they subscribe. */
  private deferredSubscriptions: Array<uWS.WebSocket<Client>> = [];
  private closed = false;
  private readonly clients = new Map<uWS.WebSocket<Client>, Client>();
  private nextClientId = 1;
  /** Pipeline -> window starts announced (committed) since the last tick. */
  private dirty = new Map<string, Set<number>>();
  private pendingAlerts: unknown[] = [];
  private tickTimer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  /** Scaled out: the instance registry (who owns which partition) and the routing pushed to the query thread. */
  private registry_: InstanceRegistry | null = null;
  /** Scaled out: every partition's committed dashboard partials (the live stream's source). */
  private live: LivePartials | null = null;
  /**
   * Scaled out: stalePartitions as the open dashboards last heard them (in a delta) and as the cached
   * snapshot for connecting clients has them; a change is pushed even without commits.
   */
  private staleSent = '';
  private snapshotStale = '';
  private routingTimer: NodeJS.Timeout | null = null;
  private routingText = '';
  private readonly unsubscribers: Array<() => void> = [];
  private readonly registry: ServerMetrics['registry'];
  private readonly tickSeconds: ServerMetrics['tickSeconds'];
  readonly assets: StaticAssets;
  private readonly access: AccessPolicy;
  readonly wsStats = { messages: 0, bytes: 0, skippedSlow: 0, snapshots: 0, rateLimited: 0 };
  port = 0;
  ready = false;

  private constructor(
    readonly engine: Engine,
    readonly opts: DashboardServerOptions,
  ) {
    ({ registry: this.registry, tickSeconds: this.tickSeconds } = createMetrics(engine, { clients: () => this.clients.size, stats: this.wsStats }, this.restStats));
    this.assets = new StaticAssets(opts.uiDir);
    this.access = new AccessPolicy(opts);
    this.queries = new QueryClient(engine.config);
    this.snapshots = new DashboardSnapshots(engine.config);
  }

  static async start(engine: Engine, options: Partial<DashboardServerOptions> = {}): Promise<DashboardServer> {
    const s = new DashboardServer(engine, { ...DEFAULTS, ...options });
    await s.listen();
    return s;
  }

  get url(): string {
    return `http://${this.opts.host}:${this.port}`;
  }

  private listen(): Promise<void> {
    const app = uWS.App();
    this.app = app;
    const api = '/api/dashboard';
    const q = (req: uWS.HttpRequest) => parseQuery(req.getQuery());
    const hours = (p: URLSearchParams, dflt: number, max = 24 * 7) => numberParam(p, 'hours', dflt, 0.01, max);
    this.cachedRoute(app, `${api}/metrics/active-users`, (req) => ({ name: 'activeUsers', params: { hours: hours(q(req), 1) } }));
    this.cachedRoute(app, `${api}/metrics/revenue`, (req) => {
      const p = q(req);
      return { name: 'revenue', params: { hours: hours(p, 1), granularity: enumParam(p, 'granularity', ['minute', 'hour'] as const, 'minute')! } };
    });
    this.cachedRoute(app, `${api}/analytics/funnel`, (req) => ({ name: 'funnel', params: { hours: hours(q(req), 24) } }));
    this.cachedRoute(app, `${api}/analytics/geo`, (req) => ({ name: 'geo', params: { hours: hours(q(req), 24) } }));
    this.cachedRoute(app, `${api}/analytics/performance`, (req) => ({ name: 'performance', params: { hours: hours(q(req), 1) } }));
    this.cachedRoute(app, `${api}/products/top`, (req) => {
      const p = q(req);
      return { name: 'topProducts', params: { hours: hours(p, 1), limit: numberParam(p, 'limit', 10, 1, 1000, true) } };
    });
    this.cachedRoute(app, `${api}/products/:id`, (req) => ({ name: 'product', params: { id: idParam('id', req.getParameter(0) ?? ''), hours: hours(q(req), 24) } }));
    this.cachedRoute(app, `${api}/users/:id`, (req) => ({ name: 'user', params: { id: idParam('id', req.getParameter(0) ?? '') } }));
    this.cachedRoute(app, `${api}/alerts`, (req) => {
      const p = q(req);
      return {
        name: 'alerts',
        params: {
          hours: hours(p, 24, 24 * 30),
          severity: enumParam(p, 'severity', ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'] as const, undefined),
          limit: numberParam(p, 'limit', 100, 1, 10_000, true),
        },
      };
    });
    for (const action of ['ack', 'resolve'] as const) {
      this.asyncRoute(app, 'post', `${api}/alerts/:id/${action}`, (req) => {
        const id = idParam('id', req.getParameter(0) ?? '');
        return async () => {
          const status = action === 'ack' ? 'ACKNOWLEDGED' : 'RESOLVED';
          if (this.live) return this.setScaledStatus(id, status);
          if (!this.engine.query.alert(id)) return notFound(`alert ${id} does not exist`);
          await this.engine.alertStore.setStatus(id, status);
          // A status change must show at once, not after the cache interval, on every open dashboard.
          this.forgetAnswers();
          const notice = JSON.stringify({ type: 'ALERT_STATUS', alertId: id, status, at: Date.now() });
          for (const ws of this.clients.keys()) this.sendText(ws, notice);
          return { alertId: id, status };
        };
      });
    }
    this.route(app, 'get', `${api}/health`, () => this.health());
    // Scaled out: other instances read this one's partitions for their queries (MessagePack both ways).
    app.post('/internal/scan', (res, req) => {
      if (!this.internalAllowed(res, req)) return;
      let aborted = false;
      res.onAborted(() => (aborted = true));
      const chunks: Buffer[] = [];
      let size = 0;
      res.onData((chunk, isLast) => {
        if (aborted) return;
        size += chunk.byteLength;
        if (size > 4 * 1024 * 1024) {
          aborted = true;
          res.cork(() => res.writeStatus('413 Payload Too Large').end());
          return;
        }
        chunks.push(Buffer.from(chunk.slice(0)));
        if (!isLast) return;
        let status = '200 OK';
        let body: Uint8Array | string;
        try {
          const requests = scanCodec.unpack(Buffer.concat(chunks)) as ScanRequest[];
          this.engine.query.fresh();
          body = scanCodec.pack(this.engine.query.serveScan(requests, new Set(this.engine.ownedPartitions())));
        } catch (e) {
          status = e instanceof QueryUnavailable ? '409 Conflict' : '400 Bad Request';
          body = JSON.stringify({ error: (e as { code?: string }).code ?? 'ERR_SCAN', message: (e as Error).message });
        }
        res.cork(() => res.writeStatus(status).writeHeader('content-type', status === '200 OK' ? 'application/msgpack' : 'application/json').end(body));
      });
    });
    // Scaled out: another instance forwards an acknowledgement to the owner of the alert's partition.
    app.post('/internal/alert-status', (res, req) => {
      if (!this.internalAllowed(res, req)) return;
      // One instance keeps statuses in its alert store (POST /api/dashboard/alerts/:id/ack): nothing to forward to.
      if (!this.live) {
        res.cork(() => writeReply(res, notFound('/internal/alert-status is served only by instances started with --changelog (scaled out)')));
        return;
      }
      let aborted = false;
      res.onAborted(() => (aborted = true));
      const chunks: Buffer[] = [];
      res.onData((chunk, isLast) => {
        if (aborted) return;
        chunks.push(Buffer.from(chunk.slice(0)));
        if (chunks.length > 16) {
          aborted = true;
          res.cork(() => writeReply(res, new Reply(413, { error: 'ERR_TOO_LARGE', message: 'request too large' })));
          return;
        }
        if (!isLast) return;
        let body: { alertId?: unknown; partition?: unknown; status?: unknown };
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = {};
        }
        const { alertId, partition, status } = body;
        if (typeof alertId !== 'string' || alertId.length === 0 || alertId.length > 512 || !Number.isInteger(partition) || (partition as number) < 0 || (partition as number) >= this.engine.config.partitions
          || (status !== 'ACKNOWLEDGED' && status !== 'RESOLVED')) {
          res.cork(() => writeReply(res, new Reply(400, { error: 'ERR_BAD_PARAMETER', message: `expected {"alertId": string, "partition": integer 0..${this.engine.config.partitions - 1}, "status": "ACKNOWLEDGED"|"RESOLVED"}` })));
          return;
        }
        this.writeStatusLocally(alertId, partition as number, status).then(
          (r) => !aborted && res.cork(() => writeReply(res, r)),
          (e) => !aborted && res.cork(() => writeReply(res, errorReply(e))),
        );
      });
    });
    this.route(app, 'get', '/livez', () => ({ status: 'UP' }));
    app.get('/readyz', (res) => {
      const h = this.health();
      const ok = this.ready && h.overallStatus !== 'DOWN';
      res.cork(() => {
        res.writeStatus(ok ? '200 OK' : '503 Service Unavailable').writeHeader('content-type', 'application/json');
        if (!ok) res.writeHeader('retry-after', '5');
        res.end(JSON.stringify({ ready: ok, overallStatus: h.overallStatus }));
      });
    });
    app.get('/metrics', (res, req) => {
      if (!this.authorized(res, req)) return;
      let aborted = false;
      res.onAborted(() => (aborted = true));
      this.registry.metrics().then((text: string) => {
        if (aborted) return;
        res.cork(() => res.writeHeader('content-type', this.registry.contentType).end(text));
      }, () => {
        if (!aborted) res.cork(() => res.writeStatus('500 Internal Server Error').end('{"error":"ERR_METRICS"}'));
      });
    });
    app.ws<Client>('/dashboard-ws', {
      compression: UWS_COMPRESSOR[this.opts.wsCompression],
      // Frames up to 64x the limit are read and refused with a proper 1009 close; beyond that uWS drops the connection.
      maxPayloadLength: this.opts.maxClientMessageBytes * 64,
      maxBackpressure: MAX_BACKPRESSURE,
      idleTimeout: this.opts.idleTimeoutSec,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        if (!this.access.originAllowed(req.getHeader('origin'), req.getHeader('host'))) {
          res.cork(() => res.writeStatus('403 Forbidden').writeHeader('content-type', 'application/json')
            .end(JSON.stringify({ error: 'ERR_ORIGIN', message: 'this Origin may not open the dashboard stream (see --allowed-origins)' })));
          return;
        }
        if (!this.authorized(res, req)) return;
        const limiter = new RateLimiter(this.opts.clientMessagesPerSec, this.opts.clientMessageBurst);
        const deflate = this.opts.wsCompression === 'precompressed' || /(?:^|&)deltas=deflate(?:&|$)/.test(req.getQuery() ?? '');
        res.upgrade<Client>({ id: this.nextClientId++, slow: false, subscriptions: new Set(ALL_METRICS), topic: null, deflate, limiter },
          req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
      },
      open: (ws) => {
        const c = ws.getUserData();
        this.clients.set(ws, c);
        this.sendSnapshot(ws);
        this.subscribe(ws, c);
      },
      message: (ws, message) => this.onClientMessage(ws, message),
      drain: (ws) => {
        const c = ws.getUserData();
        if (c.slow && ws.getBufferedAmount() < this.opts.maxBufferedBytes / 2) {
          c.slow = false;
          this.sendSnapshot(ws);
          this.subscribe(ws, c);
        }
      },
      close: (ws) => {
        this.clients.delete(ws);
      },
    });
    app.any('/*', (res, req) => {
      if (req.getMethod().toLowerCase() === 'get' && this.assets.serve(res, req)) return;
      const url = req.getUrl();
      res.cork(() => res.writeStatus('404 Not Found').writeHeader('content-type', 'application/json').end(JSON.stringify({ error: 'ERR_NOT_FOUND', message: `no route for ${url}` })));
    });
    this.unsubscribe = this.engine.onDeltas((deltas, alerts) => {
      this.snapshotText = null;
      this.stateVersion++;
      // Scaled out, the live stream follows every partition's partials instead (attachLive).
      if (this.live) return;
      for (const d of deltas) {
        let starts = this.dirty.get(d.pipeline);
        if (!starts) this.dirty.set(d.pipeline, (starts = new Set()));
        starts.add(d.windowStart);
      }
      if (alerts.length) this.pendingAlerts.push(...alerts);
    });
    this.tickTimer = setInterval(() => this.tick(), this.opts.tickMs);
    this.tickTimer.unref();
    return new Promise((resolve, reject) => {
      app.listen(this.opts.host, this.opts.port, (sock) => {
        if (!sock) {
          reject(new Error(`cannot listen on ${this.opts.host}:${this.opts.port} (in use?)`));
          return;
        }
        this.listenSocket = sock;
        this.port = uWS.us_socket_local_port(sock);
        this.ready = true;
        resolve();
      });
    });
  }

  /** A synchronous JSON route: errors become 400 (ParamError) or 500 without a stack trace. */
  private route(app: uWS.TemplatedApp, method: 'get' | 'post', pattern: string, handler: (req: uWS.HttpRequest) => Json | Reply) {
    app[method](pattern, (res, req) => {
      if (pattern.startsWith('/api/') && !this.authorized(res, req)) return;
      let out: Reply;
      try {
        const r = handler(req);
        out = r instanceof Reply ? r : new Reply(200, r);
      } catch (e) {
        out = errorReply(e);
      }
      res.cork(() => writeReply(res, out));
    });
  }

  /**
   * A dashboard query. Parameters are validated here (400s); the query itself runs on the query
   * thread, so a long merge never holds up other requests or the live stream. Answers are cached:
   * reused while the committed state is unchanged, and while it changes for `restCacheMs`; after
   * that a request still gets the cached answer at once while the thread recomputes it (for at most
   * five intervals: older answers are recomputed before replying). Only 200 answers are cached.
   */
  private cachedRoute(app: uWS.TemplatedApp, pattern: string, parse: (req: uWS.HttpRequest) => { name: DashboardQuery; params: Record<string, unknown> }) {
    app.get(pattern, (res, req) => {
      if (!this.authorized(res, req)) return;
      let spec: { name: DashboardQuery; params: Record<string, unknown> };
      try {
        spec = parse(req);
      } catch (e) {
        const out = errorReply(e);
        res.cork(() => writeReply(res, out));
        return;
      }
      // Keyed by the validated parameters: unknown query parameters do not make new entries.
      const key = `${spec.name}:${JSON.stringify(spec.params)}`;
      const now = Date.now();
      const hit = this.responseCache.get(key);
      if (hit && (hit.version === this.stateVersion || now - hit.at < this.opts.restCacheMs * 5)) {
        this.restStats.hits++;
        if (hit.version !== this.stateVersion && now - hit.at >= this.opts.restCacheMs) void this.recompute(key, spec);
        res.cork(() => res.writeStatus('200 OK').writeHeader('content-type', 'application/json').end(hit.body));
        return;
      }
      this.restStats.misses++;
      let aborted = false;
      res.onAborted(() => (aborted = true));
      void this.recompute(key, spec).then((r) => {
        if (aborted) return;
        res.cork(() => {
          if (r.ok) res.writeStatus('200 OK').writeHeader('content-type', 'application/json').end(r.body);
          else writeReply(res, new Reply(r.status, { error: r.code, message: r.message }));
        });
      });
    });
  }

  /**
   * A WebSocket request for a dashboard query: answered like the REST route of the same query (the
   * query thread, the same response cache), not computed on the event loop. Computed there, each
   * request of a client within its rate limit (20/s) held up the live stream and every other client
   * for a whole merge (a day of revenue windows), with no cache (found by reliability scenario 10).
   */
  private wsQuery(ws: uWS.WebSocket<Client>, requestId: string | number | null, spec: { name: DashboardQuery; params: Record<string, unknown> }, pick: (body: unknown) => unknown): void {
    const key = `${spec.name}:${JSON.stringify(spec.params)}`;
    const reply = (r: QueryResponse) => {
      if (!this.clients.has(ws)) return; // closed meanwhile
      if (r.ok) this.send(ws, { type: 'RESPONSE', requestId, data: pick(JSON.parse(r.body)) });
      else this.send(ws, { type: 'ERROR', requestId, code: r.code, message: r.message });
    };
    const now = Date.now();
    const hit = this.responseCache.get(key);
    if (hit && (hit.version === this.stateVersion || now - hit.at < this.opts.restCacheMs * 5)) {
      this.restStats.hits++;
      if (hit.version !== this.stateVersion && now - hit.at >= this.opts.restCacheMs) void this.recompute(key, spec);
      reply({ id: 0, ok: true, body: hit.body });
      return;
    }
    this.restStats.misses++;
    void this.recompute(key, spec).then(reply);
  }

  /** One computation per key at a time; the answer is cached with the state version it started from. */
  private recompute(key: string, spec: { name: DashboardQuery; params: Record<string, unknown> }): Promise<QueryResponse> {
    const running = this.recomputing.get(key);
    if (running) return running;
    const version = this.stateVersion;
    const epoch = this.cacheEpoch;
    const at = Date.now();
    const mine: Promise<QueryResponse> = this.queries.run(spec.name, spec.params).then((r) => {
      if (this.recomputing.get(key) === mine) this.recomputing.delete(key);
      if (r.ok && epoch === this.cacheEpoch) {
        this.responseCache.delete(key);
        this.responseCache.set(key, { version, at, body: r.body });
        if (this.responseCache.size > MAX_CACHED_RESPONSES) this.responseCache.delete(this.responseCache.keys().next().value!);
      }
      return r;
    });
    this.recomputing.set(key, mine);
    return mine;
  }

  /** An async route: parameters are read before the first await; onAborted is registered first. */
  private asyncRoute(app: uWS.TemplatedApp, method: 'get' | 'post', pattern: string, handler: (req: uWS.HttpRequest) => () => Promise<Json | Reply>) {
    app[method](pattern, (res, req) => {
      if (!this.authorized(res, req)) return;
      // A state-changing call from a browser must come from an allowed page: a form on another site
      // could otherwise acknowledge or resolve alerts (no preflight for a simple POST).
      const origin = req.getHeader('origin');
      if (origin && !this.access.originAllowed(origin, req.getHeader('host'))) {
        res.cork(() => res.writeStatus('403 Forbidden').writeHeader('content-type', 'application/json')
          .end(JSON.stringify({ error: 'ERR_ORIGIN', message: 'this Origin may not change alerts (see --allowed-origins)' })));
        return;
      }
      let aborted = false;
      res.onAborted(() => (aborted = true));
      let run: () => Promise<Json | Reply>;
      try {
        run = handler(req);
      } catch (e) {
        const out = errorReply(e);
        res.cork(() => writeReply(res, out));
        return;
      }
      run().then(
        (r) => !aborted && res.cork(() => writeReply(res, r instanceof Reply ? r : new Reply(200, r))),
        (e) => !aborted && res.cork(() => writeReply(res, errorReply(e))),
      );
    });
  }

  /**
   * The /internal/* routes are called by other instances only (server to server, never a browser):
   * they need the access token when one is configured, and refuse any request with an Origin (a
   * page on another site could otherwise change alert statuses through a simple cross-site POST
   * to a loopback server without a token, bypassing the Origin check of the public routes).
   */
  private internalAllowed(res: uWS.HttpResponse, req: uWS.HttpRequest): boolean {
    if (!this.authorized(res, req)) return false;
    if (!req.getHeader('origin')) return true;
    res.cork(() => res.writeStatus('403 Forbidden').writeHeader('content-type', 'application/json')
      .end(JSON.stringify({ error: 'ERR_ORIGIN', message: '/internal/* routes are for other engine instances, not browsers' })));
    return false;
  }

  /** Answers 401 and returns false when a token is required and the request does not carry it. */
  private authorized(res: uWS.HttpResponse, req: uWS.HttpRequest): boolean {
    if (!this.access.hostAllowed(req.getHeader('host'))) {
      res.cork(() => res.writeStatus('403 Forbidden').writeHeader('content-type', 'application/json')
        .end(JSON.stringify({ error: 'ERR_HOST', message: 'without an access token the server answers only requests addressed to localhost, 127.0.0.1 or [::1] (DNS rebinding protection); set --access-token to serve other names' })));
      return false;
    }
    if (this.access.authorized(req.getHeader('authorization'), req.getHeader('x-access-token'), req.getQuery())) return true;
    res.cork(() => res.writeStatus('401 Unauthorized').writeHeader('www-authenticate', 'Bearer').writeHeader('content-type', 'application/json')
      .end(JSON.stringify({ error: 'ERR_UNAUTHORIZED', message: 'an access token is required: header "authorization: Bearer <token>" (or ?access_token= on the WebSocket upgrade)' })));
    return false;
  }

  private lagMemo = { at: -Infinity, value: null as number | null };

  /**
   * The source's consumer lag (null for sources without one), at most LAG_MEMO_MS old: the Kafka
   * source sums cached watermarks over every assigned partition (about 60 native calls), which at
   * 1,000 health requests/s was a fifth of the event loop.
   */
  private consumerLag(): number | null {
    const now = performance.now();
    if (now - this.lagMemo.at >= LAG_MEMO_MS) {
      const lagFn = (this.engine.source as { lag?: () => number }).lag;
      this.lagMemo = { at: now, value: typeof lagFn === 'function' ? lagFn.call(this.engine.source) : null };
    }
    return this.lagMemo.value;
  }

  private newestMemo = { at: -Infinity, version: -1, value: 0 };

  /**
   * Newest committed stream time, re-read (one LMDB get and decode per partition) only after a
   * commit changed the state, and at least every LAG_MEMO_MS: it was most of a health request's
   * cost, and a health probe at 1,000 requests/s must not queue the dashboard's requests behind it.
   */
  private newestStreamTime(): number {
    const now = performance.now();
    const m = this.newestMemo;
    if (m.version !== this.stateVersion || now - m.at >= LAG_MEMO_MS) {
      this.newestMemo = { at: now, version: this.stateVersion, value: this.engine.query.latestStreamTime() };
    }
    return this.newestMemo.value;
  }

  health(): { overallStatus: 'UP' | 'DEGRADED' | 'DOWN'; stream: unknown; outputs: unknown; shards: unknown; freshness: unknown; notifications: unknown; scale?: unknown } {
    const e = this.engine;
    const shards = e.dispatcher.channelInfo().map((c) => ({ shard: c.shard, worker: c.worker, recovering: c.recovering, recycling: c.recycling, failed: c.failed, failures: c.failures, lastFailure: c.lastFailure, inFlight: c.inFlight }));
    const stores = e.query.availability();
    const newest = this.newestStreamTime();
    const ageMs = newest > 0 ? Date.now() - newest : null;
    const notif = { enabled: e.notifier.enabled, pending: e.notifier.pending, ...e.notifier.stats };
    const anyRecovering = shards.some((s) => s.recovering || s.failures > 0);
    const outputs = e.sink.stats ?? null;
    const consumerLag = this.consumerLag();
    const sourceStats = e.source.stats ?? null;
    const storesDown = stores.filter((s) => !s.available).length;
    const anyFailed = shards.some((s) => (s as { failed?: boolean }).failed);
    // The source cannot reach its brokers (Kafka): the dashboard is served but nothing new arrives.
    const sourceDown = Number(sourceStats?.brokersDownSince ?? 0) > 0 || Number(sourceStats?.consumerFailedSince ?? 0) > 0;
    const overallStatus = storesDown === stores.length || anyFailed ? 'DOWN'
      : anyRecovering || sourceDown || storesDown > 0 || (notif.enabled && notif.failed > 0) || (outputs?.failed ?? 0) > 0 ? 'DEGRADED' : 'UP';
    return {
      overallStatus,
      stream: { source: e.source.name, sourceStats, eventsProcessed: e.metrics.events, committedEvents: Object.values(e.committedCounters).reduce((n, c) => n + c.events, 0), lastError: e.lastError?.message ?? null },
      outputs,
      shards: shards.map((s, i) => ({ ...s, storeAvailable: stores[i]?.available ?? false })),
      freshness: { newestEventTime: newest ? new Date(newest).toISOString() : null, ageOfNewestEventMs: ageMs, consumerLagMessages: consumerLag, slabsInFlight: shards.reduce((n, s) => n + s.inFlight, 0) },
      notifications: notif,
      ...(e.scale ? { scale: this.scaleHealth() } : {}),
    };
  }

  /** Scaled out: the partitions this instance owns, its restores and changelog writes. */
  private scaleHealth(): Record<string, unknown> {
    const e = this.engine;
    const restores = e.restores;
    return {
      instanceId: this.registry_?.instanceId ?? null,
      ownedPartitions: e.ownedPartitions(),
      owners: this.routingView(),
      restoring: Number(e.source.stats?.restoring ?? 0),
      restores: {
        count: restores.length,
        byMode: restores.reduce<Record<string, number>>((m, r) => ((m[r.mode] = (m[r.mode] ?? 0) + 1), m), {}),
        records: restores.reduce((n, r) => n + r.records, 0),
        bytes: restores.reduce((n, r) => n + r.bytes, 0),
        ms: Math.round(e.restoreBatches.reduce((n, b) => n + b.ms, 0)),
        batches: e.restoreBatches.slice(-8).map((b) => ({ ...b, ms: Math.round(b.ms) })),
        last: restores.slice(-16).map((r) => ({ partition: r.partition, mode: r.mode, records: r.records, bytes: r.bytes, ms: Math.round(r.ms) })),
      },
      changelog: { ...e.scale!.writer.stats, txnMsTotal: Math.round(e.scale!.writer.stats.txnMsTotal) },
      live: this.live ? { ready: this.live.ready, entries: this.live.size, ...this.live.stats } : null,
      globalAlerts: { evaluator: e.ownedPartitions().includes(0), ...e.scaledGlobalStats },
    };
  }

  /** The dashboard's tiles and recent series, built on the event loop (see DashboardSnapshots). */
  snapshot(opts: { latencyMinutes?: number } = {}): Record<string, unknown> {
    if (this.live && this.engine.liveQuery) {
      // Scaled out: every partition, from the committed partials every owner publishes.
      return { ...this.snapshots.build(this.engine.liveQuery, this.liveTiles(), opts), stalePartitions: this.stalePartitions() };
    }
    return this.snapshots.build(this.engine.query, this.liveTiles(), opts);
  }

  /**
   * Scaled out: partitions without a live owner right now (a rebalance, an instance that died).
   * Their numbers on the dashboard are their last committed ones (complete, possibly not the newest).
   */
  private stalePartitions(): number[] {
    const owners = this.registry_?.owners();
    if (!owners) return [];
    return Array.from({ length: this.engine.config.partitions }, (_, p) => p).filter((p) => !owners.has(p));
  }

  /** The snapshot's tiles that come from the engine's main thread. */
  private liveTiles(): LiveTiles {
    if (this.live) {
      // Scaled out: the exactly-once counters of every partition, from the partials' progress records.
      let late = 0;
      let dead = 0;
      let events = 0;
      for (const v of this.live.views) {
        const c = v.meta?.counters;
        if (!c) continue;
        events += c.events;
        dead += c.deadLetters;
        for (const n of Object.values(c.late)) late += n;
      }
      return {
        lateDrops: late, deadLetters: dead, eventsProcessed: events, consumerLag: this.consumerLag(),
        slabsInFlight: this.engine.dispatcher.channelInfo().reduce((n, c) => n + c.inFlight, 0),
      };
    }
    const totals = this.engine.committedTotals();
    return {
      lateDrops: Object.values(totals.late).reduce((a, b) => a + b, 0),
      deadLetters: totals.deadLetters,
      slabsInFlight: this.engine.dispatcher.channelInfo().reduce((n, c) => n + c.inFlight, 0),
      consumerLag: this.consumerLag(),
      eventsProcessed: this.engine.metrics.events,
    };
  }

  private tick(): void {
    // Scaled out: a rebalance starting or ending changes what the dashboards must say
    // (stalePartitions) even when no commit does (idle input): a delta then carries just that.
    const staleNow = this.live ? this.stalePartitions().join(',') : '';
    if (staleNow !== this.snapshotStale) this.snapshotText = null; // connecting clients get the current list
    const staleChanged = staleNow !== this.staleSent;
    if (this.clients.size === 0) {
      this.dirty.clear();
      this.pendingAlerts = [];
      return;
    }
    if (this.dirty.size === 0 && this.pendingAlerts.length === 0 && !staleChanged) return;
    // One snapshot at a time: changes announced meanwhile wait for the next tick.
    if (this.snapshotInFlight) return;
    const dirty = this.dirty;
    this.dirty = new Map();
    const alerts = this.pendingAlerts.splice(0);
    // Scaled out, the snapshot is built from the in-memory partials of every partition: sums, cheap on the event loop.
    if (this.opts.tickSnapshot === 'event-loop' || this.live) {
      const t0 = performance.now();
      const snap = this.buildSnapshot();
      this.tickSeconds.observe({ phase: 'snapshot' }, (performance.now() - t0) / 1000);
      this.publishDeltas(snap, dirty, alerts);
      return;
    }
    // The snapshot is built on the query thread: its queries and histogram merges (10-50 ms) would
    // otherwise hold up every request and socket on this loop once per tick.
    const version = this.stateVersion;
    const epoch = this.cacheEpoch;
    this.snapshotInFlight = true;
    void this.queries.run('snapshot', { live: this.liveTiles() }).then((r) => {
      if (this.closed) return;
      const t0 = performance.now();
      let snap: Record<string, unknown>;
      if (r.ok) {
        snap = JSON.parse(r.body) as Record<string, unknown>;
        // Kept for connecting clients only while it is the newest state (nothing announced since the request).
        if (version === this.stateVersion && epoch === this.cacheEpoch) {
          this.snapshotObj = snap;
          this.snapshotText = `{"type":"SNAPSHOT",${r.body.slice(1)}`;
          this.snapshotAt = Date.now();
        }
      } else snap = this.buildSnapshot(); // the query thread is busy or restarting
      this.tickSeconds.observe({ phase: 'snapshot' }, (performance.now() - t0) / 1000);
      this.publishDeltas(snap, dirty, alerts);
    }).catch(() => {
      // a failed tick: the next snapshot a client gets is complete anyway
    }).finally(() => {
      this.snapshotInFlight = false;
      for (const ws of this.deferredSubscriptions.splice(0)) {
        const c = this.clients.get(ws);
        if (c && !c.slow && !c.topic) this.subscribe(ws, c);
      }
    });
  }

  /** One delta per topic, cut from the tick's snapshot: the windows announced since the previous tick. */
  private publishDeltas(snap: Record<string, unknown>, dirty: Map<string, Set<number>>, alerts: unknown[]): void {
    const changedSeries = new Map<LiveMetric, unknown[]>();
    for (const m of ALL_METRICS) {
      const starts = dirty.get(LIVE_METRICS[m]);
      if (!starts) continue;
      const rows = (snap[m] as Array<{ windowStart: number }>).filter((r) => starts.has(r.windowStart));
      if (rows.length) changedSeries.set(m, rows);
    }
    this.markSlowClients();
    const app = this.app;
    if (!app) return;
    const t1 = performance.now();
    for (const topic of this.topics) {
      const receivers = app.numSubscribers(topic);
      if (receivers === 0) {
        this.topics.delete(topic);
        continue;
      }
      const delta: Record<string, unknown> = {
        // type and sentAt first: bench:fanout reads only the head of each message
        type: 'DELTA', sentAt: Date.now(), changed: [...dirty.keys()], streamTime: snap.streamTime, watermark: snap.watermark, tiles: snap.tiles, newAlerts: alerts,
        ...(snap.stalePartitions ? { stalePartitions: snap.stalePartitions } : {}),
      };
      if (Array.isArray(snap.stalePartitions)) this.staleSent = snap.stalePartitions.join(',');
      for (const m of topic.slice(9).split(',')) {
        const rows = changedSeries.get(m as LiveMetric);
        if (rows) delta[m] = rows;
      }
      this.publish(topic, JSON.stringify(delta), receivers, topic[7] === 'z');
    }
    this.tickSeconds.observe({ phase: 'publish' }, (performance.now() - t1) / 1000);
  }

  /** Bytes waiting in the server's send buffers, over all clients (bounded by maxBackpressure per client). */
  bufferedBytes(): number {
    let n = 0;
    for (const ws of this.clients.keys()) n += ws.getBufferedAmount();
    return n;
  }

  /** Topics with (possibly) subscribers. */
  private readonly topics = new Set<string>();

  private subscribe(ws: uWS.WebSocket<Client>, c: Client): void {
    // A client that just got a snapshot joins after the delta being built is sent: that delta was
    // read before the snapshot it has, and could only take a window back to an older value.
    if (!c.topic && this.snapshotInFlight) {
      this.deferredSubscriptions.push(ws);
      return;
    }
    if (c.topic) ws.unsubscribe(c.topic);
    c.topic = topicOf(c.subscriptions, c.deflate);
    this.topics.add(c.topic);
    ws.subscribe(c.topic);
  }

  /**
   * A client whose send buffer is past the limit is unsubscribed: it gets no deltas until it
   * drains, then one fresh snapshot (coalescing), so a slow reader never makes memory grow.
   */
  private markSlowClients(): void {
    for (const [ws, c] of this.clients) {
      if (c.slow) this.wsStats.skippedSlow++;
      else if (ws.getBufferedAmount() > this.opts.maxBufferedBytes) {
        c.slow = true;
        if (c.topic) ws.unsubscribe(c.topic);
        c.topic = null;
        this.wsStats.skippedSlow++;
      }
    }
  }

  /** One delta to every subscriber of a topic, compressed once (our own raw DEFLATE, or the uWS compressor negotiated for text clients). */
  private publish(topic: string, text: string, receivers: number, deflate: boolean): void {
    const app = this.app!;
    if (deflate) {
      const frame = deflateRawSync(text);
      app.publish(topic, frame, true, false);
      this.wsStats.bytes += frame.length * receivers;
    } else {
      app.publish(topic, text, false, true);
      this.wsStats.bytes += text.length * receivers;
    }
    this.wsStats.messages += receivers;
  }

  private onClientMessage(ws: uWS.WebSocket<Client>, message: ArrayBuffer): void {
    const client = ws.getUserData();
    if (message.byteLength > this.opts.maxClientMessageBytes) {
      ws.end(1009, `messages are limited to ${this.opts.maxClientMessageBytes} bytes`);
      return;
    }
    if (!client.limiter.take()) {
      this.wsStats.rateLimited++;
      if (client.limiter.violations >= MAX_RATE_VIOLATIONS) {
        ws.end(1008, 'too many messages');
        return;
      }
      this.send(ws, { type: 'ERROR', requestId: null, code: 'ERR_RATE_LIMITED', message: `at most ${this.opts.clientMessagesPerSec} messages per second (bursts of ${this.opts.clientMessageBurst}); this one was dropped` });
      return;
    }
    let req: { type?: unknown; requestId?: unknown; [k: string]: unknown };
    try {
      req = JSON.parse(Buffer.from(message).toString('utf8'));
      if (req === null || typeof req !== 'object') throw new Error('not an object');
    } catch {
      this.send(ws, { type: 'ERROR', requestId: null, code: 'ERR_BAD_MESSAGE', message: 'messages must be JSON objects like {"type":"GET_USER_ANALYTICS","requestId":"1","userId":"user-1"}' });
      return;
    }
    const requestId = typeof req.requestId === 'string' || typeof req.requestId === 'number' ? req.requestId : null;
    const fail = (code: string, msg: string) => this.send(ws, { type: 'ERROR', requestId, code, message: msg });
    try {
      switch (req.type) {
        case 'GET_USER_ANALYTICS': {
          if (typeof req.userId !== 'string') return fail('ERR_BAD_PARAMETER', 'userId (string) is required');
          return this.wsQuery(ws, requestId, { name: 'user', params: { id: idParam('userId', req.userId) } }, (body) => body);
        }
        case 'GET_REVENUE_BREAKDOWN': {
          const hours = req.hours === undefined ? 1 : Number(req.hours);
          if (!(hours > 0 && hours <= 168)) return fail('ERR_BAD_PARAMETER', 'hours must be a number in (0, 168]');
          return this.wsQuery(ws, requestId, { name: 'revenue', params: { hours, granularity: 'hour' } }, (body) => (body as { windows: unknown }).windows);
        }
        case 'GET_ALERT_DETAILS': {
          if (typeof req.alertId !== 'string') return fail('ERR_BAD_PARAMETER', 'alertId (string) is required');
          const a = (this.engine.liveQuery ?? this.engine.query).alert(req.alertId);
          return a ? this.send(ws, { type: 'RESPONSE', requestId, data: a }) : fail('ERR_NOT_FOUND', `alert ${req.alertId} does not exist`);
        }
        case 'SUBSCRIBE_METRIC':
        case 'UNSUBSCRIBE_METRIC': {
          if (typeof req.metric !== 'string' || !(ALL_METRICS as string[]).includes(req.metric)) {
            return fail('ERR_BAD_PARAMETER', `metric must be one of ${ALL_METRICS.join(', ')}; got ${JSON.stringify(req.metric)}`);
          }
          const c = ws.getUserData();
          if (req.type === 'SUBSCRIBE_METRIC') c.subscriptions.add(req.metric);
          else c.subscriptions.delete(req.metric);
          if (!c.slow) this.subscribe(ws, c);
          // A (re)subscribed series starts from its current rows: deltas only carry what changes next.
          const rows = req.type === 'SUBSCRIBE_METRIC' ? { [req.metric]: (this.snapshotObj ?? this.snapshot())[req.metric] } : {};
          return this.send(ws, { type: 'RESPONSE', requestId, data: { subscriptions: ALL_METRICS.filter((m) => c.subscriptions.has(m)), ...rows } });
        }
        default:
          return fail('ERR_UNKNOWN_TYPE', `unknown message type ${JSON.stringify(req.type)}; expected GET_USER_ANALYTICS, GET_REVENUE_BREAKDOWN, GET_ALERT_DETAILS, SUBSCRIBE_METRIC or UNSUBSCRIBE_METRIC`);
      }
    } catch (e) {
      return fail(e instanceof ParamError ? e.code : 'ERR_INTERNAL', e instanceof ParamError ? e.message : 'the request failed');
    }
  }

  /**
   * The snapshot a (re)connecting client gets, built once per state change and shared: a
   * thousand dashboards reconnecting after a restart cost one set of queries, not a thousand.
   */
  private sendSnapshot(ws: uWS.WebSocket<Client>): void {
    if (this.snapshotText === null || Date.now() - this.snapshotAt > this.opts.tickMs) this.buildSnapshot();
    this.wsStats.snapshots++;
    this.sendText(ws, this.snapshotText!);
  }

  /** A fresh snapshot (it must see the commits just announced), kept with its JSON text for the clients that connect next. */
  private buildSnapshot(): Record<string, unknown> {
    if (!this.live) this.engine.query.fresh();
    const snap = this.snapshot();
    this.snapshotObj = snap;
    if (Array.isArray(snap.stalePartitions)) this.snapshotStale = snap.stalePartitions.join(',');
    this.snapshotText = JSON.stringify({ type: 'SNAPSHOT', ...snap });
    this.snapshotAt = Date.now();
    return snap;
  }

  private send(ws: uWS.WebSocket<Client>, msg: Record<string, unknown>): void {
    if (msg.type === 'SNAPSHOT') this.wsStats.snapshots++;
    this.sendText(ws, JSON.stringify(msg));
  }

  private sendText(ws: uWS.WebSocket<Client>, text: string): void {
    try {
      ws.send(text, false, true);
      this.wsStats.messages++;
      this.wsStats.bytes += text.length;
    } catch {
      // closed meanwhile
    }
  }

  /** Cached answers are from before a change that must show at once (an alert status). */
  private forgetAnswers(): void {
    this.stateVersion++;
    this.cacheEpoch++;
    this.responseCache.clear();
    this.recomputing.clear();
    this.snapshotText = null;
  }

  /**
   * Scaled out: the live stream (snapshot, deltas, tiles, new alerts, alert statuses) follows every
   * partition's committed partials (engine/kafka/live-partials.ts), this instance's own included,
   * instead of this instance's commits. A delta carries the windows any partition's commit changed
   * since the last tick, read from the same partials a new client's snapshot is built from.
   */
  attachLive(live: LivePartials): void {
    this.live = live;
    this.unsubscribers.push(live.onUpdate((u) => {
      this.snapshotText = null;
      this.stateVersion++;
      for (const d of u.changed) {
        let starts = this.dirty.get(d.pipeline);
        if (!starts) this.dirty.set(d.pipeline, (starts = new Set()));
        starts.add(d.windowStart);
      }
      if (u.newAlerts.length) this.pendingAlerts.push(...u.newAlerts);
      if (u.statuses.length) {
        this.forgetAnswers();
        for (const st of u.statuses) {
          const notice = JSON.stringify({ type: 'ALERT_STATUS', alertId: st.alertId, status: st.status, at: st.at });
          for (const ws of this.clients.keys()) this.sendText(ws, notice);
        }
      }
    }));
  }

  /**
   * Scaled out: an alert's status is kept in the state of the alert's partition (and so in its
   * changelog: it moves with the partition), written by the partition's owner. Another instance's
   * request is forwarded to it; during a rebalance the answer is 503 with Retry-After.
   */
  private async setScaledStatus(id: string, status: 'ACKNOWLEDGED' | 'RESOLVED'): Promise<Json | Reply> {
    const q = this.engine.liveQuery!;
    const partition = q.alertPartition(id);
    if (partition === null) return notFound(`alert ${id} does not exist`);
    if (this.engine.ownedPartitions().includes(partition)) return this.writeStatusLocally(id, partition, status);
    const owner = this.registry_?.owners().get(partition);
    if (!owner) return unavailable(`partition ${partition} (alert ${id}) has no known owner right now (a rebalance is under way); retry in a few seconds`);
    let r: Response;
    try {
      r = await fetch(`${owner.url}/internal/alert-status`, {
        method: 'POST',
        body: JSON.stringify({ alertId: id, partition, status }),
        headers: { 'content-type': 'application/json', ...(this.opts.accessToken ? { authorization: `Bearer ${this.opts.accessToken}` } : {}) },
        signal: AbortSignal.timeout(10_000),
      });
    } catch (e) {
      return unavailable(`the owner of partition ${partition} (${owner.url}) did not answer: ${(e as Error).message}; retry in a few seconds`);
    }
    const body = (await r.json().catch(() => ({}))) as Json;
    if (r.status === 200) {
      this.forgetAnswers();
      return body;
    }
    if (r.status === 409 || r.status === 503) return unavailable(`the owner of partition ${partition} (${owner.url}) refused: ${JSON.stringify(body)}; retry in a few seconds`);
    return new Reply(r.status === 404 ? 404 : 500, body);
  }

  /** Writes an alert status into its (owned) partition's state: committed and in the changelog before the answer. */
  private async writeStatusLocally(id: string, partition: number, status: 'ACKNOWLEDGED' | 'RESOLVED'): Promise<Reply> {
    if (!this.engine.ownedPartitions().includes(partition)) return new Reply(409, { error: 'ERR_PARTITION_NOT_OWNED', message: `partition ${partition} is not owned by this instance (any more)` });
    // Loaded in its shard but not yet routed to this thread's reads (an assignment in progress).
    if (!this.engine.query.isLocal(partition)) return unavailable(`partition ${partition} is being taken over by this instance; retry in a few seconds`);
    // Only an alert the partition holds gets a status (a status key is never deleted: no strays).
    this.engine.query.fresh();
    if (this.engine.query.readKey(partition, ['alerts', id]) === undefined) return notFound(`alert ${id} does not exist in partition ${partition}`);
    try {
      await this.engine.writeState(partition, [[[partition, ALERT_STATUS, id], { status, at: Date.now() }]]);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ERR_PARTITION_NOT_OWNED') return new Reply(409, { error: 'ERR_PARTITION_NOT_OWNED', message: (e as Error).message });
      // The shard is recovering or has given up: the status is not written; the caller may retry.
      return unavailable(`alert ${id}: the status could not be written to partition ${partition} (${(e as Error).message}); retry in a few seconds`);
    }
    this.forgetAnswers();
    return new Reply(200, { alertId: id, status });
  }

  /**
   * Scaled out: REST queries cover every partition, reading the others from their owners (as the
   * registry knows them); the routing is pushed to the query thread on every change. Cached REST
   * answers are kept only for restCacheMs (other instances' commits do not bump the local version).
   */
  attachRegistry(registry: InstanceRegistry): void {
    this.registry_ = registry;
    const push = () => {
      const owners = registry.owners();
      const local = this.engine.ownedPartitions();
      const mine = new Set(local);
      const routing = {
        local,
        owners: Object.fromEntries([...owners].filter(([p]) => !mine.has(p)).map(([p, o]) => [p, o.url])),
        ...(this.opts.accessToken ? { accessToken: this.opts.accessToken } : {}),
      };
      const text = JSON.stringify(routing);
      if (text !== this.routingText) {
        this.routingText = text;
        this.queries.setRouting(routing);
        this.stateVersion++;
      }
    };
    this.unsubscribers.push(registry.onChange(push), this.engine.onOwnership(push));
    this.routingTimer = setInterval(() => {
      push();
      this.stateVersion++;
    }, Math.max(250, this.opts.restCacheMs));
    this.routingTimer.unref();
    push();
  }

  /** Scaled out: partition -> owner instance, as this instance sees it (health). */
  private routingView(): Record<string, string> | null {
    if (!this.registry_) return null;
    return Object.fromEntries([...this.registry_.owners()].map(([p, o]) => [p, o.instanceId]));
  }

  async close(): Promise<void> {
    this.ready = false;
    this.closed = true;
    if (this.routingTimer) clearInterval(this.routingTimer);
    for (const u of this.unsubscribers.splice(0)) u();
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.unsubscribe?.();
    if (this.listenSocket) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
    for (const ws of [...this.clients.keys()]) {
      try {
        ws.end(1001, 'server shutting down');
      } catch {
        // already closed
      }
    }
    this.clients.clear();
    await this.queries.close();
  }
}

class Reply {
  constructor(readonly status: number, readonly body: Json) {}
}

function notFound(message: string): Reply {
  return new Reply(404, { error: 'ERR_NOT_FOUND', message });
}

function unavailable(message: string): Reply {
  return new Reply(503, { error: 'ERR_PARTITION_UNAVAILABLE', message });
}

function errorReply(e: unknown): Reply {
  if (e instanceof ParamError) return new Reply(400, { error: e.code, parameter: e.parameter, message: e.message });
  const code = (e as { code?: string }).code;
  if (code === 'ERR_STORE_MISSING') return new Reply(503, { error: code, message: 'the state store is not ready yet' });
  return new Reply(500, { error: 'ERR_INTERNAL', message: 'the request failed; see the server log' });
}

const STATUS: Record<number, string> = { 200: '200 OK', 400: '400 Bad Request', 403: '403 Forbidden', 404: '404 Not Found', 409: '409 Conflict', 413: '413 Payload Too Large', 500: '500 Internal Server Error', 503: '503 Service Unavailable' };

function writeReply(res: uWS.HttpResponse, r: Reply): void {
  res.writeStatus(STATUS[r.status] ?? String(r.status)).writeHeader('content-type', 'application/json');
  if (r.status === 503) res.writeHeader('retry-after', '5');
  res.end(JSON.stringify(r.body));
}
