import { Worker } from 'node:worker_threads';
import { builtFile } from '../built-file.js';
import { EventGenerator } from './generator.js';
import type { EmbeddedProducerOptions } from './embedded-producer.js';
import type { EventSource, OffsetMap, RawMessage, SourceHandler } from './types.js';
import type { ReferenceStore } from '../state/reference-store.js';

export { partitionOf, keyOf } from './embedded-producer.js';

export interface EmbeddedSourceOptions extends EmbeddedProducerOptions {
  /** Events per second of wall time (Infinity: as fast as the engine takes them). */
  rate: number;
  /** Stop after this many events (bounded run), or run forever. */
  totalEvents?: number;
  /** Niceness of the generator thread (Linux), like the shard workers': the main thread preempts it. */
  threadNice: number;
}

/** What the generator thread starts with (engine/source/embedded-thread.ts). */
export interface EmbeddedThreadData {
  options: EmbeddedSourceOptions;
  resumeAfter: OffsetMap;
}

export type ToGenerator = { type: 'pause' } | { type: 'resume' };
type FromGenerator = { type: 'messages' | 'end'; messages: RawMessage[]; produced: number };

/**
 * The default source: the deterministic event model (engine/source/embedded-producer.ts), batched
 * per partition into FlatBuffers EventBatches keyed by user, exactly as loadgen writes to Kafka.
 * The events are generated and encoded on a thread of their own, as the Kafka source fetches on
 * librdkafka's: the main thread only receives finished messages. Backpressure: while paused,
 * messages already on their way are held here and handed over on resume, none is lost or reordered.
 */
export class EmbeddedSource implements EventSource {
  readonly name = 'embedded';
  private readonly opts: EmbeddedSourceOptions;
  private handler: SourceHandler | null = null;
  private worker: Worker | null = null;
  private readonly held: RawMessage[][] = [];
  private paused = false;
  private stopped = false;
  /** The thread sent its last message (bounded run); onEnd follows once every message is handed over. */
  private ended = false;
  private endDelivered = false;
  private produced = 0;
  committed: OffsetMap = {};

  constructor(opts: Partial<EmbeddedSourceOptions> & { partitions: number }) {
    this.opts = { rate: 20_000, eventsPerMessage: 500, maxBatchEventTimeMs: 1000, threadNice: 10, ...opts };
  }

  /** Writes the reference tables (profiles and catalog) before any event flows. */
  async bootstrap(reference: ReferenceStore): Promise<{ profiles: number; products: number }> {
    const generator = new EventGenerator(this.opts.generator);
    const profiles = await reference.putProfiles(generator.profiles());
    const products = await reference.putProducts(generator.catalog());
    return { profiles, products };
  }

  /** Events the generator thread has produced so far (as last reported). */
  get eventsProduced(): number {
    return this.produced;
  }

  async start(handler: SourceHandler, resumeAfter: OffsetMap): Promise<void> {
    this.handler = handler;
    const data: EmbeddedThreadData = { options: this.opts, resumeAfter };
    const w = new Worker(builtFile(import.meta.url, 'engine', 'source', 'embedded-thread.js'), { workerData: data });
    this.worker = w;
    w.on('message', (m: FromGenerator) => {
      this.produced = m.produced;
      if (m.messages.length) this.held.push(m.messages);
      if (m.type === 'end') this.ended = true;
      this.deliver();
    });
    w.on('error', (e) => {
      if (!this.stopped) handler.onError(new Error(`the embedded source's generator thread failed: ${e.message}`, { cause: e }));
    });
    w.on('exit', (code) => {
      if (!this.stopped && !this.ended) handler.onError(new Error(`the embedded source's generator thread exited (code ${code}) before its last event`));
    });
    if (this.paused) w.postMessage({ type: 'pause' } satisfies ToGenerator);
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.worker?.postMessage({ type: 'pause' } satisfies ToGenerator);
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.deliver();
    if (!this.paused && !this.ended) this.worker?.postMessage({ type: 'resume' } satisfies ToGenerator);
  }

  commit(offsets: OffsetMap): void {
    for (const [p, byTopic] of Object.entries(offsets)) this.committed[Number(p)] = { ...this.committed[Number(p)], ...byTopic };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  /** Hands over held messages in order until paused (onMessages may pause the source itself). */
  private deliver(): void {
    const h = this.handler;
    if (!h || this.stopped) return;
    while (!this.paused && this.held.length) h.onMessages(this.held.shift()!);
    if (this.ended && !this.endDelivered && this.held.length === 0 && !this.paused) {
      this.endDelivered = true;
      h.onEnd();
    }
  }
}
