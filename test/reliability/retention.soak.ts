/**
 * Scenario 8: retention. The embedded source plays 36 hours of event time in a few wall minutes
 * (event times in the past, ending now, so none is "in the future"); the stores must stop growing
 * once retention (24 h of event time) starts deleting, memory must stay flat, and nothing older than
 * the retention period may remain.
 *
 * In-process (Engine API), not the CLI: `--time-scale` on the CLI starts event time at the wall
 * clock, so after 24 simulated hours every event is more than `maxFutureMs` (1 day) ahead and is
 * dead-lettered; the CLI has no start-time option (see RELIABILITY.md).
 */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { Engine, EmbeddedSource, MemorySink, ReferenceStore, parseEngineConfig } from '../../engine/index.js';
import { ShardStore, shardPath, type StoreKey } from '../../engine/state/shard-store.js';
import { SHARDS, sleep, tempDir } from './harness.js';

const HOUR = 3_600_000;
const SIM_HOURS = Number(process.env.SOAK_SIM_HOURS ?? 36);
const WALL_S = Number(process.env.SOAK_WALL_S ?? 180);
const RATE = Number(process.env.SOAK_RATE ?? 6_000);

function storeBytes(dataDir: string): number {
  let n = 0;
  for (let s = 0; s < SHARDS; s++) {
    const dir = shardPath(dataDir, s);
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) n += fs.statSync(path.join(dir, f)).size;
  }
  return n;
}

describe('retention over a simulated day and a half (scenario 8, soak)', () => {
  it(`${SIM_HOURS} h of event time at ${RATE} events/s: store size and memory flat once retention runs, nothing older than retention kept`, async () => {
    const dataDir = tempDir('retention');
    const start = Date.now() - SIM_HOURS * HOUR;
    const events = RATE * WALL_S;
    const eventsPerSecond = events / (SIM_HOURS * 3600); // of event time
    // Unbounded: the run ends when the stream time reaches SIM_HOURS (the generator's event-time rate is only nominal).
    const source = new EmbeddedSource({ partitions: 8, rate: RATE, eventsPerMessage: 500, maxBatchEventTimeMs: 60_000,
      generator: { seed: 8, users: 20_000, startTime: start, eventsPerSecond } });
    const ref = ReferenceStore.open(dataDir);
    await source.bootstrap(ref);
    await ref.close();
    const engine = await Engine.start({ dataDir, partitions: 8, shards: SHARDS, workers: 1, commitIntervalMs: 500 }, source, new MemorySink(10_000));
    const samples: Array<{ wallS: number; simHours: number; storeMB: number; rssMB: number; workerHeapMB: number; events: number }> = [];
    const t0 = Date.now();
    let done = false;
    let stopped = false;
    const end = start + SIM_HOURS * HOUR;
    try {
      while (!done) {
        const st = engine.query.latestStreamTime();
        samples.push({
          wallS: Math.round((Date.now() - t0) / 1000), simHours: st ? Math.round(((st - start) / HOUR) * 10) / 10 : 0, storeMB: Math.round(storeBytes(dataDir) / 1e5) / 10,
          rssMB: Math.round(process.memoryUsage().rss / 1e5) / 10, workerHeapMB: Math.round(engine.metrics.workerHeapBytes / 1e5) / 10, events: engine.committedTotals().events,
        });
        if (st >= end) done = true;
        else await sleep(5000);
        if (Date.now() - t0 > WALL_S * 3000) throw new Error(`only ${samples.at(-1)?.simHours} h of event time after ${WALL_S * 3} s`);
      }
      const streamTime = engine.query.latestStreamTime();
      stopped = true;
      await engine.stop();
      // The oldest entry each pipeline still holds, against the retention cutoff.
      const config = parseEngineConfig({ dataDir, partitions: 8, shards: SHARDS });
      const cutoff = streamTime - config.retentionMs;
      const oldest: Record<string, number> = {};
      for (let s = 0; s < SHARDS; s++) {
        const store = ShardStore.open(dataDir, s, config.mapSizeBytes, true);
        for (const key of store.state.getKeys({}) as Iterable<StoreKey>) {
          const [, pipeline, a, b] = key;
          const t = typeof a === 'number' ? a : pipeline === 'sessions' && a === 'closedByEnd' && typeof b === 'number' ? b : undefined;
          if (t === undefined || t < 1e12) continue;
          const name = pipeline === 'sessions' ? 'sessions.closedByEnd' : String(pipeline);
          oldest[name] = Math.min(oldest[name] ?? Infinity, t);
        }
        await store.close();
      }
      const oldestHoursBeforeCutoff = Object.fromEntries(Object.entries(oldest).map(([k, t]) => [k, Math.round(((cutoff - t) / HOUR) * 100) / 100]));
      const at = (h: number) => samples.find((x) => x.simHours >= h) ?? samples.at(-1)!;
      const base = at(26);
      const tail = samples.filter((x) => x.simHours >= 26);
      const report = {
        simHours: SIM_HOURS, wallSeconds: (Date.now() - t0) / 1000, committed: engine.committedTotals().events, deadLetters: engine.committedTotals().deadLetters,
        storeMB: { at12h: at(12).storeMB, at24h: at(24).storeMB, at26h: base.storeMB, maxAfter26h: Math.max(...tail.map((x) => x.storeMB)), end: samples.at(-1)!.storeMB },
        rssMB: { at12h: at(12).rssMB, at26h: base.rssMB, maxAfter26h: Math.max(...tail.map((x) => x.rssMB)), end: samples.at(-1)!.rssMB },
        workerHeapMB: { at26h: base.workerHeapMB, maxAfter26h: Math.max(...tail.map((x) => x.workerHeapMB)) },
        oldestHoursBeforeCutoff, samples,
      };
      console.log(`[scenario 8] ${JSON.stringify(report)}`);
      expect(report.committed).toBeGreaterThan(events / 2);
      expect(report.deadLetters).toBe(0);
      expect(tail.length).toBeGreaterThan(3);
      // Bounded: after retention starts (24 h + a bit), the store file grows by at most 20 %.
      expect(report.storeMB.maxAfter26h).toBeLessThanOrEqual(base.storeMB * 1.2 + 1);
      // Flat memory: at most 25 % above the 26 h mark (+ 30 MB for GC timing).
      expect(report.rssMB.maxAfter26h).toBeLessThanOrEqual(base.rssMB * 1.25 + 30);
      // Nothing older than the retention period, but for windows that straddle the cutoff (1 h product windows) and the once-a-minute retention pass.
      for (const [name, h] of Object.entries(oldestHoursBeforeCutoff)) expect(h, name).toBeLessThanOrEqual(1.1);
    } finally {
      if (!stopped) await engine.stop().catch(() => undefined);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
