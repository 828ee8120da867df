/**
 * bench:lmdb — the cost of one state put into a large shard store, with LMDB comparing keys through
 * lmdb-js's compareFast (its default for ordered-binary keys in a named database), through memcmp
 * (what ShardStore uses: engine/state/shard-store.ts, KEY_ENCODER), and through memcmp with
 * MDB_WRITEMAP (the engine's --store-writemap). Each side fills its own
 * store with --keys open-session keys shaped like the engine's ([partition, 'sessions', 'open',
 * 'user-N'] -> a session tuple), then times --txns transactions of --puts random updates each.
 * Sides alternate, --rounds times, so a machine that changes speed does not favour one.
 *
 *   npm run bench:lmdb -- [--keys 1500000] [--puts 50000] [--txns 10] [--rounds 3] [--dir DIR]
 *
 * Last line: {"bench":"lmdb-put","keys":N,"putsPerTxn":N,"nsPerPut":{"compareFast":[...],"memcmp":[...],"writemap":[...]},"medianNsPerPut":{...}}
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { open } from 'lmdb';
import { ShardStore, type StoreKey } from '../engine/state/shard-store.js';
import { Rng } from '../engine/source/random.js';

const { values: a } = parseArgs({
  options: {
    keys: { type: 'string', default: '1500000' },
    puts: { type: 'string', default: '50000' },
    txns: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    dir: { type: 'string', default: os.tmpdir() },
  },
});
const keys = Number(a.keys);
const puts = Number(a.puts);
const txns = Number(a.txns);
const rounds = Number(a.rounds);
for (const [name, v] of [['--keys', keys], ['--puts', puts], ['--txns', txns], ['--rounds', rounds]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
}

const key = (i: number): StoreKey => [0, 'sessions', 'open', `user-${i}`];
const value = (i: number) => [1_700_000_000_000 + i, 1_700_000_001_000 + i, 5, 3, 1, 12.5, 3, 'WEB'];

interface Side {
  name: 'compareFast' | 'memcmp' | 'writemap';
  put(k: StoreKey, v: unknown): void;
  txn(f: () => void): void;
  close(): Promise<void>;
}

function openSide(name: Side['name'], dir: string): Side {
  if (name !== 'compareFast') {
    const s = ShardStore.open(dir, 0, 16 * 2 ** 30, false, name === 'writemap');
    return { name, put: (k, v) => s.state.putSync(k, v), txn: (f) => s.env.transactionSync(f), close: () => s.close() };
  }
  fs.mkdirSync(dir, { recursive: true });
  const env = open({ path: dir, mapSize: 16 * 2 ** 30, maxDbs: 4, noMemInit: true });
  const db = env.openDB<unknown, StoreKey>({ name: 'state' });
  return { name, put: (k, v) => db.putSync(k, v), txn: (f) => env.transactionSync(f), close: () => env.close() };
}

const rng = new Rng(7);

const root = fs.mkdtempSync(path.join(a.dir!, 'rta-lmdb-put-'));
try {
  const sides = (['compareFast', 'memcmp', 'writemap'] as const).map((n) => openSide(n, path.join(root, n)));
  for (const s of sides) {
    for (let b = 0; b < keys; b += 100_000) s.txn(() => { for (let i = b; i < Math.min(keys, b + 100_000); i++) s.put(key(i), value(i)); });
  }
  const ns: Record<Side['name'], number[]> = { compareFast: [], memcmp: [], writemap: [] };
  for (let r = 0; r < rounds; r++) {
    for (const s of r % 2 === 0 ? sides : [...sides].reverse()) {
      let t = 0;
      for (let x = 0; x < txns; x++) {
        const batch = Array.from({ length: puts }, () => key(rng.int(keys)));
        const v = value(x);
        const t0 = process.hrtime.bigint();
        s.txn(() => { for (const k of batch) s.put(k, v); });
        t += Number(process.hrtime.bigint() - t0);
      }
      ns[s.name].push(Math.round(t / (txns * puts)));
      process.stderr.write(`round ${r + 1} ${s.name}: ${ns[s.name].at(-1)} ns per put\n`);
    }
  }
  for (const s of sides) await s.close();
  const median = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];
  console.log(JSON.stringify({ bench: 'lmdb-put', keys, putsPerTxn: puts, txns, nsPerPut: ns, medianNsPerPut: { compareFast: median(ns.compareFast), memcmp: median(ns.memcmp), writemap: median(ns.writemap) } }));
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
