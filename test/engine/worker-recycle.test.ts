import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import type { Engine } from '../../engine/index.js';
import { TEST_GENERATOR, expectEveryNumberOnce, generateEvents, referenceFor, runEmbedded, tempDir } from './harness.js';

/**
 * A worker thread interns every user, device and product it meets, for its lifetime; past
 * workerMaxKeys (and twice what it held after opening its shards) the dispatcher replaces it by a
 * fresh thread that reopens the shards from a commit. This stream keeps bringing new users (a
 * pool of 100,000, Zipf 0.3, over 13 hours of event time, so hours of windows close behind it):
 * with workerMaxKeys 1 the threads are replaced whenever their keys double, and every number must
 * still be the reference model's.
 */
const GEN = { ...TEST_GENERATOR, users: 100_000, zipfExponent: 0.3, eventsPerSecond: 2, outOfOrderRate: 0.3, outOfOrderMs: 25_000 };
const N = 100_000;
const PARTITIONS = 8;
const SHARDS = 4;
const WORKERS = 2;
const events = generateEvents(GEN, N);
const model = referenceFor(events, { partitions: PARTITIONS, gen: GEN });

describe('worker threads replaced after interning workerMaxKeys keys', () => {
  let engine: Engine;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir('recycle');
    engine = await runEmbedded(dir, GEN, N, { workers: WORKERS, shards: SHARDS, partitions: PARTITIONS, workerMaxKeys: 1, commitIntervalMs: 200 });
  }, 180_000);

  afterAll(async () => {
    await engine?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('replaces the threads; a new thread holds only what the state restored, not every user its shards met', () => {
    const r = engine.dispatcher.recycled;
    expect(engine.dispatcher.stats.recycles).toBeGreaterThanOrEqual(2);
    expect(r.length).toBe(engine.dispatcher.stats.recycles);
    // A thread asks once it holds more than twice what it restored (workerMaxKeys 1).
    for (const x of r) expect(x.keysAfter, JSON.stringify(x)).toBeLessThanOrEqual(x.keysBefore);
    // Later in the stream, hours of windows have closed: a new thread restores a fraction of the
    // keys its predecessor had interned (every user it met, kept for its lifetime).
    expect(Math.min(...r.map((x) => x.keysAfter / x.keysBefore)), JSON.stringify(r)).toBeLessThan(0.6);
    expect(engine.dispatcher.channelInfo().every((c) => !c.recycling && !c.recovering && c.inFlight === 0 && c.retained === 0)).toBe(true);
    expect(engine.metrics.shardFailures).toBe(0);
  });

  it('counts every event once: every number is the reference model\'s', () => {
    expectEveryNumberOnce(engine, model, N);
    const types = new Set(['IOT_THRESHOLD', 'REPEATED_LOGIN_FAILURE', 'MULTIPLE_LOCATIONS', 'MULTIPLE_PLATFORMS', 'TRANSACTION_ANOMALY']);
    const got = engine.query.alerts({ limit: 1e9 }).alerts.map((a) => a.alertId).filter((id) => types.has(id.split(':')[0]));
    expect(got.sort()).toEqual([...model.alerts].sort());
    expect(model.alerts.size).toBeGreaterThan(0);
  });
});
