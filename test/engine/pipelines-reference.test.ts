import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { parseEngineConfig, type Engine } from '../../engine/index.js';
import { TEST_GENERATOR, expectSessions, expectSharingWindows, generateEvents, referenceFor, runEmbedded, tempDir } from './harness.js';

const N = 100_000;
const PARTITIONS = 8;
const cfg = parseEngineConfig({ partitions: PARTITIONS });
const events = generateEvents(TEST_GENERATOR, N);
const model = referenceFor(events, { partitions: PARTITIONS });
const ALL = { from: 0, to: Number.MAX_SAFE_INTEGER };
const close = (a: number, b: number) => Math.abs(a - b) <= 0.011 + Math.abs(b) * 1e-9;

// The last: threads are replaced by fresh ones (their shards reopened from a commit) whenever their
// interned keys double (config.workerMaxKeys; test/engine/worker-recycle.test.ts for a stream of new users).
describe.each([
  { workers: 1, label: '' }, { workers: 2, label: '' }, { workers: 4, label: '' },
  { workers: 2, workerMaxKeys: 1, label: ', threads replaced as their keys double' },
])('every pipeline against the reference model, $workers worker(s)$label', ({ workers, workerMaxKeys }) => {
  let engine: Engine;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir(`ref-w${workers}`);
    engine = await runEmbedded(dir, TEST_GENERATOR, N, { workers, shards: 4, ...(workerMaxKeys ? { workerMaxKeys, commitIntervalMs: 100 } : {}) });
  }, 120_000);

  afterAll(async () => {
    await engine?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('counts every event once and drops exactly the late ones', () => {
    expect(engine.metrics.events).toBe(N);
    expect(engine.metrics.deadLetters).toBe(0);
    expect(engine.dispatcher.stats.recycles > 0).toBe(workerMaxKeys !== undefined);
    // the stream really has late and out-of-order events
    expect(model.late.active_users).toBeGreaterThan(50);
    expect(engine.metrics.late).toEqual(model.late);
    const q = engine.query.progress();
    expect(q.map((x) => x.streamTime)).toEqual(model.streamTime);
  });

  it('active users per minute, exact, with platform breakdown', () => {
    const rows = engine.query.activeUsers(ALL);
    expect(rows.map((r) => ({ windowStart: r.windowStart, users: r.users }))).toEqual(model.activeUsers);
    const byPlatform: Record<string, number> = {};
    for (const r of rows) for (const [p, n] of Object.entries(r.byPlatform)) byPlatform[`${r.windowStart}|${p}`] = n;
    expect(byPlatform).toEqual(model.activeByPlatform);
  });

  it('revenue per hopping 5-minute window with currency and tier breakdowns', () => {
    const rows = engine.query.revenue(ALL);
    expect(rows.map((r) => r.windowStart)).toEqual(model.revenue.map((r) => r.windowStart));
    expect(model.revenue.length).toBeGreaterThan(50);
    rows.forEach((r, i) => {
      const m = model.revenue[i];
      expect(r.count).toBe(m.count);
      expect(close(r.usd, m.usd)).toBe(true);
      expect(Object.keys(r.byCurrency).sort()).toEqual(Object.keys(m.byCurrency).sort());
      for (const [k, v] of Object.entries(m.byCurrency)) expect(close(r.byCurrency[k], v)).toBe(true);
      for (const [k, v] of Object.entries(m.byTier)) expect(close(r.byTier[k], v)).toBe(true);
    });
  });

  it('events and errors per platform, error rate windows, user actions', () => {
    const ev: Record<string, number> = {};
    const er: Record<string, number> = {};
    for (const r of engine.query.platformEvents(ALL)) {
      ev[`${r.windowStart}|${r.platform}`] = r.events;
      if (r.errors) er[`${r.windowStart}|${r.platform}`] = r.errors;
    }
    expect(ev).toEqual(model.platformEvents);
    expect(er).toEqual(model.platformErrors);
    const ew: Record<string, { n: number; errors: number }> = {};
    for (const r of engine.query.errorRate(ALL)) ew[r.windowStart] = { n: r.events, errors: r.errors };
    expect(ew).toEqual(model.errorWindows);
    expect(engine.query.userActions(ALL)).toEqual(model.userActions);
  });

  it('product performance and geography', () => {
    const products = engine.query.products(ALL);
    expect(products.size).toBe(Object.keys(model.products).length);
    for (const [id, m] of Object.entries(model.products)) {
      const p = products.get(id)!;
      expect({ ...p, usd: 0 }).toEqual({ ...m, usd: 0 });
      expect(close(p.usd, m.usd)).toBe(true);
    }
    const geo = Object.fromEntries(engine.query.geo(ALL).map((g) => [g.country, { events: g.events, users: g.users, usd: g.usd }]));
    for (const [c, m] of Object.entries(model.geo)) {
      expect(geo[c].events).toBe(m.events);
      expect(geo[c].users).toBe(m.users);
      expect(close(geo[c].usd, m.usd)).toBe(true);
    }
  });

  it('load-time percentiles from HDR histograms within their precision, IoT readings', () => {
    const perf = engine.query.performance(ALL);
    for (const [k, m] of Object.entries(model.loadTimes)) {
      const [platform, page] = k.split('|');
      const row = perf.find((r) => r.platform === platform && r.page === page)!;
      expect(row.count).toBe(m.count);
      expect(Math.abs(row.p50 - m.p50)).toBeLessThanOrEqual(Math.max(1, m.p50 * 0.002));
      expect(Math.abs(row.p99 - m.p99)).toBeLessThanOrEqual(Math.max(1, m.p99 * 0.002));
    }
    const iot = Object.fromEntries(engine.query.iot(ALL).map((r) => [r.sensorType, { n: r.count, min: r.min, max: r.max, over: r.overThreshold }]));
    expect(iot).toEqual(model.iot);
  });

  it('sessions and the funnel, computed from closed sessions', () => {
    const f = engine.query.funnel(ALL);
    expect(model.funnel.sessions).toBeGreaterThan(100);
    expect(f.sessions).toBe(model.funnel.sessions);
    expect(f.steps.map((s) => s.sessions)).toEqual(model.funnel.reached);
    expect(model.funnel.reached[4]).toBeGreaterThan(0);
  });

  it('every session, closed and still open: bounds, counts, revenue, platforms, funnel stages', () => {
    expect(model.sessions.closed.length).toBeGreaterThan(100);
    expect(model.sessions.open.length).toBeGreaterThan(100);
    // Sessions that merged out-of-order events and used several platforms are in the stream.
    expect(model.sessions.closed.some((s) => s.platforms.length > 1)).toBe(true);
    expectSessions(engine.query, model);
  });

  it('every account-sharing window: platforms, locations and alert flags of each user in each 10 minutes', () => {
    // The stream has users over the location threshold and users in several windows, some reached out of order.
    expect([...model.sharing.values()].filter((v) => v.al).length).toBeGreaterThan(10);
    expectSharingWindows(engine.query, model);
  });

  it('per-event alerts with deterministic ids', () => {
    const types = new Set(['IOT_THRESHOLD', 'REPEATED_LOGIN_FAILURE', 'MULTIPLE_LOCATIONS', 'MULTIPLE_PLATFORMS', 'TRANSACTION_ANOMALY']);
    const got = new Set(engine.query.alerts({ limit: 1e9 }).alerts.map((a) => a.alertId).filter((id) => types.has(id.split(':')[0])));
    expect([...got].sort()).toEqual([...model.alerts].sort());
    for (const t of ['IOT_THRESHOLD', 'REPEATED_LOGIN_FAILURE', 'MULTIPLE_LOCATIONS', 'TRANSACTION_ANOMALY']) {
      expect([...model.alerts].some((id) => id.startsWith(t))).toBe(true);
    }
  });

  it('global low-revenue alerts on final windows only', () => {
    const wm = Math.min(...model.streamTime);
    const expected: string[] = [];
    const byStart = new Map(model.revenue.map((r) => [r.windowStart, r.usd]));
    for (let ws = model.revenue[0].windowStart; ws + 5 * 60_000 + cfg.graceMs <= wm; ws += 60_000) {
      if (Math.round((byStart.get(ws) ?? 0) * 100) / 100 < cfg.alerts.lowRevenuePer5Min) expected.push(`LOW_REVENUE:global:${ws}`);
    }
    const got = engine.query.alerts({ limit: 1e9 }).alerts.filter((a) => a.type === 'LOW_REVENUE').map((a) => a.alertId);
    expect(got.sort()).toEqual(expected.sort());
    expect(expected.length).toBeGreaterThan(0);
  });
});
