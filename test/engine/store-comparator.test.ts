import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { open } from 'lmdb';
import { compareKeys } from 'ordered-binary';
import { ShardStore, shardPath, type StoreKey } from '../../engine/state/shard-store.js';
import { Rng } from '../../engine/source/random.js';

/**
 * The shard store compares keys with LMDB's memcmp; stores written before (and any other opener
 * with lmdb-js's defaults) used lmdb-js's compareFast. A B-tree is only valid under the order it
 * was built with, so the two must order every key the same way: checked here by writing one store
 * alternately through both, with keys shaped like the engine's (numbers, negative numbers,
 * strings sharing long prefixes, nested prefixes of each other), then reading it back in order,
 * by point and by range, against a plain Map.
 */
function randomKey(rng: Rng): StoreKey {
  const rnd = () => rng.next();
  const p = Math.floor(rnd() * 4);
  const r = rnd();
  if (r < 0.3) return [p, 'sessions', 'open', `user-${Math.floor(rnd() * 1e6)}`];
  if (r < 0.45) return [p, 'account_sharing', 1.7e12 + Math.floor(rnd() * 100) * 6e5, `user-${Math.floor(rnd() * 1e6)}`];
  if (r < 0.6) return [p, 'sessions', 'closedByEnd', Math.floor(rnd() * 1e13), `user-${Math.floor(rnd() * 1e3)}`, Math.floor(rnd() * 1e13)];
  if (r < 0.75) return [p, 'traffic', Math.floor(rnd() * 1e4) * 60_000, `page-${Math.floor(rnd() * 50)}`];
  if (r < 0.85) return [p, 'x', -rnd() * 1e6, rnd().toString(36)];
  if (r < 0.9) return [p, 's', 'user'.slice(0, 1 + Math.floor(rnd() * 4))]; // prefixes of each other
  return [p, '~meta'];
}

describe('shard store key order', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('is the same under memcmp and lmdb-js compareFast: one store written alternately by both stays ordered and complete', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-cmp-'));
    dirs.push(dataDir);
    const rng = new Rng(11);
    const rnd = () => rng.next();
    const expected = new Map<string, StoreKey>();
    const id = (k: StoreKey) => JSON.stringify(k);

    for (const opener of ['lmdb-default', 'shard-store', 'lmdb-default', 'shard-store'] as const) {
      let close: () => Promise<void>;
      let db: { putSync(k: StoreKey, v: unknown): void; removeSync(k: StoreKey): void; getKeys(r: object): Iterable<unknown>; get(k: StoreKey): unknown };
      let txn: (f: () => void) => void;
      if (opener === 'lmdb-default') {
        fs.mkdirSync(shardPath(dataDir, 0), { recursive: true });
        const env = open({ path: shardPath(dataDir, 0), maxDbs: 4, noMemInit: true, mapSize: 1 << 30 });
        const state = env.openDB<unknown, StoreKey>({ name: 'state' }); // compareFast
        db = state as never;
        txn = (f) => env.transactionSync(f);
        close = () => env.close();
      } else {
        const store = ShardStore.open(dataDir, 0, 1 << 30);
        db = store.state as never;
        txn = (f) => store.env.transactionSync(f);
        close = () => store.close();
      }
      txn(() => {
        for (let i = 0; i < 20_000; i++) {
          const k = randomKey(rng);
          db.putSync(k, i);
          expected.set(id(k), k);
        }
        let n = 0;
        for (const [s, k] of expected) {
          if (++n > 3000) break;
          if (rnd() < 0.5) {
            db.removeSync(k);
            expected.delete(s);
          }
        }
      });

      const stored = [...db.getKeys({})] as StoreKey[];
      expect(stored.length).toBe(expected.size);
      for (let i = 1; i < stored.length; i++) {
        if (compareKeys(stored[i - 1], stored[i]) >= 0) expect.fail(`${opener}: ${id(stored[i - 1])} before ${id(stored[i])}`);
      }
      for (const k of stored) expect(expected.has(id(k))).toBe(true);
      for (const k of [...expected.values()].slice(0, 2000)) expect(db.get(k)).not.toBeUndefined();
      for (const p of [0, 3]) {
        const range = [...db.getKeys({ start: [p, 'sessions'], end: [p, 'sessions\u0000'] })].length;
        expect(range).toBe([...expected.values()].filter((k) => k[0] === p && k[1] === 'sessions').length);
      }
      await close();
    }
    expect(expected.size).toBeGreaterThan(50_000);
  });
});
