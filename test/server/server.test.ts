import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import WebSocket from 'ws';
import { Engine, EmbeddedSource, MemorySink, ReferenceStore } from '../../engine/index.js';
import { DashboardServer } from '../../server/server.js';
import { TEST_GENERATOR, generateEvents, referenceFor, tempDir } from '../engine/harness.js';

const N = 60_000;
let engine: Engine;
let server: DashboardServer;
let dir: string;
const received: Array<Record<string, unknown>> = [];
let ws: WebSocket;

function next(type: string, after = 0, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = () => {
      const m = received.slice(after).find((x) => x.type === type);
      if (m) resolve(m);
      else if (Date.now() > deadline) reject(new Error(`no ${type} message within ${timeoutMs} ms`));
      else setTimeout(poll, 20);
    };
    poll();
  });
}

async function get(path: string): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(server.url + path);
  const text = await r.text();
  return { status: r.status, body: r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text, headers: r.headers };
}

beforeAll(async () => {
  dir = tempDir('server');
  const source = new EmbeddedSource({ partitions: 8, rate: 20_000, totalEvents: N, generator: TEST_GENERATOR, eventsPerMessage: 200 });
  const ref = ReferenceStore.open(dir);
  await source.bootstrap(ref);
  await ref.close();
  engine = await Engine.start({ dataDir: dir, partitions: 8, shards: 4, workers: 2, commitIntervalMs: 200 }, source, new MemorySink());
  server = await DashboardServer.start(engine, { port: 0, tickMs: 100 });
  ws = new WebSocket(`ws://127.0.0.1:${server.port}/dashboard-ws`);
  ws.on('message', (d) => received.push(JSON.parse(d.toString())));
  await new Promise((r) => ws.once('open', r));
}, 60_000);

