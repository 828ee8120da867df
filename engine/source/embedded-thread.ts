/**
 * The embedded source's generator thread: generates and encodes the event model at the configured
 * rate and posts the finished messages (their bytes transferred, not copied) to the main thread.
 * Like librdkafka's threads for the Kafka source, it keeps input work off the event loop that
 * dispatches and serves the dashboard (on the main thread the generator's allocation alone set
 * the pace of its scavenges).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { EmbeddedProducer } from './embedded-producer.js';
import { lowerThreadPriority } from '../workers/thread-priority.js';
import type { EmbeddedThreadData, ToGenerator } from './embedded.js';
import type { RawMessage } from './types.js';

/** Events generated per turn: unthrottled, and at a fixed rate (about 2 ms of generation and encoding). */
const MAX_SLICE_UNTHROTTLED = 20_000;
const MAX_SLICE_AT_RATE = 250;

const data = workerData as EmbeddedThreadData;
const port = parentPort!;
lowerThreadPriority(data.options.threadNice);
const producer = new EmbeddedProducer(data.options, data.resumeAfter);
const { rate, totalEvents } = data.options;
const startWall = performance.now();
let paused = false;
let timer: NodeJS.Immediate | NodeJS.Timeout | null = null;

port.on('message', (m: ToGenerator) => {
  if (m.type === 'pause') paused = true;
  else if (paused) {
    paused = false;
    if (!timer) schedule(0);
  }
});

function schedule(delayMs: number): void {
  timer = delayMs > 0 ? setTimeout(tick, delayMs) : setImmediate(tick);
}

function post(messages: RawMessage[], end: boolean): void {
  port.postMessage({ type: end ? 'end' : 'messages', messages, produced: producer.produced }, messages.map((m) => m.value.buffer as ArrayBuffer));
}

function tick(): void {
  timer = null;
  if (paused) return;
  const elapsed = (performance.now() - startWall) / 1000;
  // At a fixed rate: catch up in slices, not in one block of everything it fell behind by.
  let budget = Number.isFinite(rate) ? Math.floor(rate * elapsed) - producer.produced : MAX_SLICE_UNTHROTTLED;
  budget = Math.min(budget, Number.isFinite(rate) ? MAX_SLICE_AT_RATE : MAX_SLICE_UNTHROTTLED);
  if (totalEvents !== undefined) budget = Math.min(budget, totalEvents - producer.produced);
  const out: RawMessage[] = [];
  if (budget > 0) producer.produce(budget, out);
  if (totalEvents !== undefined && producer.produced >= totalEvents) {
    producer.flush(out);
    post(out, true);
    port.close();
    return;
  }
  if (out.length) post(out, false);
  schedule(budget > 0 ? 0 : Math.max(1, Math.ceil(1000 / rate)));
}

schedule(0);
