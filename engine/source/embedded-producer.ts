import { EventBatchEncoder, hashString, type EventRecord } from '../codec/index.js';
import { EventGenerator, type GeneratorConfig } from './generator.js';
import type { OffsetMap, RawMessage } from './types.js';

/** The partition of a user's events: stable hash of the key (userId, or deviceId for ownerless IoT). */
export function partitionOf(key: string, partitions: number): number {
  return hashString(key) % partitions;
}

export function keyOf(e: EventRecord): string {
  return e.userId || (e.source === 'IOT' ? e.deviceId : '');
}

export interface EmbeddedProducerOptions {
  generator?: Partial<GeneratorConfig>;
  partitions: number;
  /** Events per Kafka-like message (an EventBatch). */
  eventsPerMessage: number;
  /** A partition's pending batch is also sent when its oldest event is this old in event time. */
  maxBatchEventTimeMs: number;
}

/**
 * The embedded source's messages: the deterministic event model, batched per partition into
 * FlatBuffers EventBatches keyed by user, with per-partition offsets, exactly as loadgen writes
 * to Kafka. Batching depends only on the events (counts and event time), never on timing, so a
 * restarted engine regenerates the same messages with the same offsets and skips those its
 * state counted (`resumeAfter`).
 */
export class EmbeddedProducer {
  readonly generator: EventGenerator;
  /**
   * Each partition's pending batch, encoded as its events are generated: the event objects die
   * young (queued until their batch is full they survived scavenges and filled the old generation).
   */
  private readonly pending: EventBatchEncoder[];
  private readonly firstTs: number[];
  private readonly nextOffset: number[];
  produced = 0;

  constructor(private readonly opts: EmbeddedProducerOptions, private readonly resumeAfter: OffsetMap) {
    this.generator = new EventGenerator(opts.generator);
    this.pending = Array.from({ length: opts.partitions }, () => new EventBatchEncoder());
    this.firstTs = new Array(opts.partitions).fill(0);
    this.nextOffset = new Array(opts.partitions).fill(0);
  }

  /** Generates `n` events; the messages they completed are appended to `out`. */
  produce(n: number, out: RawMessage[]): void {
    const { partitions, eventsPerMessage, maxBatchEventTimeMs } = this.opts;
    for (let i = 0; i < n; i++) {
      const e = this.generator.next();
      this.produced++;
      const p = partitionOf(keyOf(e), partitions);
      const q = this.pending[p];
      if (q.size === 0) this.firstTs[p] = e.timestamp;
      q.add(e);
      if (q.size >= eventsPerMessage || e.timestamp - this.firstTs[p] >= maxBatchEventTimeMs) this.emit(p, out);
    }
  }

  /** The partly filled batches (end of a bounded run). */
  flush(out: RawMessage[]): void {
    for (let p = 0; p < this.pending.length; p++) if (this.pending[p].size) this.emit(p, out);
  }

  private emit(p: number, out: RawMessage[]): void {
    const value = this.pending[p].finish();
    const offset = this.nextOffset[p]++;
    const done = this.resumeAfter[p]?.['0'];
    if (done !== undefined && offset <= done) return; // state already counted it
    out.push({ topic: 0, partition: p, offset, value });
  }
}
