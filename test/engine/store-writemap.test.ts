import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { parseEngineConfig, type EngineOptions } from '../../engine/index.js';
import { ShardStore, shardPath } from '../../engine/state/shard-store.js';
import { TEST_GENERATOR, continueToModel, generateEvents, referenceFor, startEmbedded, tempDir } from './harness.js';

/**
 * --store-writemap (LMDB's MDB_WRITEMAP) and --store-page-size change how commits reach the file,
 * not what they hold: an engine stopped mid-stream and restarted over its state, both with the
 * option, must end with exactly the reference model's numbers, sessions and account-sharing
 * windows. Each case also checks that its option reached LMDB.
 */
const N = 40_000;
const model = referenceFor(generateEvents(TEST_GENERATOR, N));
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const mapSize = parseEngineConfig({}).mapSizeBytes;

const cases: Array<{ name: string; options: EngineOptions; reachedLmdb: (dataDir: string, shard: number) => void }> = [
  {
    name: '--store-writemap',
    options: { storeWritemap: true },
    // With MDB_WRITEMAP the data file is sized to the whole map at open (sparse); without it, to the pages in use (a few MB here).
    reachedLmdb: (dir, shard) => expect(fs.statSync(path.join(shardPath(dir, shard), 'data.mdb')).size).toBeGreaterThanOrEqual(mapSize),
  },
  {
    name: '--store-page-size 16384',
    options: { storePageSize: 16384 },
    reachedLmdb: (dir, shard) => {
      const store = ShardStore.open(dir, shard, mapSize, true);
      try {
        expect((store.env.getStats() as { pageSize: number }).pageSize).toBe(16384);
      } finally {
        void store.close();
      }
    },
  },
];

describe('shard store options', () => {
  for (const c of cases) {
    it(`${c.name}: stops and restarts over its own state to exactly the reference numbers`, async () => {
      const dir = tempDir('store-options');
      dirs.push(dir);
      const options: EngineOptions = { partitions: 8, shards: 4, workers: 2, ...c.options };
      const first = await startEmbedded(dir, TEST_GENERATOR, N, { rate: 5_000, eventsPerMessage: 5 }, options);
      await new Promise((r) => setTimeout(r, 1500));
      await first.stop();
      expect(first.metrics.events).toBeLessThan(N);
      for (let shard = 0; shard < 4; shard++) c.reachedLmdb(dir, shard);
      await continueToModel(dir, N, options, model);
    }, 120_000);
  }
});