afterAll(async () => {
  ws?.close();
  await server?.close();
  await engine?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('dashboard server', () => {
  it('WebSocket: a snapshot on connect, then live deltas (at most one per tick)', async () => {
    const snap = await next('SNAPSHOT');
    expect(snap.tiles).toBeDefined();
    const delta = await next('DELTA');
    expect(Array.isArray(delta.changed)).toBe(true);
    expect((delta.changed as string[]).length).toBeGreaterThan(0);
    await engine.finished();
  }, 60_000);

  it('REST numbers equal the reference model', async () => {
    const model = referenceFor(generateEvents(TEST_GENERATOR, N));
    const au = await get('/api/dashboard/metrics/active-users?hours=24');
    expect(au.status).toBe(200);
    expect(au.body.windows.map((w: { windowStart: number; users: number }) => ({ windowStart: w.windowStart, users: w.users }))).toEqual(model.activeUsers);
    const rev = await get('/api/dashboard/metrics/revenue?hours=24&granularity=minute');
    expect(rev.body.windows.map((w: { count: number }) => w.count)).toEqual(model.revenue.map((r) => r.count));
    // Load-time histograms merged per minute over every page: every measured event counted once.
    const perMinute = engine.query.latencyByWindow({ from: 0, to: Number.MAX_SAFE_INTEGER });
    const measured = Object.values(model.loadTimes).reduce((n, x) => n + x.count, 0);
    expect(measured).toBeGreaterThan(0);
    expect(perMinute.reduce((n, r) => n + r.count, 0)).toBe(measured);
    expect(perMinute.every((r) => r.p50 <= r.p90 && r.p90 <= r.p99)).toBe(true);
    const funnel = await get('/api/dashboard/analytics/funnel?hours=24');
    expect(funnel.body.sessions).toBe(model.funnel.sessions);
    expect(funnel.body.steps.map((s: { sessions: number }) => s.sessions)).toEqual(model.funnel.reached);
    const alerts = await get('/api/dashboard/alerts?hours=48&limit=10000');
    const perEvent = alerts.body.alerts.map((a: { alertId: string }) => a.alertId).filter((id: string) => !/^(LOW_REVENUE|HIGH_ERROR_RATE)/.test(id));
    expect(perEvent.sort()).toEqual([...model.alerts].sort());
    const bySeverity = alerts.body.bySeverity as Record<string, number>;
    expect(Object.values(bySeverity).reduce((a, b) => a + b, 0)).toBe(alerts.body.total);
    const top = await get('/api/dashboard/products/top?hours=24&limit=3');
    expect(top.body.products).toHaveLength(3);
    const id = top.body.products[0].productId;
    expect((await get(`/api/dashboard/products/${id}?hours=24`)).body.purchases).toBe(model.products[id].purchases);
    const user = await get('/api/dashboard/users/user-1');
    expect(user.body.userId).toBe('user-1');
    expect(user.body.profile.userId).toBe('user-1');
  });

  it('bad parameters get 400 naming the parameter; unknown routes and ids 404', async () => {
    for (const [path, param] of [
      ['/api/dashboard/metrics/active-users?hours=-1', 'hours'],
      ['/api/dashboard/metrics/revenue?granularity=week', 'granularity'],
      ['/api/dashboard/products/top?limit=1.5', 'limit'],
      ['/api/dashboard/alerts?severity=URGENT', 'severity'],
      ['/api/dashboard/users/bad%20id', 'id'],
    ] as const) {
      const r = await get(path);
      expect(r.status, path).toBe(400);
      expect(r.body).toMatchObject({ error: 'ERR_BAD_PARAMETER', parameter: param });
      expect(JSON.stringify(r.body)).not.toMatch(/at .*\.js/);
    }
    expect((await get('/api/dashboard/nothing')).status).toBe(404);
    expect((await fetch(`${server.url}/api/dashboard/alerts/NOPE:x:1/ack`, { method: 'POST' })).status).toBe(404);
  });

  it('alerts can be acknowledged and resolved', async () => {
    const list = (await get('/api/dashboard/alerts?hours=48&limit=1')).body;
    const id = list.alerts[0].alertId as string;
    const ack = await fetch(`${server.url}/api/dashboard/alerts/${encodeURIComponent(id)}/ack`, { method: 'POST' });
    expect(ack.status).toBe(200);
    expect((await get(`/api/dashboard/alerts?hours=48&limit=10000`)).body.alerts.find((a: { alertId: string }) => a.alertId === id).status).toBe('ACKNOWLEDGED');
    await fetch(`${server.url}/api/dashboard/alerts/${encodeURIComponent(id)}/resolve`, { method: 'POST' });
    expect(engine.query.alert(id)!.status).toBe('RESOLVED');
  });

  it('health, readiness and Prometheus metrics', async () => {
    const h = await get('/api/dashboard/health');
    expect(h.body.overallStatus).toBe('UP');
    expect(h.body.shards).toHaveLength(4);
    expect((await get('/readyz')).status).toBe(200);
    expect((await get('/livez')).status).toBe(200);
    const m = await get('/metrics');
    expect(m.body).toContain(`rta_engine_committed_events_total ${N}`);
    expect(m.body).toMatch(/rta_engine_batch_processing_seconds_bucket/);
    expect(m.body).toMatch(/rta_server_websocket_clients 1/);
  });

  it('WebSocket requests are answered with their id, bad ones with an ERROR naming the problem', async () => {
    const before = received.length;
    ws.send(JSON.stringify({ type: 'GET_USER_ANALYTICS', requestId: 'r1', userId: 'user-2' }));
    const r = await next('RESPONSE', before);
    expect(r.requestId).toBe('r1');
    expect((r.data as { userId: string }).userId).toBe('user-2');
    const b2 = received.length;
    ws.send('{not json');
    expect((await next('ERROR', b2)).code).toBe('ERR_BAD_MESSAGE');
    const b3 = received.length;
    ws.send(JSON.stringify({ type: 'DELETE_EVERYTHING', requestId: 7 }));
    const e = await next('ERROR', b3);
    expect(e).toMatchObject({ code: 'ERR_UNKNOWN_TYPE', requestId: 7 });
    const b4 = received.length;
    ws.send(JSON.stringify({ type: 'GET_ALERT_DETAILS', requestId: 'r4' }));
    expect((await next('ERROR', b4)).message).toMatch(/alertId/);
  });
});
