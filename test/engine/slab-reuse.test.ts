import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import type { Engine } from '../../engine/index.js';
import { TEST_GENERATOR, expectEveryNumberOnce, generateEvents, referenceFor, runEmbedded, tempDir } from './harness.js';

/**
 * Slabs a commit released are reused for the next slabs, and a shard whose slabs since its last
 * commit pass maxRetainedBytesPerShard asks its worker for one early commit. Here the commit
 * interval is the longest there is, so every commit but the last is such an early one; the slabs
 * are small (about one 200-event message each), so many slabs are reused ones. A slab
 * reused while a worker still read it, or a batch replayed after its slab was reused, would
 * change the numbers.
 */
const N = 100_000;
const PARTITIONS = 8;
const SHARDS = 4;
const MAX_RETAINED = 1024 * 1024;
const events = generateEvents(TEST_GENERATOR, N);
const model = referenceFor(events, { partitions: PARTITIONS });

describe('slabs reused after their commit; early commits when much is held for replay', () => {
  let engine: Engine;
  let dir: string;

  beforeAll(async () => {
    dir = tempDir('slab-reuse');
    engine = await runEmbedded(dir, TEST_GENERATOR, N, { workers: 2, shards: SHARDS, partitions: PARTITIONS, slabBytes: 32 * 1024, maxRetainedBytesPerShard: MAX_RETAINED, commitIntervalMs: 600_000 });
  }, 180_000);

  afterAll(async () => {
    await engine?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reuses slabs, and asks for one early commit per megabyte held, not one per slab sent meanwhile', () => {
    const { slabs, bytes, slabsReused } = engine.dispatcher.stats;
    expect(bytes).toBeGreaterThan(8 * MAX_RETAINED);
    expect(slabsReused).toBeGreaterThan(slabs / 4); // the first megabyte per shard, and slabs sent part full, are new
    // Per shard: a commit each time its slabs since the last commit pass the bound, and the last
    // one. Every slab sent while a commit was on its way used to ask again: several times as many.
    const commits = engine.metrics.commits;
    expect(commits).toBeGreaterThanOrEqual(Math.floor(bytes / MAX_RETAINED / 2));
    expect(commits).toBeLessThanOrEqual(Math.ceil(bytes / MAX_RETAINED) + 2 * SHARDS);
  });

  it('counts every event once: every number is the reference model\'s', () => {
    expectEveryNumberOnce(engine, model, N);
  });
});
