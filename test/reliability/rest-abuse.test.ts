import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import net from 'node:net';
import { Engine, EmbeddedSource, MemorySink, ReferenceStore } from '../../engine/index.js';
import { DashboardServer } from '../../server/server.js';
import { TEST_GENERATOR, tempDir } from '../engine/harness.js';

// Scenarios 11 and 12 of issue #7: clients that abort REST requests, and fuzzed REST paths and
// parameters, against a server over a live engine.

let engine: Engine;
let server: DashboardServer;
let dir: string;

beforeAll(async () => {
  dir = tempDir('rest-abuse');
  const source = new EmbeddedSource({ partitions: 4, rate: 5_000, totalEvents: 200_000, generator: TEST_GENERATOR, eventsPerMessage: 100 });
  const ref = ReferenceStore.open(dir);
  await source.bootstrap(ref);
  await ref.close();
  engine = await Engine.start({ dataDir: dir, partitions: 4, shards: 2, workers: 1, commitIntervalMs: 200 }, source, new MemorySink());
  server = await DashboardServer.start(engine, { port: 0, restCacheMs: 0 });
  await new Promise((r) => setTimeout(r, 500));
}, 60_000);

afterAll(async () => {
  await server?.close();
  await engine?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A seeded PRNG, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One raw HTTP/1.1 request; resolves with the status (or null if we aborted) and the body size. */
function request(path: string, abortAfterMs: number | null): Promise<{ status: number | null; bytes: number; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const sock = net.connect(server.port, '127.0.0.1');
    let data = Buffer.alloc(0);
    let done = false;
    const finish = (status: number | null) => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve({ status, bytes: data.length, ms: performance.now() - t0 });
    };
    sock.on('connect', () => {
      sock.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`);
      if (abortAfterMs !== null) setTimeout(() => finish(null), abortAfterMs);
    });
    sock.on('data', (c: Buffer) => (data = Buffer.concat([data, c])));
    sock.on('end', () => finish(Number(/^HTTP\/1\.1 (\d{3})/.exec(data.toString('latin1', 0, 20))?.[1] ?? 0)));
    sock.on('error', () => finish(0));
    sock.setTimeout(5_000, () => finish(-1));
  });
}

const ROUTES = [
  '/api/dashboard/metrics/active-users?hours=24', '/api/dashboard/metrics/revenue?hours=24&granularity=hour', '/api/dashboard/analytics/funnel?hours=24',
  '/api/dashboard/analytics/geo?hours=24', '/api/dashboard/analytics/performance?hours=24', '/api/dashboard/products/top?hours=24&limit=50',
  '/api/dashboard/users/user-1', '/api/dashboard/alerts?hours=24&limit=1000', '/api/dashboard/health', '/metrics',
];

describe('REST abuse (issue #7 scenarios 11 and 12)', () => {
  it('scenario 11: clients abort 30% of 2,000 requests after 0-50 ms; every other request is answered and the server lives', async () => {
    const r = rng(11);
    const results: Array<{ status: number | null }> = [];
    for (let batch = 0; batch < 40; batch++) {
      results.push(...await Promise.all(Array.from({ length: 50 }, () => {
        const path = ROUTES[Math.floor(r() * ROUTES.length)]!;
        // Half of the aborts come right after the request is written, the rest within 50 ms.
        return request(path, r() < 0.3 ? (r() < 0.5 ? 0 : Math.floor(r() * 50)) : null);
      })));
    }
    const aborted = results.filter((x) => x.status === null).length;
    const answered = results.filter((x) => x.status !== null);
    console.log(`[scenario 11] ${JSON.stringify({ requests: results.length, aborted, answered: answered.length, answered200: answered.filter((x) => x.status === 200).length })}`);
    expect(aborted).toBeGreaterThan(250); // 30 % asked; a request answered before its abort is not aborted
    expect(answered.every((x) => x.status === 200)).toBe(true);
    expect((await fetch(`${server.url}/livez`)).status).toBe(200);
    expect((await fetch(`${server.url}/api/dashboard/health`)).status).toBe(200);
  }, 120_000);

  it('scenario 12: 3,000 fuzzed paths and parameters get only 2xx or 4xx, quickly, with bounded bodies', async () => {
    const r = rng(12);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
    const junk = () => pick([
      '', '0', '-1', '1e308', 'NaN', 'Infinity', '0x10', '24.000001', '99999999999999999999', ' 1', '%20', '%zz', '%', '%E0%A4%A', '%00',
      'a'.repeat(Math.floor(r() * 5000)), '..%2F..%2Fetc%2Fpasswd', '%F0%9F%98%80', '<script>', "'OR'1'='1", '[]', '{}', 'null', 'user-1', 'hour', 'HIGH',
    ]);
    const bases = ['/api/dashboard/metrics/active-users', '/api/dashboard/metrics/revenue', '/api/dashboard/analytics/funnel', '/api/dashboard/analytics/geo',
      '/api/dashboard/analytics/performance', '/api/dashboard/products/top', '/api/dashboard/products/', '/api/dashboard/users/', '/api/dashboard/alerts',
      '/api/dashboard/alerts/x/ack', '/api/dashboard/', '/api/', '/', '/metrics', '/readyz', '/nope/'];
    const params = ['hours', 'limit', 'granularity', 'severity', 'x', 'hours[]', ''];
    const statuses = new Map<number, number>();
    let slowest = 0;
    let biggest = 0;
    for (let batch = 0; batch < 60; batch++) {
      const paths = Array.from({ length: 50 }, () => {
        let p = pick(bases);
        if (p.endsWith('/')) p += junk().replace(/[?#\s]/g, '');
        const n = Math.floor(r() * 4);
        const q = Array.from({ length: n }, () => `${pick(params)}=${junk().replace(/[#\s&]/g, '')}`).join('&');
        return q ? `${p}?${q}` : p;
      });
      for (const res of await Promise.all(paths.map((p) => request(p, null)))) {
        statuses.set(res.status!, (statuses.get(res.status!) ?? 0) + 1);
        slowest = Math.max(slowest, res.ms);
        biggest = Math.max(biggest, res.bytes);
      }
    }
    console.log(`[scenario 12] ${JSON.stringify({ statuses: Object.fromEntries(statuses), slowestMs: Math.round(slowest), biggestBytes: biggest })}`);
    const bad = [...statuses.keys()].filter((s) => !(s >= 200 && s < 300) && !(s >= 400 && s < 500));
    expect(bad, JSON.stringify(Object.fromEntries(statuses))).toEqual([]);
    expect(slowest).toBeLessThan(3_000);
    expect(biggest).toBeLessThan(2 * 1024 * 1024);
    expect((await fetch(`${server.url}/livez`)).status).toBe(200);
  }, 120_000);
});
