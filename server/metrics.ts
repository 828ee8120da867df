import client from 'prom-client';
import type { Engine } from '../engine/index.js';

/**
 * Prometheus metrics (prom-client), read from the engine at scrape time. Counters of processing
 * (events in, per source) include replays after a failure; the `_committed_` ones are the
 * exactly-once counters stored with the state.
 */
export interface ServerMetrics {
  registry: client.Registry;
  /** Main-thread time of one live-update tick, by phase: 'snapshot' (queries and JSON), 'publish' (deltas to every topic). */
  tickSeconds: client.Histogram<'phase'>;
}

export function createMetrics(engine: Engine, ws: { clients: () => number; stats: { messages: number; bytes: number; skippedSlow: number; snapshots: number } }, rest: { hits: number; misses: number }): ServerMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'rta_process_' });
  const g = (name: string, help: string, labelNames: string[], collect: (this: client.Gauge) => void) =>
    new client.Gauge({ name, help, labelNames, registers: [registry], collect });
  g('rta_engine_events_in_total', 'Events processed (including replays), by source', ['source'], function () {
    for (const [s, n] of Object.entries(engine.metrics.eventsBySource)) this.set({ source: s }, n);
  });
  g('rta_engine_committed_events_total', 'Events counted in committed state (exactly once)', [], function () {
    this.set(engine.committedTotals().events);
  });
  g('rta_engine_late_records_dropped_total', 'Records later than window end + grace, by pipeline (committed)', ['pipeline'], function () {
    for (const [p, n] of Object.entries(engine.committedTotals().late)) this.set({ pipeline: p }, n);
  });
  g('rta_engine_dead_letters_total', 'Messages or events sent to the dead-letter sink (committed)', [], function () {
    this.set(engine.committedTotals().deadLetters);
  });
  g('rta_engine_unknown_users_total', 'Events whose user has no profile (LEFT join, tier UNKNOWN)', [], function () {
    this.set(engine.metrics.unknownUsers);
  });
  g('rta_engine_outputs_total', 'Output records emitted (closed windows, sessions)', [], function () {
    this.set(engine.metrics.outputs);
  });
  g('rta_engine_alerts_total', 'Alerts raised (including re-evaluations)', [], function () {
    this.set(engine.metrics.alerts);
  });
  g('rta_engine_output_records_failed_total', 'Output records whose delivery failed after every retry', [], function () {
    this.set(engine.sink.stats?.failed ?? 0);
  });
  g('rta_engine_output_records_delivered_total', 'Output records delivered (Kafka)', [], function () {
    this.set(engine.sink.stats?.delivered ?? 0);
  });
  g('rta_engine_consumer_lag_messages', 'Kafka messages on the broker not yet processed (assigned partitions)', [], function () {
    const lag = (engine.source as { lag?: () => number }).lag;
    this.set(typeof lag === 'function' ? lag.call(engine.source) : 0);
  });
  g('rta_engine_commits_total', 'Durable state commits', [], function () {
    this.set(engine.metrics.commits);
  });
  g('rta_engine_shard_failures_total', 'Shard batches that failed and were replayed', [], function () {
    this.set(engine.metrics.shardFailures);
  });
  g('rta_engine_worker_keys', 'Keys (users, devices, products) interned by the worker threads', [], function () {
    this.set(engine.metrics.workerKeys);
  });
  g('rta_engine_worker_key_array_bytes', 'Bytes off the V8 heap that grow with the interned keys (intern tables, per-user records), worker threads together', [], function () {
    this.set(engine.metrics.workerKeyBytes);
  });
  g('rta_engine_worker_recycles_total', 'Worker threads replaced by fresh ones after interning --worker-max-keys keys', [], function () {
    this.set(engine.dispatcher.stats.recycles);
  });
  g('rta_engine_inflight_slabs', 'Slabs in flight per shard', ['shard'], function () {
    for (const c of engine.dispatcher.channelInfo()) this.set({ shard: String(c.shard) }, c.inFlight);
  });
  g('rta_engine_worker_heap_bytes', 'V8 heap used by the worker threads', [], function () {
    this.set(engine.metrics.workerHeapBytes);
  });
  g('rta_engine_stream_time_lag_seconds', 'Wall time minus committed stream time, per partition', ['partition'], function () {
    const now = Date.now();
    for (const p of engine.query.progress()) if (p.streamTime > 0) this.set({ partition: String(p.partition) }, (now - p.streamTime) / 1000);
  });
  const hist = new client.Histogram({
    name: 'rta_engine_batch_processing_seconds', help: 'Worker time per slab (recent batches)', registers: [registry],
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
  });
  engine.onBatch((ms) => hist.observe(ms / 1000));
  g('rta_server_websocket_clients', 'Connected dashboard WebSocket clients', [], function () {
    this.set(ws.clients());
  });
  g('rta_server_websocket_messages_sent_total', 'WebSocket messages sent', [], function () {
    this.set(ws.stats.messages);
  });
  g('rta_server_websocket_bytes_sent_total', 'WebSocket payload bytes sent (before compression)', [], function () {
    this.set(ws.stats.bytes);
  });
  g('rta_server_websocket_deltas_coalesced_total', 'Deltas not sent to slow clients (they get a snapshot when drained)', [], function () {
    this.set(ws.stats.skippedSlow);
  });
  g('rta_server_rest_cache_hits_total', 'Dashboard REST queries answered from the cache (current or still-fresh answer)', [], function () {
    this.set(rest.hits);
  });
  g('rta_server_rest_cache_misses_total', 'Dashboard REST queries that waited for the query thread', [], function () {
    this.set(rest.misses);
  });
  const tickSeconds = new client.Histogram({
    name: 'rta_server_tick_seconds', help: 'Main-thread time of a live-update tick, by phase (snapshot: queries and JSON; publish: deltas to every client)',
    labelNames: ['phase'], registers: [registry], buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2],
  });
  return { registry, tickSeconds };
}
