/**
 * bench:rest — the dashboard's REST queries under a fixed request rate (autocannon, open rate of
 * `--rate` requests/s over `--connections`), against an engine fed by the embedded source, so the
 * queries read a live, growing LMDB state while the workers write it.
 *
 *   npm run bench:rest -- [--rate 1000] [--duration 10] [--connections 10] [--warmup-s 20] [--source embedded|kafka] [--only geo,health] [--cpu-prof-dir d] [--dashboards 0]
 *
 * --source embedded (the default) generates the input in the engine process, on the embedded
 * source's own thread (on the engine's event loop before 2026-11-30); --source kafka is production's shape: loadgen, in its own process, writes to
 * the broker at --engine-rate and the engine consumes it (with event time = wall time, not 10x).
 *
 * Last line: {"bench":"rest","ratePerSec":N,"routes":[{"route":..,"p50Ms":..,"p99Ms":..,...}],"worstP99Ms":N}
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import WebSocket from 'ws';
import { freePort, log, prepareKafkaFeed, stopChild } from './child.js';

const { values: a } = parseArgs({
  options: {
    rate: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '10' },
    'warmup-s': { type: 'string', default: '20' },
    'engine-rate': { type: 'string', default: '20000' },
    source: { type: 'string', default: 'embedded' },
    // Writes CPU profiles of the engine's threads here (node --cpu-prof), to see what holds its event loop.
    'cpu-prof-dir': { type: 'string' },
    // Open dashboards while the queries run (WebSocket clients on /dashboard-ws): production has some,
    // and each live-update tick builds a snapshot on the server.
    dashboards: { type: 'string', default: '0' },
    // Passed to the engine (repeatable), e.g. --engine-arg=--tick-snapshot --engine-arg=event-loop for a baseline.
    'engine-arg': { type: 'string', multiple: true, default: [] },
    // Node/V8 flags for the engine process (repeatable), e.g. --node-arg=--single-threaded-gc.
    'node-arg': { type: 'string', multiple: true, default: [] },
    // Comma-separated substrings: measure only the routes that contain one of them.
    only: { type: 'string' },
    // Seconds of unmeasured load (all routes in turn) before the first measured route: the client's
    // own JIT and connections warm up too. Without it the first route measured was among the worst
    // in most runs, whichever it was (0 = off).
    'client-warmup-s': { type: 'string', default: '3' },
  },
});
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');




if (a.source !== 'embedded' && a.source !== 'kafka') throw new Error(`--source must be embedded or kafka, got ${a.source}`);
/** The server's event-loop delay since the previous scrape (prom-client resets its histogram on each), ms. */
async function loopDelay(): Promise<{ p99Ms: number; maxMs: number; cacheHits: number; cacheMisses: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const ms = (name: string) => Math.round(value(`rta_process_nodejs_eventloop_lag_${name}_seconds`) * 10_000) / 10;
  return { p99Ms: ms('p99'), maxMs: ms('max'), cacheHits: value('rta_server_rest_cache_hits_total'), cacheMisses: value('rta_server_rest_cache_misses_total') };
}

const port = await freePort();
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-rest-'));
const feed = a.source === 'kafka'
  ? await prepareKafkaFeed({ root, run: 'rest', rate: Number(a['engine-rate']), users: 100_000, seconds: Number(a['warmup-s']) + 10 * (Number(a.duration) + 5) + 60 })
  : null;
const sourceArgs = feed ? feed.engineArgs : ['--source', 'embedded', '--rate', a['engine-rate']!, '--time-scale', '10'];
const profile = a['cpu-prof-dir'] ? ['--cpu-prof', '--cpu-prof-dir', a['cpu-prof-dir']] : [];
const engine = spawn(process.execPath, [...a['node-arg']!, ...profile, path.join(root, 'dist/engine/main.js'), ...sourceArgs,
  '--port', String(port), '--data-dir', dataDir, '--status-interval-ms', '600000', ...a['engine-arg']!], { stdio: ['ignore', 'ignore', 'inherit'] });
