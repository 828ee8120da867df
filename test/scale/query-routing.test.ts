import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { Engine, MemorySink, ReferenceStore } from '../../engine/index.js';
import { KafkaSource } from '../../engine/source/kafka.js';
import { ReferenceLoader } from '../../engine/kafka/reference-loader.js';
import { DASHBOARD_QUERIES } from '../../server/queries.js';
import { tempDir } from '../engine/harness.js';
import { BROKERS } from '../kafka/produce.js';
import { PARTITIONS, SHARDS, deleteTopics, sleep, stopEngine } from '../reliability/harness.js';
import { alive, produceInput, scaleHealth, startInstance, stopAll, untilOwned, type Instance } from './cluster.js';

const N = 20_000;
const HOURS = 24 * 7;
const log = (s: string) => console.log(`[query-routing] ${s}`);

/** The REST queries compared, with the parameters the server passes to the query functions. */
const QUERIES = [
  { path: `/api/dashboard/metrics/active-users?hours=${HOURS}`, name: 'activeUsers', params: { hours: HOURS } },
  { path: `/api/dashboard/metrics/revenue?hours=${HOURS}`, name: 'revenue', params: { hours: HOURS, granularity: 'minute' } },
  { path: `/api/dashboard/analytics/funnel?hours=${HOURS}`, name: 'funnel', params: { hours: HOURS } },
  { path: `/api/dashboard/analytics/geo?hours=${HOURS}`, name: 'geo', params: { hours: HOURS } },
  { path: `/api/dashboard/analytics/performance?hours=${HOURS}`, name: 'performance', params: { hours: HOURS } },
  { path: `/api/dashboard/products/top?hours=${HOURS}&limit=10`, name: 'topProducts', params: { hours: HOURS, limit: 10 } },
] as const;

async function get(url: string): Promise<{ status: number; body: unknown; retryAfter: string | null }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(15_000) });
  return { status: r.status, body: await r.json(), retryAfter: r.headers.get('retry-after') };
}

