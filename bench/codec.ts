/**
 * bench:codec — decode-and-visit every field an analytics pipeline reads, over EventBatches of
 * 1,000 mixed events, against JSON.parse of the same events (the baseline, same run).
 * The FlatBuffers path includes verification of every message (as the workers do).
 * Also the producer side (loadgen, the embedded source): encoding the same events with
 * EventBatchEncoder, against JSON.stringify.
 *
 *   npm run bench:codec -- [--events-per-batch 1000] [--batches 64] [--time 2000] [--reporter pretty|json]
 *
 * Last line of output: {"bench":"codec","flatbuffersEventsPerSec":N,"jsonEventsPerSec":N,...}
 */
import { parseArgs } from 'node:util';
import os from 'node:os';
import { Bench } from 'tinybench';
import { EventBatchEncoder, EventBatchReader, EventKind, encodeEventBatch, Slots } from '../engine/codec/index.js';
import { EventGenerator } from '../engine/source/generator.js';

const { values: args } = parseArgs({
  options: {
    'events-per-batch': { type: 'string', default: '1000' },
    batches: { type: 'string', default: '64' },
    time: { type: 'string', default: '2000' },
    reporter: { type: 'string', default: 'pretty' },
  },
});
const perBatch = Number(args['events-per-batch']);
const nBatches = Number(args.batches);
const gen = new EventGenerator({ seed: 1, eventsPerSecond: 5000 });
const batches = Array.from({ length: nBatches }, () => gen.take(perBatch));
const flat = batches.map(encodeEventBatch);
// One slab holding every message, as a worker receives them.
const slab = new Uint8Array(flat.reduce((n, b) => n + b.length, 0));
const where: number[] = [];
{
  let p = 0;
  for (const b of flat) {
    slab.set(b, p);
    where.push(p, b.length);
    p += b.length;
  }
}
const jsonTexts = batches.map((b) => JSON.stringify(b.map(({ source: _s, seq: _q, ...rest }) => ({ ...rest, source: _s }))));

const W = Slots.WebEventSlot, M = Slots.MobileEventSlot, T = Slots.TransactionEventSlot, I = Slots.IotSensorEventSlot, U = Slots.UserActionEventSlot;
const reader = new EventBatchReader();
let sink = 0;

function visitFlat(): void {
  let acc = 0;
  for (let m = 0; m < where.length; m += 2) {
    reader.reset(slab, where[m], where[m + 1]);
    for (let i = 0, n = reader.count; i < n; i++) {
      const kind = reader.select(i);
      acc += reader.timestamp();
      reader.userId(); acc ^= reader.strHash();
      reader.action(); acc ^= reader.strHash();
      switch (kind) {
        case EventKind.WEB:
          reader.sessionId(); acc ^= reader.strHash();
          reader.str(W.page); acc ^= reader.strHash();
          acc += reader.loadTimeMs();
          if (reader.productId()) acc ^= reader.strHash();
          break;
        case EventKind.MOBILE:
          reader.sessionId(); acc ^= reader.strHash();
          reader.str(M.location); acc ^= reader.strHash();
          acc += reader.loadTimeMs();
          if (reader.productId()) acc ^= reader.strHash();
          break;
        case EventKind.TRANSACTION:
          reader.sessionId(); acc ^= reader.strHash();
          acc += reader.f64(T.amount);
          reader.str(T.currency); acc ^= reader.strHash();
          reader.str(T.platform); acc ^= reader.strHash();
          reader.str(T.productId); acc ^= reader.strHash();
          acc += reader.i32(T.quantity);
          break;
        case EventKind.IOT:
          reader.str(I.deviceId); acc ^= reader.strHash();
          acc += reader.f64(I.value);
          reader.str(I.location); acc ^= reader.strHash();
          break;
        case EventKind.USER_ACTION:
          reader.str(U.platform); acc ^= reader.strHash();
          reader.str(U.location); acc ^= reader.strHash();
          break;
      }
    }
  }
  sink ^= acc;
}

