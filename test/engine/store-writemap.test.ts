import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { parseEngineConfig } from '../../engine/index.js';
import { shardPath } from '../../engine/state/shard-store.js';
import { TEST_GENERATOR, continueToModel, generateEvents, referenceFor, startEmbedded, tempDir } from './harness.js';

/**
 * --store-writemap (LMDB's MDB_WRITEMAP) changes how commits reach the file, not what they hold:
 * an engine stopped mid-stream and restarted over its state, both with the option, must end with
 * exactly the reference model's numbers, sessions and account-sharing windows.
 */
const N = 40_000;
const model = referenceFor(generateEvents(TEST_GENERATOR, N));
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('--store-writemap', () => {
  it('stops and restarts over its own state to exactly the reference numbers', async () => {
    const dir = tempDir('writemap');
    dirs.push(dir);
    const options = { partitions: 8, shards: 4, workers: 2, storeWritemap: true };
    const first = await startEmbedded(dir, TEST_GENERATOR, N, { rate: 5_000, eventsPerMessage: 5 }, options);
    await new Promise((r) => setTimeout(r, 1500));
    await first.stop();
    expect(first.metrics.events).toBeLessThan(N);
    // The option reached LMDB: with MDB_WRITEMAP the data file is sized to the whole map at open
    // (sparse); without it, to the pages in use (a few MB here).
    const mapSize = parseEngineConfig({}).mapSizeBytes;
    for (let shard = 0; shard < 4; shard++) {
      expect(fs.statSync(path.join(shardPath(dir, shard), 'data.mdb')).size).toBeGreaterThanOrEqual(mapSize);
    }

    await continueToModel(dir, N, options, model);
  }, 120_000);
});