const base = `http://127.0.0.1:${port}`;
try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {
      // not yet
    }
    if (i > 300) throw new Error('engine not ready');
    await new Promise((r) => setTimeout(r, 200));
  }
  feed?.start();
  log(`engine ready; ${a['warmup-s']} s of input (${feed ? `loadgen into Kafka at ${a['engine-rate']} events/s` : 'embedded source, at 10x event time'}) before measuring`);
  await new Promise((r) => setTimeout(r, Number(a['warmup-s']) * 1000));
  const dashboards: WebSocket[] = [];
  for (let i = 0; i < Number(a.dashboards); i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/dashboard-ws`);
    ws.on('error', () => undefined);
    dashboards.push(ws);
  }
  // Real ids for the drill-downs: the top product and a user from it.
  const top = (await (await fetch(`${base}/api/dashboard/products/top?hours=1&limit=1`)).json()) as { products: Array<{ productId: string }> };
  const productId = top.products[0]?.productId ?? 'p-1';
  const routes = [
    '/api/dashboard/metrics/active-users?hours=1',
    '/api/dashboard/metrics/revenue?hours=1',
    '/api/dashboard/analytics/funnel?hours=1',
    '/api/dashboard/analytics/geo?hours=1',
    '/api/dashboard/analytics/performance?hours=1',
    '/api/dashboard/products/top?hours=1&limit=10',
    `/api/dashboard/products/${productId}?hours=1`,
    '/api/dashboard/users/user-1',
    '/api/dashboard/alerts?hours=1',
    '/api/dashboard/health',
  ];
  const only = a.only?.split(',').filter(Boolean);
  const results: Array<Record<string, unknown>> = [];
  const warmS = Number(a['client-warmup-s']);
  if (warmS > 0) {
    await autocannon({ url: base, connections: Number(a.connections), overallRate: Number(a.rate), duration: warmS, requests: routes.map((path) => ({ method: 'GET', path })) });
    log(`client warm-up: ${warmS} s over every route (not measured)`);
  }
  for (const route of only ? routes.filter((r) => only.some((o) => r.includes(o))) : routes) {
    // One request first: the measured figure is the steady state of a route people keep asking
    // (cache warm), not the first computation, which is reported separately.
    const t0 = performance.now();
    await (await fetch(base + route)).arrayBuffer();
    const firstMs = Math.round(performance.now() - t0);
    const before = await loopDelay(); // resets the server's event-loop delay histogram: the next reading covers this route's run
    const r = await autocannon({
      url: base + route, connections: Number(a.connections), overallRate: Number(a.rate), duration: Number(a.duration),
    });
    const loop = await loopDelay();
    const row = {
      route, firstMs, requestsPerSec: Math.round(r.requests.average), non2xx: r.non2xx, errors: r.errors,
      p50Ms: r.latency.p50, p90Ms: r.latency.p90, p99Ms: r.latency.p99, p999Ms: r.latency.p99_9, maxMs: r.latency.max, bytesPerReq: Math.round(r.throughput.average / Math.max(1, r.requests.average)),
      serverLoopDelayP99Ms: loop.p99Ms, serverLoopDelayMaxMs: loop.maxMs,
      // Of the dashboard queries (health is not cached): answered from the cache vs waited for the query thread.
      cacheHits: loop.cacheHits - before.cacheHits, cacheMisses: loop.cacheMisses - before.cacheMisses,
    };
    log(`${route}: ${row.requestsPerSec} req/s, p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, p99.9 ${row.p999Ms} ms, non-2xx ${row.non2xx}; server event-loop delay p99 ${loop.p99Ms} ms, max ${loop.maxMs} ms; cache hits ${row.cacheHits}, misses ${row.cacheMisses}; load average ${os.loadavg()[0]!.toFixed(2)}`);
    results.push(row);
  }
  for (const ws of dashboards) ws.close();
  console.log('\n| route | first request ms | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | bytes | non-2xx | server loop delay p99 / max ms | cache hits / misses |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) console.log(`| ${r.route} | ${r.firstMs} | ${r.requestsPerSec} | ${r.p50Ms} | ${r.p90Ms} | ${r.p99Ms} | ${r.p999Ms} | ${r.maxMs} | ${r.bytesPerReq} | ${r.non2xx} | ${r.serverLoopDelayP99Ms} / ${r.serverLoopDelayMaxMs} | ${r.cacheHits} / ${r.cacheMisses} |`);
  console.log(JSON.stringify({ bench: 'rest', source: a.source, dashboards: Number(a.dashboards), engineArgs: a['engine-arg'], loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100), ratePerSec: Number(a.rate), connections: Number(a.connections), worstP99Ms: Math.max(...results.map((r) => r.p99Ms as number)), routes: results }));
} finally {
  await stopChild(engine);
  await feed?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
