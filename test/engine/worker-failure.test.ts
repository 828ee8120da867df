import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { Engine, EmbeddedSource, MemorySink, ReferenceStore } from '../../engine/index.js';
import { TEST_GENERATOR, generateEvents, referenceFor, tempDir } from './harness.js';

const N = 60_000;
const ALL = { from: 0, to: Number.MAX_SAFE_INTEGER };
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('a worker that throws or exits mid-run', () => {
  it('is replaced; its shard resumes from its last commit; no batch lost or applied twice', async () => {
    process.env.RTA_ENABLE_FAULTS = '1';
    const dir = tempDir('faults');
    dirs.push(dir);
    const model = referenceFor(generateEvents(TEST_GENERATOR, N));
    const source = new EmbeddedSource({ partitions: 8, rate: 25_000, totalEvents: N, generator: TEST_GENERATOR, eventsPerMessage: 200 });
    const ref = ReferenceStore.open(dir);
    await source.bootstrap(ref);
    await ref.close();
    // A long commit interval: the failures land between commits, so replay has work to do.
    const engine = await Engine.start({ dataDir: dir, partitions: 8, shards: 4, workers: 2, commitIntervalMs: 5_000 }, source, new MemorySink());
    await new Promise((r) => setTimeout(r, 600));
    engine.dispatcher.injectFault(1, 'throw');
    await new Promise((r) => setTimeout(r, 600));
    engine.dispatcher.injectFault(2, 'exit');
    await new Promise((r) => setTimeout(r, 300));
    engine.dispatcher.injectFault(2, 'throw');
    await engine.finished();
    try {
      // 3 injected; a thread that exits also fails the other shard it hosts if that one had a task running.
      expect(engine.metrics.shardFailures).toBeGreaterThanOrEqual(3);
      expect(engine.dispatcher.stats.replays).toBeGreaterThan(0);
      expect(engine.dispatcher.channelInfo().every((c) => c.inFlight === 0 && c.retained === 0)).toBe(true);
      expect(engine.query.activeUsers(ALL).map((r) => ({ windowStart: r.windowStart, users: r.users }))).toEqual(model.activeUsers);
      const ev: Record<string, number> = {};
      for (const r of engine.query.platformEvents(ALL)) ev[`${r.windowStart}|${r.platform}`] = r.events;
      expect(ev).toEqual(model.platformEvents);
      expect(engine.query.userActions(ALL)).toEqual(model.userActions);
      const f = engine.query.funnel(ALL);
      expect([f.sessions, ...f.steps.map((s) => s.sessions)]).toEqual([model.funnel.sessions, ...model.funnel.reached]);
      // Counters that are part of the state are exact despite the replays; processing counters are not.
      expect(engine.committedTotals().late).toEqual(model.late);
      expect(engine.committedTotals().events).toBe(N);
      expect(engine.metrics.events).toBeGreaterThan(N);
    } finally {
      await engine.stop();
      delete process.env.RTA_ENABLE_FAULTS;
    }
  }, 120_000);

  it('regression: a burst of thread deaths does not make the sibling shards give up (their stale refusals are retriable)', async () => {
    process.env.RTA_ENABLE_FAULTS = '1';
    const dir = tempDir('faults-burst');
    dirs.push(dir);
    const model = referenceFor(generateEvents(TEST_GENERATOR, N));
    const source = new EmbeddedSource({ partitions: 8, rate: 15_000, totalEvents: N, generator: TEST_GENERATOR, eventsPerMessage: 200 });
    const ref = ReferenceStore.open(dir);
    await source.bootstrap(ref);
    await ref.close();
    // One thread hosts all four shards, and no commit happens between the deaths.
    const engine = await Engine.start({ dataDir: dir, partitions: 8, shards: 4, workers: 1, commitIntervalMs: 60_000 }, source, new MemorySink());
    try {
      await new Promise((r) => setTimeout(r, 400));
      for (const shard of [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]) {
        engine.dispatcher.injectFault(shard, 'exit');
        await new Promise((r) => setTimeout(r, 120));
      }
      await engine.finished();
      expect(engine.dispatcher.channelInfo().some((c) => c.failed)).toBe(false);
      expect(engine.metrics.shardFailures).toBeGreaterThan(5);
      expect(engine.committedTotals().events).toBe(N);
      expect(engine.query.activeUsers(ALL).map((r) => ({ windowStart: r.windowStart, users: r.users }))).toEqual(model.activeUsers);
    } finally {
      await engine.stop();
      delete process.env.RTA_ENABLE_FAULTS;
    }
  }, 120_000);
});
