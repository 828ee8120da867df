/**
 * bench:micro — tinybench micro benchmarks of the engine's hot pieces, one entry point:
 *   window    KeyedWindows.entry() per event: a 1-minute tumbling window and the 5 hops of a
 *             5-minute/1-minute hopping window, keyed by interned user (what active users and revenue do)
 *   routing   partitionOf(keyOf(event)) and partition -> shard (what loadgen and the dispatcher do)
 *   lmdb      ShardStore.commit(): one durable LMDB transaction of N puts with the partition meta
 *   delta     JSON of a DELTA message as the server builds it, raw vs deflate (permessage-deflate)
 * (The codec has its own bench: npm run bench:codec.)
 *
 *   npm run bench:micro -- [--only window,routing,lmdb,delta] [--time 1000] [--puts 1000] [--reporter pretty|json]
 *
 * Last line of output: {"bench":"micro","window":{...},"routing":{...},"lmdb":{...},"delta":{...}}
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { EventGenerator } from '../engine/source/generator.js';
import { keyOf, partitionOf } from '../engine/source/embedded.js';
import { KeyedWindows, type WindowCodec } from '../engine/operators/keyed-windows.js';
import { hoppingStarts, MINUTE, tumblingStart } from '../engine/operators/windows.js';
import { ShardStore, type PartitionMeta, type StoreKey } from '../engine/state/shard-store.js';

const { values: a } = parseArgs({
  options: {
    only: { type: 'string', default: 'window,routing,lmdb,delta' },
    time: { type: 'string', default: '1000' },
    puts: { type: 'string', default: '1000' },
    reporter: { type: 'string', default: 'pretty' },
  },
});
const only = new Set(a.only!.split(','));
for (const n of only) if (!['window', 'routing', 'lmdb', 'delta'].includes(n)) throw new Error(`--only: unknown bench "${n}" (window, routing, lmdb, delta)`);
const time = Number(a.time);
const putsPerCommit = Number(a.puts);
const pretty = a.reporter !== 'json';
const results: Record<string, Record<string, number>> = {};
const say = (s: string) => pretty && process.stderr.write(s + '\n');

async function measure(name: string, fns: Record<string, () => void>): Promise<Record<string, { hz: number; p99Ms: number }>> {
  const bench = new Bench({ time, warmupTime: Math.min(500, time / 2) });
  for (const [k, fn] of Object.entries(fns)) bench.add(k, fn);
  say(`${name}: running ${Object.keys(fns).join(', ')} ...`);
  await bench.run();
  const out: Record<string, { hz: number; p99Ms: number }> = {};
  for (const t of bench.tasks) {
    const r = t.result as unknown as { throughput?: { mean: number }; latency?: { p99?: number } };
    out[t.name] = { hz: r.throughput?.mean ?? 0, p99Ms: r.latency?.p99 ?? 0 };
  }
  return out;
}

// Inputs: 100,000 events of the event model (1,000,000 Zipf users), as the engine sees them.
const gen = new EventGenerator({ seed: 7, users: 1_000_000, eventsPerSecond: 20_000, concurrentSessions: 20_000 });
const events = gen.take(100_000);
const N = events.length;

if (only.has('window')) {
  interface Count { n: number; usd: number }
  const codec: WindowCodec<Count> = { create: () => ({ n: 0, usd: 0 }), keyToString: String, keyFromString: Number, encode: (v) => v, decode: (x) => x as Count };
  const users = new Map<string, number>();
  const keys = Int32Array.from(events, (e) => {
    let id = users.get(e.userId);
    if (id === undefined) users.set(e.userId, (id = users.size));
    return id;
  });
  const ts = Float64Array.from(events, (e) => e.timestamp);
  const hops: number[] = [];
  let tumbling = new KeyedWindows<Count>('active_users', MINUTE, 30_000, codec);
  let hopping = new KeyedWindows<Count>('revenue', 5 * MINUTE, 30_000, codec);
  const r = await measure('window', {
    tumbling: () => {
      for (let i = 0; i < N; i++) tumbling.entry(tumblingStart(ts[i], MINUTE), keys[i]).value.n++;
      tumbling.committed(); // the commit clears the dirty list; windows stay open
    },
    hopping: () => {
      for (let i = 0; i < N; i++) {
        const k = hoppingStarts(ts[i], 5 * MINUTE, MINUTE, hops);
        for (let h = 0; h < k; h++) hopping.entry(hops[h], keys[i]).value.usd += 1;
      }
      hopping.committed();
    },
  });
  tumbling = new KeyedWindows<Count>('active_users', MINUTE, 30_000, codec);
  hopping = new KeyedWindows<Count>('revenue', 5 * MINUTE, 30_000, codec);
  results.window = { tumblingEventsPerSec: Math.round(r.tumbling.hz * N), hoppingEventsPerSec: Math.round(r.hopping.hz * N), events: N };
  say(`  tumbling 1 min: ${results.window.tumblingEventsPerSec.toLocaleString()} events/s; hopping 5 min / 1 min: ${results.window.hoppingEventsPerSec.toLocaleString()} events/s`);
}

if (only.has('routing')) {
  let sink = 0;
  const r = await measure('routing', {
    partitionOf: () => {
      for (let i = 0; i < N; i++) sink += partitionOf(keyOf(events[i]), 8);
    },
    'partitionOf+shard': () => {
      for (let i = 0; i < N; i++) sink += partitionOf(keyOf(events[i]), 8) % 4;
    },
  });
  results.routing = { partitionOfPerSec: Math.round(r.partitionOf.hz * N), withShardPerSec: Math.round(r['partitionOf+shard'].hz * N), sink: sink & 1 };
  say(`  partitionOf(keyOf(e), 8): ${results.routing.partitionOfPerSec.toLocaleString()} events/s; with partition -> shard: ${results.routing.withShardPerSec.toLocaleString()} events/s`);
}

if (only.has('lmdb')) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-bench-micro-'));
  const store = ShardStore.open(dir, 0, 1024 ** 3);
  let batch = 0;
  const value = { u: ['user-1', 'user-2', 'user-3'], p: { WEB: ['user-1'], MOBILE: ['user-2', 'user-3'] } };
  const writes: Array<[StoreKey, unknown]> = [];
  const meta = new Map<number, PartitionMeta>();
  const r = await measure('lmdb', {
    [`commit of ${putsPerCommit} puts`]: () => {
      writes.length = 0;
      batch++;
      // Keys spread like a commit's dirty windows: a few windows, many users.
      for (let i = 0; i < putsPerCommit; i++) writes.push([[i & 7, 'active_users', (batch % 60) * MINUTE, `user-${(batch * 7919 + i * 104_729) % 1_000_000}`], value]);
      for (let p = 0; p < 8; p += 4) meta.set(p, { offsets: { '1': batch }, streamTime: batch * 1000, counters: { events: batch * putsPerCommit, deadLetters: 0, late: {} } });
      store.commit(writes, meta);
    },
  });
  const k = `commit of ${putsPerCommit} puts`;
  results.lmdb = { commitsPerSec: Math.round(r[k].hz), putsPerSec: Math.round(r[k].hz * putsPerCommit), commitP99Ms: Math.round(r[k].p99Ms * 100) / 100, putsPerCommit };
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
  say(`  ${results.lmdb.commitsPerSec.toLocaleString()} commits/s of ${putsPerCommit} puts = ${results.lmdb.putsPerSec.toLocaleString()} puts/s (commit p99 ${results.lmdb.commitP99Ms} ms)`);
}

if (only.has('delta')) {
  // The server's DELTA (server/server.ts tick()): tiles, the last 3 active-user minutes with the
  // platform breakdown, the last 5 revenue windows with currency and tier breakdown, new alerts.
  const now = Date.now();
  const minute = Math.floor(now / MINUTE) * MINUTE;
  const delta = {
    type: 'DELTA', changed: ['active_users', 'platform_events', 'error_rate', 'revenue', 'products', 'geo', 'performance', 'sessions', 'user_actions'], streamTime: now,
    tiles: { activeUsersNow: 48_213, revenueUsdLast5Min: 1_284_311.42, errorRate: 0.0198, lateDrops: 1412, deadLetters: 0, slabsInFlight: 3 },
    activeUsers: [0, 1, 2].map((i) => ({ windowStart: minute - (2 - i) * MINUTE, windowEnd: minute - (1 - i) * MINUTE, users: 48_000 + i * 97, byPlatform: { WEB: 29_000 + i, MOBILE: 19_000 + i, IOT: 1_200 + i } })),
    revenue: [0, 1, 2, 3, 4].map((i) => ({
      windowStart: minute - (8 - i) * MINUTE, windowEnd: minute - (3 - i) * MINUTE, usd: 1_280_000 + i * 311.17, count: 21_000 + i,
      byCurrency: { USD: 900_000.12 + i, EUR: 250_000.5 + i, BRL: 310_000.25 + i }, byTier: { FREE: 610_000.1, SILVER: 300_000.2, GOLD: 250_000.3, PLATINUM: 120_000.4 },
    })),
    newAlerts: [{ alertId: 'TRANSACTION_ANOMALY:user-81723:1764400000000', type: 'TRANSACTION_ANOMALY', severity: 'HIGH', key: 'user-81723', windowStart: minute, message: 'amount 4,210.00 USD is 31.2x the user\'s mean', timestamp: now }],
  };
  let bytes = 0;
  let deflated = 0;
  const r = await measure('delta', {
    'JSON.stringify': () => {
      bytes = JSON.stringify(delta).length;
    },
    'JSON.stringify + deflateRaw': () => {
      deflated = zlib.deflateRawSync(JSON.stringify(delta), { level: 6 }).length;
    },
  });
  results.delta = {
    jsonPerSec: Math.round(r['JSON.stringify'].hz), jsonDeflatePerSec: Math.round(r['JSON.stringify + deflateRaw'].hz),
    rawBytes: bytes, deflatedBytes: deflated, ratio: Math.round((bytes / deflated) * 100) / 100,
  };
  say(`  DELTA ${bytes} B raw: ${results.delta.jsonPerSec.toLocaleString()}/s; deflated to ${deflated} B (${results.delta.ratio}x smaller): ${results.delta.jsonDeflatePerSec.toLocaleString()}/s`);
}

console.log(JSON.stringify({ bench: 'micro', ...results, node: process.version, cores: os.availableParallelism() }));