describe('queries when scaled out: any instance answers any query', () => {
  it('the same query on every instance returns the same answer, equal to a single-instance run and the reference model; during a rebalance an answer is exact or 503 with Retry-After', async () => {
    const prefix = `qr${Date.now()}-`;
    const groupId = `${prefix}engine`;
    const root = tempDir('query-routing');
    const instances: Instance[] = [];
    let single: Awaited<ReturnType<typeof startSingle>> | null = null;
    try {
      const input = await produceInput(prefix, N);
      await input.close();
      const { events, model } = input;

      instances.push(...(await Promise.all(['a', 'b', 'c'].map((n) => startInstance(root, n, { prefix, groupId })))));
      await untilOwned(instances, PARTITIONS, (o) => new Set(o.values()).size === 3, 120_000, 'three instances to share the partitions');
      const deadline = Date.now() + 120_000;
      for (;;) {
        const hs = await Promise.all(instances.map(scaleHealth));
        if (hs.reduce((n, h) => n + (h?.committedEvents ?? 0), 0) === N) break;
        if (Date.now() > deadline) throw new Error('instances did not commit every event');
        await sleep(300);
      }

      // The single-instance run over the same topics (its own group and store): the baseline.
      single = await startSingle(prefix, root);
      const expected = Object.fromEntries(QUERIES.map((q) => [q.path, JSON.parse(JSON.stringify((DASHBOARD_QUERIES as Record<string, (l: unknown, p: unknown) => unknown>)[q.name](single!.engine.query, q.params)))]));
      // The baseline itself matches the reference model (so equal answers are right answers).
      const au = expected[QUERIES[0].path] as { windows: Array<{ windowStart: number; users: number }> };
      expect(au.windows.map((w) => ({ windowStart: w.windowStart, users: w.users }))).toEqual(model.activeUsers);
      const funnel = expected[QUERIES[2].path] as { sessions: number; steps: Array<{ sessions: number }> };
      expect([funnel.sessions, ...funnel.steps.map((s) => s.sessions)]).toEqual([model.funnel.sessions, ...model.funnel.reached]);

      // Each instance owns only some partitions, yet answers for all of them (owners advertised on Kafka).
      await untilRouted(instances);
      for (const i of instances) {
        for (const q of QUERIES) {
          const r = await get(i.url + q.path);
          expect(r.status, `${i.name} ${q.path}`).toBe(200);
          expect(r.body, `${i.name} ${q.path}`).toEqual(expected[q.path]);
        }
        const user = events[7].userId;
        const ur = await get(`${i.url}/api/dashboard/users/${encodeURIComponent(user)}`);
        expect(ur.status).toBe(200);
        expect((ur.body as { sessions: unknown[]; openSessions: unknown[] }).sessions.length + (ur.body as { openSessions: unknown[] }).openSessions.length).toBeGreaterThan(0);
      }

      // A rebalance (b stops): while it runs, every answer is the exact one or a 503 with Retry-After.
      const statuses: Record<number, number> = {};
      let polling = true;
      const poller = (async () => {
        while (polling) {
          for (const i of instances.filter((x) => x.name !== 'b' && alive(x))) {
            for (const q of QUERIES.slice(0, 3)) {
              const r = await get(i.url + q.path).catch(() => null);
              if (!r) continue;
              statuses[r.status] = (statuses[r.status] ?? 0) + 1;
              if (r.status === 200) expect(r.body, `${i.name} ${q.path} during the rebalance`).toEqual(expected[q.path]);
              else {
                expect(r.status).toBe(503);
                expect(r.retryAfter).toBeTruthy();
              }
            }
          }
        }
      })();
      await stopEngine(instances[1].proc, 'SIGKILL');
      (instances[1] as { expectedDead?: boolean }).expectedDead = true;
      await untilOwned(instances, PARTITIONS, (o) => ![...o.values()].includes(instances[1]), 120_000, 'a and c to own every partition');
      await untilRouted(instances.filter(alive));
      polling = false;
      await poller;
      log(`answers during the rebalance: ${JSON.stringify(statuses)}`);
      expect(statuses[200]).toBeGreaterThan(0);
      for (const i of instances.filter(alive)) {
        for (const q of QUERIES) expect((await get(i.url + q.path)).body, `${i.name} ${q.path} after the rebalance`).toEqual(expected[q.path]);
      }
    } finally {
      await stopAll(instances, 'SIGKILL');
      if (single) await single.stop();
      await deleteTopics(prefix).catch(() => undefined);
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 420_000);
});

/** Every live instance knows an owner for every partition, and the owners agree. */
async function untilRouted(instances: Instance[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const views = await Promise.all(instances.map(async (i) => ((await scaleHealth(i))?.scale as { owners?: Record<string, string> } | undefined)?.owners ?? {}));
    if (views.every((v) => Object.keys(v).length === PARTITIONS && JSON.stringify(v) === JSON.stringify(views[0]))) return;
    if (Date.now() > deadline) throw new Error(`routing did not settle: ${JSON.stringify(views)}`);
    await sleep(300);
  }
}

async function startSingle(prefix: string, root: string) {
  const dataDir = `${root}/single`;
  fs.mkdirSync(dataDir, { recursive: true });
  const store = ReferenceStore.open(dataDir);
  const loader = new ReferenceLoader({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, store, kafkaConfig: {} });
  await loader.bootstrap();
  const source = new KafkaSource({ brokers: BROKERS, groupId: `${prefix}single`, topicPrefix: prefix, kafkaConfig: {}, batchSize: 500 });
  const engine = await Engine.start({ dataDir, partitions: PARTITIONS, shards: SHARDS, workers: 1, commitIntervalMs: 300 }, source, new MemorySink());
  const deadline = Date.now() + 120_000;
  while (engine.committedTotals().events < N) {
    if (Date.now() > deadline) throw new Error('the single instance did not commit every event');
    await sleep(200);
  }
  await engine.dispatcher.drain();
  engine.query.fresh();
  return {
    engine,
    stop: async () => {
      await engine.stop();
      await loader.stop();
      await store.close();
    },
  };
}
