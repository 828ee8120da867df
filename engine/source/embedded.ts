import { EventBatchEncoder, hashString, type EventRecord } from '../codec/index.js';
import { EventGenerator, type GeneratorConfig } from './generator.js';
import type { EventSource, OffsetMap, RawMessage, SourceHandler } from './types.js';
import type { ReferenceStore } from '../state/reference-store.js';

export interface EmbeddedSourceOptions {
  generator?: Partial<GeneratorConfig>;
  partitions: number;
  /** Events per second of wall time (Infinity: as fast as the engine takes them). */
  rate: number;
  /** Stop after this many events (bounded run), or run forever. */
  totalEvents?: number;
  /** Events per Kafka-like message (an EventBatch). */
  eventsPerMessage: number;
  /** A partition's pending batch is also sent when its oldest event is this old in event time. */
  maxBatchEventTimeMs: number;
}

/** Events generated per event-loop turn: unthrottled (bench:engine), and at a fixed rate (about 2 ms of generation and encoding). */
const MAX_SLICE_UNTHROTTLED = 20_000;
const MAX_SLICE_AT_RATE = 250;

/** The partition of a user's events: stable hash of the key (userId, or deviceId for ownerless IoT). */
export function partitionOf(key: string, partitions: number): number {
  return hashString(key) % partitions;
}

export function keyOf(e: EventRecord): string {
  return e.userId || (e.source === 'IOT' ? e.deviceId : '');
}

/**
 * The default source: the deterministic event model, batched per partition into FlatBuffers
 * EventBatches keyed by user, with per-partition offsets, exactly as loadgen writes to Kafka.
 * Batching depends only on the events (counts and event time), never on timing, so a restarted
 * engine regenerates the same messages with the same offsets and skips what its state counted.
 */
export class EmbeddedSource implements EventSource {
  readonly name = 'embedded';
  readonly generator: EventGenerator;
  private readonly opts: EmbeddedSourceOptions;
  /**
   * Each partition's pending batch, encoded as its events are generated: the event objects die
   * young (queued until their batch is full they survived scavenges and filled the old generation,
   * and the main thread paid for it in mark-compact pauses).
   */
  private readonly pending: EventBatchEncoder[];
  private readonly firstTs: number[];
  private readonly nextOffset: number[];
  private handler: SourceHandler | null = null;
  private resumeAfter: OffsetMap = {};
  private paused = false;
  private stopped = false;
  private produced = 0;
  private startWall = 0;
  private timer: NodeJS.Immediate | NodeJS.Timeout | null = null;
  committed: OffsetMap = {};
  private ended = false;

  constructor(opts: Partial<EmbeddedSourceOptions> & { partitions: number }) {
    this.opts = { rate: 20_000, eventsPerMessage: 500, maxBatchEventTimeMs: 1000, ...opts };
    this.generator = new EventGenerator(this.opts.generator);
    this.pending = Array.from({ length: this.opts.partitions }, () => new EventBatchEncoder());
    this.firstTs = new Array(this.opts.partitions).fill(0);
    this.nextOffset = new Array(this.opts.partitions).fill(0);
  }

  /** Writes the reference tables (profiles and catalog) before any event flows. */
  async bootstrap(reference: ReferenceStore): Promise<{ profiles: number; products: number }> {
    const profiles = await reference.putProfiles(this.generator.profiles());
    const products = await reference.putProducts(this.generator.catalog());
    return { profiles, products };
  }

  get eventsProduced(): number {
    return this.produced;
  }

  async start(handler: SourceHandler, resumeAfter: OffsetMap): Promise<void> {
    this.handler = handler;
    this.resumeAfter = resumeAfter;
    this.startWall = performance.now();
    this.schedule(0);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (!this.timer && !this.stopped && !this.ended) this.schedule(0);
  }

  commit(offsets: OffsetMap): void {
    for (const [p, byTopic] of Object.entries(offsets)) this.committed[Number(p)] = { ...this.committed[Number(p)], ...byTopic };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer as NodeJS.Timeout);
    this.timer = null;
  }

  private schedule(delayMs: number): void {
    this.timer = delayMs > 0 ? setTimeout(() => this.tick(), delayMs) : setImmediate(() => this.tick());
  }

  private tick(): void {
    this.timer = null;
    if (this.stopped || this.paused || !this.handler) return;
    const { rate, totalEvents } = this.opts;
    const elapsed = (performance.now() - this.startWall) / 1000;
    // At a fixed rate the source shares the event loop with dispatch and the dashboard server: it
    // catches up in slices of about 2 ms of generation (setImmediate between them lets I/O run), not in
    // one block of everything it fell behind by. Unthrottled runs take big slices (less overhead).
    let budget = Number.isFinite(rate) ? Math.floor(rate * elapsed) - this.produced : MAX_SLICE_UNTHROTTLED;
    budget = Math.min(budget, Number.isFinite(rate) ? MAX_SLICE_AT_RATE : MAX_SLICE_UNTHROTTLED);
    if (totalEvents !== undefined) budget = Math.min(budget, totalEvents - this.produced);
    if (budget <= 0 && totalEvents !== undefined && this.produced >= totalEvents) {
      this.finish();
      return;
    }
    if (budget <= 0) {
      this.schedule(Math.max(1, Math.ceil(1000 / rate)));
      return;
    }
    const out: RawMessage[] = [];
    for (let i = 0; i < budget; i++) {
      const e = this.generator.next();
      this.produced++;
      const p = partitionOf(keyOf(e), this.opts.partitions);
      const q = this.pending[p];
      if (q.size === 0) this.firstTs[p] = e.timestamp;
      q.add(e);
      if (q.size >= this.opts.eventsPerMessage || e.timestamp - this.firstTs[p] >= this.opts.maxBatchEventTimeMs) this.emit(p, out);
    }
    if (out.length) this.handler.onMessages(out);
    if (totalEvents !== undefined && this.produced >= totalEvents) {
      this.finish();
      return;
    }
    this.schedule(0);
  }

  private emit(p: number, out: RawMessage[]): void {
    const value = this.pending[p].finish();
    const offset = this.nextOffset[p]++;
    const done = this.resumeAfter[p]?.['0'];
    if (done !== undefined && offset <= done) return; // state already counted it
    out.push({ topic: 0, partition: p, offset, value });
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    const out: RawMessage[] = [];
    for (let p = 0; p < this.pending.length; p++) if (this.pending[p].size) this.emit(p, out);
    if (out.length) this.handler!.onMessages(out);
    this.handler!.onEnd();
  }
}
