import { parentPort, workerData } from 'node:worker_threads';
import { AlertStore } from '../engine/alerts/alert-store.js';
import type { EngineConfig } from '../engine/config.js';
import { QueryLayer, QueryUnavailable } from '../engine/query/query.js';
import { fanOut, type Routing } from '../engine/query/remote.js';
import { lowerThreadPriority } from '../engine/workers/thread-priority.js';
import { DASHBOARD_QUERIES, DashboardSnapshots, QueryNotFound, type DashboardQuery, type LiveTiles } from './queries.js';

/**
 * The server's query thread: its own read handles on the shards' LMDB environments and the alert
 * store (lmdb-js shares an environment between threads), answering one query at a time with the
 * JSON text of the answer.
 */
export interface QueryRequest {
  id: number;
  /** A REST query, or 'snapshot': the live-update tick's dashboard snapshot (params.live: the main thread's tiles). */
  name: DashboardQuery | 'snapshot';
  params: Record<string, unknown>;
}

/** Scaled out: which partitions are read here, and the owners of the others (sent on every change). */
export interface RoutingUpdate {
  type: 'routing';
  routing: Routing;
}

export type QueryResponse =
  | { id: number; ok: true; body: string }
  | { id: number; ok: false; status: 404 | 503 | 500; code: string; message: string };

const config = (workerData as { config: EngineConfig }).config;
// Recomputations and tick snapshots are background work: REST answers come from the main thread's cache.
lowerThreadPriority(config.workerNice);
const layer = new QueryLayer(config, AlertStore.open(config.dataDir));
const snapshots = new DashboardSnapshots(config);

let routing: Routing | null = null;

function failure(req: QueryRequest, e: unknown): QueryResponse {
  const code = (e as { code?: string }).code ?? '';
  if (e instanceof QueryNotFound) return { id: req.id, ok: false, status: 404, code: e.code, message: e.message };
  if (code === 'ERR_STORE_MISSING') return { id: req.id, ok: false, status: 503, code, message: 'the state store is not ready yet' };
  if (e instanceof QueryUnavailable) return { id: req.id, ok: false, status: 503, code: e.code, message: e.message };
  return { id: req.id, ok: false, status: 500, code: 'ERR_INTERNAL', message: 'the request failed; see the server log' };
}

parentPort!.on('message', (msg: QueryRequest | RoutingUpdate) => {
  if ('type' in msg) {
    routing = msg.routing;
    return;
  }
  const req = msg;
  if (routing && req.name === 'snapshot') {
    // Scaled out, the dashboard snapshot shows this instance's partitions, read on the event loop (the server does not ask).
    parentPort!.postMessage({ id: req.id, ok: false, status: 503, code: 'ERR_SCALED_OUT', message: 'snapshots are built on the event loop when scaled out' } satisfies QueryResponse);
    return;
  }
  if (routing) {
    // Scaled out: this instance's partitions from its stores, the others from their owners.
    const r = routing;
    const local = new Set(r.local);
    fanOut(config.partitions, r, (remote) => {
      layer.setRouting({ local, remote, unknown: 'throw' });
      layer.fresh();
      return JSON.stringify(DASHBOARD_QUERIES[req.name as DashboardQuery](layer, req.params));
    }).then(
      (body) => parentPort!.postMessage({ id: req.id, ok: true, body } satisfies QueryResponse),
      (e) => parentPort!.postMessage(failure(req, e)),
    );
    return;
  }
  let res: QueryResponse;
  try {
    layer.fresh(); // several queued requests run in one turn: each must see the latest commit
    const answer = req.name === 'snapshot' ? snapshots.build(layer, req.params.live as LiveTiles) : DASHBOARD_QUERIES[req.name](layer, req.params);
    res = { id: req.id, ok: true, body: JSON.stringify(answer) };
  } catch (e) {
    res = failure(req, e);
  }
  parentPort!.postMessage(res);
});
