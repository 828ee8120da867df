import fs from 'node:fs';
import { TEST_GENERATOR, generateEvents, referenceFor, runEmbedded, tempDir } from './harness.js';
const GEN = { ...TEST_GENERATOR, users: Number(process.env.U ?? 20000), zipfExponent: 0.3, eventsPerSecond: Number(process.env.R ?? 5) };
const N = Number(process.env.N ?? 100000);
const t0 = Date.now();
const events = generateEvents(GEN, N);
const users = new Set(events.map((e: any) => e.userId).filter(Boolean));
const span = (events[events.length-1] as any).timestamp - (events[0] as any).timestamp;
console.log('distinct users', users.size, 'span h', (span/3.6e6).toFixed(2));
for (const limit of [Number(process.env.L ?? 1), 1e9]) {
  const dir = tempDir('recycle-exp');
  const t1 = Date.now();
  const engine = await runEmbedded(dir, GEN, N, { workers: 2, shards: 4, workerMaxKeys: limit, commitIntervalMs: Number(process.env.C ?? 200) });
  console.log({ limit, recycles: engine.dispatcher.stats.recycles, peak: engine.metrics.workerKeysPeak, keys: engine.metrics.workerKeys, ms: Date.now() - t1, events: engine.metrics.events });
  await engine.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
