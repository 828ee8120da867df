import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { parseEngineConfig } from '../../engine/index.js';
import { ShardStore, type StoreKey } from '../../engine/state/shard-store.js';
import { OpenSessionsReader } from '../../engine/operators/pipelines/sessions.js';
import { sharingOf } from '../../engine/operators/pipelines/alerts.js';
import { TEST_GENERATOR, continueToModel, generateEvents, referenceFor, startEmbedded, tempDir } from './harness.js';

/**
 * Open sessions and account-sharing windows are stored as tuples since the ninth session; stores
 * written before hold objects. Open sessions may be stored in groups of users since the seventeenth
 * session ([p, 'sessions', 'openGroup', g], with deltas since the eighteenth: 'openDelta'); stores written before hold one key per user
 * ([p, 'sessions', 'open', userId]). An engine stopped mid-stream has its stored state rewritten
 * into the oldest form (one key per user, objects: what an older build left behind), then a new
 * engine continues over that state: every session and every account-sharing window must still
 * equal the reference model, both those the restart rewrote and those it only read.
 */
const N = 60_000;
const model = referenceFor(generateEvents(TEST_GENERATOR, N));
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** Rewrites one shard's open sessions and account-sharing windows into the object form older builds wrote. */
function downgrade(dataDir: string, shard: number): { sessions: number; sharing: number } {
  const store = ShardStore.open(dataDir, shard, parseEngineConfig({}).mapSizeBytes);
  const rewrites: Array<[StoreKey, unknown]> = [];
  let sessions = 0;
  let sharing = 0;
  // Open sessions in any stored form (own keys, group deltas, groups), the newest of each user winning.
  const open = new Map<number, OpenSessionsReader>();
  for (const { key, value } of store.state.getRange({})) {
    const k = key as StoreKey;
    if (k[1] === 'sessions' && (k[2] === 'open' || k[2] === 'openDelta' || k[2] === 'openGroup')) {
      const p = k[0] as number;
      if (!open.has(p)) open.set(p, new OpenSessionsReader());
      open.get(p)!.add(k.slice(2), value);
      rewrites.push([k, undefined]);
    } else if (k[1] === 'account_sharing') {
      const v = sharingOf(value);
      rewrites.push([k, { p: v.platforms, l: v.locations, ap: v.alertedPlatforms, al: v.alertedLocations }]);
      sharing++;
    }
  }
  // One key per user, StoredSession objects: the oldest form.
  for (const [p, reader] of open) {
    for (const [userId, list] of reader.users) {
      rewrites.push([[p, 'sessions', 'open', userId], list]);
      sessions++;
    }
  }
  store.env.transactionSync(() => {
    for (const [k, v] of rewrites) {
      if (v === undefined) store.state.removeSync(k);
      else store.state.putSync(k, v);
    }
  });
  void store.close();
  return { sessions, sharing };
}

describe('stored format upgrade', () => {
  it('an engine continues over open sessions and account-sharing windows stored as objects by an older build', async () => {
    const dir = tempDir('upgrade');
    dirs.push(dir);
    const options = { partitions: 8, shards: 4, workers: 2 };
    const first = await startEmbedded(dir, TEST_GENERATOR, N, { rate: 5_000, eventsPerMessage: 5 }, options);
    await new Promise((r) => setTimeout(r, 1500));
    await first.stop();
    expect(first.metrics.events).toBeLessThan(N);

    let sessions = 0;
    let sharing = 0;
    for (let shard = 0; shard < 4; shard++) {
      const n = downgrade(dir, shard);
      sessions += n.sessions;
      sharing += n.sharing;
    }
    expect(sessions).toBeGreaterThan(100);
    expect(sharing).toBeGreaterThan(100);

    await continueToModel(dir, N, options, model);
  }, 120_000);
});
