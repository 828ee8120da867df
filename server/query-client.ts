import { Worker } from 'node:worker_threads';
import type { EngineConfig } from '../engine/config.js';
import { builtFile } from '../engine/built-file.js';
import type { DashboardQuery } from './queries.js';
import type { QueryRequest, QueryResponse, RoutingUpdate } from './query-worker.js';
import type { Routing } from '../engine/query/remote.js';

/** The built worker (dist/server/query-worker.js), whether this file runs from the build or from source (tests). */
function workerFile(): string {
  return builtFile(import.meta.url, 'server', 'query-worker.js');
}

const MAX_PENDING_QUERIES = 64;

/** The main thread's side of the query thread: requests by id; a thread that dies is restarted and its requests fail (500). */
export class QueryClient {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, (r: QueryResponse) => void>();
  private closed = false;
  private routing: Routing | null = null;

  constructor(private readonly config: EngineConfig) {}

  /** Scaled out: where the query thread reads each partition (kept for a restarted thread). */
  setRouting(routing: Routing): void {
    this.routing = routing;
    this.worker?.postMessage({ type: 'routing', routing } satisfies RoutingUpdate);
  }

  private start(): Worker {
    const w = new Worker(workerFile(), { workerData: { config: this.config } });
    w.on('message', (r: QueryResponse) => {
      const done = this.pending.get(r.id);
      this.pending.delete(r.id);
      done?.(r);
    });
    const fail = () => {
      if (this.worker !== w) return;
      this.worker = null;
      for (const [id, done] of this.pending) done({ id, ok: false, status: 500, code: 'ERR_QUERY_THREAD', message: 'the query thread stopped; retry' });
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', fail);
    w.unref();
    if (this.routing) w.postMessage({ type: 'routing', routing: this.routing } satisfies RoutingUpdate);
    return w;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  run(name: DashboardQuery | 'snapshot', params: Record<string, unknown>): Promise<QueryResponse> {
    if (this.closed) return Promise.resolve({ id: 0, ok: false, status: 503, code: 'ERR_CLOSING', message: 'the server is shutting down' });
    // Bounded: distinct heavy queries cannot queue without limit behind one another.
    if (this.pending.size >= MAX_PENDING_QUERIES) return Promise.resolve({ id: 0, ok: false, status: 503, code: 'ERR_BUSY', message: `${MAX_PENDING_QUERIES} queries are already running; retry shortly` });
    this.worker ??= this.start();
    const id = this.nextId++;
    const req: QueryRequest = { id, name, params };
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.worker!.postMessage(req);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    for (const [id, done] of this.pending) done({ id, ok: false, status: 503, code: 'ERR_CLOSING', message: 'the server is shutting down' });
    this.pending.clear();
    if (w) await w.terminate();
  }
}
