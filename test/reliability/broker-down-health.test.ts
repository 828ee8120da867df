import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { Engine, EmbeddedSource, MemorySink, ReferenceStore } from '../../engine/index.js';
import { DashboardServer } from '../../server/server.js';
import { TEST_GENERATOR, tempDir } from '../engine/harness.js';

// Regression test for the bug found by reliability scenario 3: with the Kafka broker stopped, health
// kept saying UP (its status ignored the source). KafkaSource now sets stats.brokersDownSince when
// librdkafka reports every broker connection down, and clears it once a metadata request answers;
// health is DEGRADED meanwhile, and the dashboard is still served (readyz stays 200). The full run on
// a real broker that is stopped and restarted is test/reliability/broker-restart.soak.ts.
let dir: string;
let engine: Engine;
let server: DashboardServer;
let source: EmbeddedSource & { stats?: Record<string, number | string> };

beforeAll(async () => {
  dir = tempDir('brokerdown');
  source = new EmbeddedSource({ partitions: 8, rate: 5_000, totalEvents: 5_000, generator: TEST_GENERATOR, eventsPerMessage: 100 });
  const ref = ReferenceStore.open(dir);
  await source.bootstrap(ref);
  await ref.close();
  engine = await Engine.start({ dataDir: dir, partitions: 8, shards: 4, workers: 1, commitIntervalMs: 200 }, source, new MemorySink());
  server = await DashboardServer.start(engine, { port: 0, tickMs: 100 });
  await engine.finished();
}, 60_000);

afterAll(async () => {
  await server?.close();
  await engine?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const get = async (path: string) => {
  const r = await fetch(server.url + path);
  return { status: r.status, body: (await r.json()) as { overallStatus: string } };
};

describe('health while the source cannot reach its brokers (scenario 3 regression)', () => {
  it('is DEGRADED while brokersDownSince is set, UP again once cleared; readyz stays 200', async () => {
    expect((await get('/api/dashboard/health')).body.overallStatus).toBe('UP');
    Object.defineProperty(source, 'stats', { value: { brokersDownSince: Date.now() - 5_000, lastError: 'all broker connections are down' }, configurable: true, writable: true });
    expect((await get('/api/dashboard/health')).body.overallStatus).toBe('DEGRADED');
    const ready = await get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.overallStatus).toBe('DEGRADED');
    source.stats!.brokersDownSince = 0;
    expect((await get('/api/dashboard/health')).body.overallStatus).toBe('UP');
  });
});
