import { parentPort, workerData } from 'node:worker_threads';
import { AlertStore } from '../engine/alerts/alert-store.js';
import type { EngineConfig } from '../engine/config.js';
import { QueryLayer } from '../engine/query/query.js';
import { DASHBOARD_QUERIES, QueryNotFound, type DashboardQuery } from './queries.js';

/**
 * The server's query thread: its own read handles on the shards' LMDB environments and the alert
 * store (lmdb-js shares an environment between threads), answering one query at a time with the
 * JSON text of the answer.
 */
export interface QueryRequest {
  id: number;
  name: DashboardQuery;
  params: Record<string, unknown>;
}

export type QueryResponse =
  | { id: number; ok: true; body: string }
  | { id: number; ok: false; status: 404 | 503 | 500; code: string; message: string };

const config = (workerData as { config: EngineConfig }).config;
const layer = new QueryLayer(config, AlertStore.open(config.dataDir));

parentPort!.on('message', (req: QueryRequest) => {
  let res: QueryResponse;
  try {
    layer.fresh(); // several queued requests run in one turn: each must see the latest commit
    res = { id: req.id, ok: true, body: JSON.stringify(DASHBOARD_QUERIES[req.name](layer, req.params)) };
  } catch (e) {
    const code = (e as { code?: string }).code ?? '';
    if (e instanceof QueryNotFound) res = { id: req.id, ok: false, status: 404, code: e.code, message: e.message };
    else if (code === 'ERR_STORE_MISSING') res = { id: req.id, ok: false, status: 503, code, message: 'the state store is not ready yet' };
    else res = { id: req.id, ok: false, status: 500, code: 'ERR_INTERNAL', message: 'the request failed; see the server log' };
  }
  parentPort!.postMessage(res);
});