function h(s: string | undefined): number {
  // The JSON path gets strings for free from JSON.parse; touching their length keeps the
  // comparison fair without adding a hash cost the FlatBuffers path also pays.
  return s === undefined ? 0 : s.length;
}

function visitJson(): void {
  let acc = 0;
  for (const text of jsonTexts) {
    const events = JSON.parse(text) as Array<Record<string, any>>;
    for (const e of events) {
      acc += e.timestamp;
      acc ^= h(e.userId);
      acc ^= h(e.action ?? e.type ?? e.sensorType);
      switch (e.source) {
        case 'WEB': acc ^= h(e.sessionId) ^ h(e.page); acc += Number(e.customData.loadTimeMs); acc ^= h(e.customData.productId); break;
        case 'MOBILE': acc ^= h(e.sessionId) ^ h(e.location); acc += Number(e.customData.loadTimeMs); acc ^= h(e.customData.productId); break;
        case 'TRANSACTION': acc ^= h(e.sessionId) ^ h(e.currency) ^ h(e.platform) ^ h(e.productId); acc += e.amount + e.quantity; break;
        case 'IOT': acc ^= h(e.deviceId) ^ h(e.location); acc += e.value; break;
        case 'USER_ACTION': acc ^= h(e.platform) ^ h(e.location); break;
      }
    }
  }
  sink ^= acc;
}

const encoder = new EventBatchEncoder();
function encodeFlat(): void {
  let n = 0;
  for (const b of batches) {
    for (const e of b) encoder.add(e);
    n += encoder.finish().length;
  }
  sink ^= n;
}

function encodeJson(): void {
  let n = 0;
  for (const b of batches) n += Buffer.byteLength(JSON.stringify(b));
  sink ^= n;
}

const bench = new Bench({ time: Number(args.time), warmupTime: 500 });
const eventsPerIteration = perBatch * nBatches;
bench.add('flatbuffers: verify + zero-copy visit', visitFlat).add('json: JSON.parse + visit', visitJson)
  .add('flatbuffers: encode (EventBatchEncoder)', encodeFlat).add('json: JSON.stringify', encodeJson);
await bench.run();

const rate = (name: string) => {
  const t = bench.tasks.find((x) => x.name.startsWith(name))!;
  const r = t.result as { latency?: { mean: number }; period?: number } | undefined;
  const meanMs = r?.latency?.mean ?? r?.period ?? NaN;
  return Math.round((eventsPerIteration / meanMs) * 1000);
};
const flatRate = rate('flatbuffers: verify');
const jsonRate = rate('json: JSON.parse');
const encodeRate = rate('flatbuffers: encode');
const jsonEncodeRate = rate('json: JSON.stringify');
if (args.reporter === 'pretty') {
  console.table(bench.table());
  console.log(`FlatBuffers ${(flatRate / 1e6).toFixed(2)} M events/s, JSON ${(jsonRate / 1e6).toFixed(2)} M events/s, ratio ${(flatRate / jsonRate).toFixed(2)}x`);
  console.log(`encoding: FlatBuffers ${(encodeRate / 1e6).toFixed(2)} M events/s, JSON.stringify ${(jsonEncodeRate / 1e6).toFixed(2)} M events/s`);
  console.log(`avg message ${(slab.length / nBatches / perBatch).toFixed(1)} B/event FlatBuffers, ${(jsonTexts.reduce((n, t) => n + t.length, 0) / nBatches / perBatch).toFixed(1)} B/event JSON (sink ${sink & 1})`);
}
console.log(JSON.stringify({
  bench: 'codec', flatbuffersEventsPerSec: flatRate, jsonEventsPerSec: jsonRate, ratio: Math.round((flatRate / jsonRate) * 100) / 100,
  encodeEventsPerSec: encodeRate, jsonEncodeEventsPerSec: jsonEncodeRate,
  eventsPerBatch: perBatch, node: process.version, cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length,
}));
