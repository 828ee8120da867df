import v8 from 'node:v8';
import { CodecError, DEFAULT_LIMITS, EventBatchEncoder, EventBatchReader, decodeJsonEvent, hasEventBatchIdentifier, looksLikeJson, TOPIC_SOURCES, type Source } from '../codec/index.js';
import type { EngineConfig } from '../config.js';
import { ShardStore, type PartitionCounters, type PartitionMeta, type StoreKey } from '../state/shard-store.js';
import { PartitionRuntime, type BatchSinks, type ProfileSource } from './partition-runtime.js';
import { IDX_LENGTH, IDX_OFFSET, IDX_PARTITION, IDX_START, IDX_TOPIC, INDEX_STRIDE, TOPIC_CODES, emptyCounters, type BatchTask, type CommitInfo, type DeadLetter, type ShardResult } from './protocol.js';
import { ScratchEvent, decodeInto } from './scratch.js';
import { ChangelogBatchBuilder, decodeKey, decodeValue, encodeKey, metaFingerprint } from '../state/changelog-codec.js';
import type { Vocabulary } from './symbols.js';
import { projectCommit } from '../state/live-projection.js';
import { EngineError } from '../errors.js';

const encoder = new TextEncoder();

/**
 * A shard: a set of partitions processed by one worker thread, one batch at a time, with one
 * LMDB environment. State changes collect in the pipelines (the write-back cache) and reach LMDB
 * at commit: every commit interval, when the cache is full, or when the dispatcher asks. A commit
 * is one transaction holding every changed aggregate and each partition's offsets and stream time.
 */
export class ShardRuntime {
  readonly partitions = new Map<number, PartitionRuntime>();
  private readonly store: ShardStore;
  private readonly reader = new EventBatchReader();
  private readonly jsonEncoder = new EventBatchEncoder(4096);
  private readonly scratch = new ScratchEvent();
  private lastCommit = Date.now();
  /** Per partition: the stream time at which retention last ran. */
  private readonly retainedAt = new Map<number, number>();
  private readonly sinks: BatchSinks = { outputs: [], alerts: [], late: {}, unknownUsers: { n: 0 }, unknownCurrencies: { n: 0 } };
  /** Changelog mode: per partition, the fingerprint of the meta last sent (an idle partition sends nothing). */
  private readonly sentMeta = new Map<number, string>();
  private readonly profiles: ProfileSource;

  constructor(
    readonly shard: number,
    readonly gen: number,
    partitionIds: number[],
    readonly config: EngineConfig,
    private readonly vocab: Vocabulary,
    profiles: ProfileSource,
  ) {
    this.profiles = profiles;
    this.store = ShardStore.open(config.dataDir, shard, config.mapSizeBytes, false, config.storeWritemap, config.storePageSize);
    this.scratch.readSeq = config.auditSequences;
    this.load(partitionIds);
  }

  /** Builds the in-memory state of these partitions from the store (at open, or when assigned). */
  load(partitionIds: number[]): void {
    for (const p of partitionIds) {
      this.partitions.get(p)?.dispose(); // loaded again (a retried assignment): the new state replaces it
      const rt = new PartitionRuntime(p, this.config, this.vocab, this.profiles, this.sinks, (key) => this.store.state.get(key));
      const meta = this.store.readMeta(p);
      rt.restore(meta, (name, range) => this.store.scan(p, name, range));
      this.partitions.set(p, rt);
      this.sentMeta.set(p, metaFingerprint(meta));
    }
  }

  /**
   * Drops the in-memory state of partitions given up in a rebalance (after their last commit):
   * nothing of them is applied afterwards, and they are rebuilt from the store when they return.
   */
  release(partitionIds: number[]): void {
    for (const p of partitionIds) {
      // Its pipelines give up what they hold in the thread's shared per-user records.
      this.partitions.get(p)?.dispose();
      this.partitions.delete(p);
      this.retainedAt.delete(p);
      this.sentMeta.delete(p);
    }
  }

  /** The committed meta of each partition in the local store (restore decides on it). */
  readMetas(partitionIds: number[]): Record<number, PartitionMeta | null> {
    const out: Record<number, PartitionMeta | null> = {};
    for (const p of partitionIds) out[p] = this.store.readMeta(p) ?? null;
    return out;
  }

  /** Applies a chunk of changelog records to a partition that is not loaded (restore). */
  applyRestore(partition: number, keys: string[], values: Array<Uint8Array | null>, reset: boolean): void {
    if (this.partitions.has(partition)) throw new Error(`partition ${partition} is loaded in shard ${this.shard}: a restore must come before it is loaded`);
    const records: Array<[StoreKey, unknown]> = keys.map((k, i) => [decodeKey(k), values[i] ? decodeValue(values[i]!) : undefined]);
    this.store.applyRestore(partition, records, reset);
  }

  restoredOffsets(): Record<number, Record<string, number>> {
    const out: Record<number, Record<string, number>> = {};
    for (const [p, rt] of this.partitions) out[p] = { ...rt.offsets };
    return out;
  }

  restoredCounters(): Record<number, PartitionCounters> {
    const out: Record<number, PartitionCounters> = {};
    for (const [p, rt] of this.partitions) out[p] = rt.meta().counters!;
    return out;
  }

  processBatch(task: BatchTask): ShardResult {
    const t0 = performance.now();
    const counters = emptyCounters();
    const deadLetters: DeadLetter[] = [];
    const sinks = this.sinks;
    sinks.outputs = [];
    sinks.alerts = [];
    sinks.late = {};
    sinks.unknownUsers.n = 0;
    sinks.unknownCurrencies.n = 0;
    const bytes = new Uint8Array(task.slab);
    const index = task.index;
    const reader = this.reader;
    const e = this.scratch;
    const maxTs = Date.now() + this.config.maxFutureMs;
    for (let m = 0; m < index.length; m += INDEX_STRIDE) {
      const partition = index[m + IDX_PARTITION];
      const topic = index[m + IDX_TOPIC];
      const offset = index[m + IDX_OFFSET];
      const start = index[m + IDX_START];
      const length = index[m + IDX_LENGTH];
      const rt = this.partitions.get(partition);
      if (!rt) {
        // Scaled out, a partition given up in a rebalance is not applied any more (a slab replayed
        // after a failure may still hold its messages); otherwise every partition is loaded.
        if (this.config.changelog) {
          counters.skippedMessages++;
          continue;
        }
        throw new Error(`partition ${partition} is not owned by shard ${this.shard}`);
      }
      const applied = rt.offsets[topic];
      if (applied !== undefined && offset <= applied) {
        counters.skippedMessages++; // already counted by a committed (or this run's) transaction
        continue;
      }
      counters.messages++;
      const dead = (eventIndex: number, code: string, reason: string, payload: Uint8Array) => {
        deadLetters.push({ partition, topic, offset, eventIndex, code, reason, bytes: payload });
        rt.counters.deadLetters++;
      };
      let ok = true;
      try {
        if (length > DEFAULT_LIMITS.maxMessageBytes) {
          throw new CodecError('ERR_CODEC_TOO_LARGE', `message of ${length} bytes exceeds the ${DEFAULT_LIMITS.maxMessageBytes}-byte limit`);
        } else if (hasEventBatchIdentifier(bytes, start, length)) {
          reader.reset(bytes, start, length);
        } else if (looksLikeJson(bytes, start, length)) {
          const hint = TOPIC_SOURCES[TOPIC_CODES[topic] ?? ''] as Source | undefined;
          const rec = decodeJsonEvent(bytes.subarray(start, start + length), hint);
          const fb = this.jsonEncoder.add(rec).finish();
          reader.reset(fb, 0, fb.length);
        } else {
          throw new CodecError('ERR_CODEC_UNKNOWN_FORMAT', length === 0 ? 'empty message' : 'message is neither a FlatBuffers EventBatch (identifier "RTA1") nor a JSON object');
        }
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
        dead(-1, err.code, err.message, bytes.slice(start, start + length));
        ok = false;
      }
      if (ok) {
        for (let i = 0, n = reader.count; i < n; i++) {
          const kind = reader.select(i);
          if (kind === 0) {
            dead(i, 'ERR_EVENT_NO_BODY', 'event has no body', encoder.encode('{}'));
            continue;
          }
          const reason = decodeInto(reader, this.vocab, e, kind);
          if (reason !== null || e.ts > maxTs) {
            dead(i, 'ERR_EVENT_INVALID', reason ?? `timestamp ${e.ts} is more than ${this.config.maxFutureMs} ms in the future`, encoder.encode(JSON.stringify(reader.toRecord())));
            continue;
          }
          counters.events++;
          counters.eventsBySource[kind]++;
          rt.counters.events++;
          rt.onEvent(e);
        }
        rt.advance();
      }
      rt.offsets[topic] = offset;
    }
    counters.deadLetters = deadLetters.length;
    counters.late = sinks.late;
    counters.unknownUsers = sinks.unknownUsers.n;
    counters.unknownCurrencies = sinks.unknownCurrencies.n;
    const result: ShardResult = {
      shard: this.shard, gen: this.gen, seq: task.seq, counters, deadLetters, outputs: sinks.outputs, alerts: sinks.alerts,
      changed: [],
      processingMs: 0,
    };
    for (const rt of this.partitions.values()) rt.takeChanged(result.changed);
    if (task.commit || this.shouldCommit()) {
      result.committed = this.commit(task.seq);
      // Under `node --expose-gc` (measurement runs: bench:engine --live-heap) the figure is the
      // live heap, after a full collection; otherwise it includes whatever garbage is waiting.
      if (typeof globalThis.gc === 'function') globalThis.gc();
      result.heapUsedBytes = v8.getHeapStatistics().used_heap_size;
    }
    result.processingMs = performance.now() - t0;
    return result;
  }

  shouldCommit(): boolean {
    if (Date.now() - this.lastCommit >= this.config.commitIntervalMs) return true;
    let dirty = 0;
    for (const rt of this.partitions.values()) dirty += rt.dirtyCount;
    return dirty >= this.config.cacheMaxDirty;
  }

  /**
   * One durable LMDB transaction: every changed aggregate plus each partition's offsets and stream
   * time. `extra`: writes from the main thread (scaled out: alert statuses, global alerts and their
   * progress), absolute keys of partitions this shard has loaded, committed (and sent to the
   * changelog) with the rest.
   */
  commit(seq: number, extra: Array<[StoreKey, unknown]> = []): CommitInfo {
    const t0 = performance.now();
    this.checkLoaded(extra);
    const metas = new Map<number, PartitionMeta>();
    for (const [p, rt] of this.partitions) metas.set(p, rt.meta());
    const collect = (write: (key: StoreKey, value: unknown) => void) => {
      for (const [k, v] of extra) write(k, v);
      for (const rt of this.partitions.values()) rt.collectWrites(write);
    };
    // Scaled out, the commit's writes also go to the changelog: kept in an array. Otherwise they
    // go straight into the transaction (see ShardStore.commitEach).
    let writes: Array<[StoreKey, unknown]> | undefined;
    let count: number;
    if (this.config.changelog) {
      const list: Array<[StoreKey, unknown]> = (writes = []);
      collect((k, v) => list.push([k, v]));
      this.store.commit(list, metas);
      count = list.length;
    } else {
      count = this.store.commitEach(collect, metas);
    }
    for (const rt of this.partitions.values()) rt.committed();
    this.lastCommit = Date.now();
    const deleted: StoreKey[] | undefined = this.config.changelog ? [] : undefined;
    this.applyRetention(deleted);
    const changelog = writes ? this.changelogOf(writes, deleted!, metas) : undefined;
    const offsets: Record<number, Record<string, number>> = {};
    const streamTimes: Record<number, number> = {};
    const counters: Record<number, PartitionCounters> = {};
    for (const [p, m] of metas) {
      offsets[p] = m.offsets;
      streamTimes[p] = m.streamTime;
      counters[p] = m.counters!;
    }
    return { seq, offsets, streamTimes, counters, durationMs: performance.now() - t0, writes: count, changelog };
  }

  /**
   * The changelog records of a commit: per partition its changed keys (retention deletes as
   * tombstones) followed by its meta. A partition with no change and the same meta sends nothing.
   */
  private changelogOf(writes: Array<[StoreKey, unknown]>, deleted: StoreKey[], metas: Map<number, PartitionMeta>) {
    const byPartition = new Map<number, Array<[StoreKey, unknown]>>();
    const add = (k: StoreKey, v: unknown) => {
      const p = k[0] as number;
      let list = byPartition.get(p);
      if (!list) byPartition.set(p, (list = []));
      list.push([k, v]);
    };
    for (const [k, v] of writes) add(k, v);
    for (const k of deleted) add(k, undefined);
    const b = new ChangelogBatchBuilder();
    const live = new ChangelogBatchBuilder();
    for (const [p, meta] of metas) {
      const list = byPartition.get(p);
      const fp = metaFingerprint(meta);
      if (!list && this.sentMeta.get(p) === fp) continue;
      if (list) for (const [k, v] of list) b.add(p, encodeKey(k.slice(1)), v);
      b.addMeta(p, meta);
      projectCommit(live, p, list ?? [], meta, (ws) => this.performanceMinute(p, ws));
      this.sentMeta.set(p, fp);
    }
    return b.empty ? undefined : { ...b.build(), live: live.build() };
  }

  /** Main-thread writes may only touch partitions loaded here (checked before anything is written). */
  checkLoaded(writes: Array<[StoreKey, unknown]>): void {
    for (const [k] of writes) {
      if (!this.partitions.has(k[0] as number)) throw new EngineError('ERR_PARTITION_NOT_OWNED', `partition ${k[0]} is not loaded in shard ${this.shard} (it moved to another instance); retry on its owner`, true);
    }
  }

  /** The committed load-time histograms of a partition's minute (every platform and page). */
  private *performanceMinute(partition: number, windowStart: number): Generator<string> {
    for (const { value } of this.store.state.getRange({ start: [partition, 'performance', windowStart], end: [partition, 'performance', windowStart + 1] })) yield value as string;
  }

  /**
   * Deletes windows, closed sessions, funnel hours and alerts older than the retention period of event
   * time; runs for a partition whenever its stream time has moved a minute since the last run.
   */
  private applyRetention(deleted?: StoreKey[]): void {
    for (const [p, rt] of this.partitions) {
      if (rt.streamTime <= 0) continue;
      const last = this.retainedAt.get(p) ?? 0;
      if (rt.streamTime - last < 60_000) continue;
      this.retainedAt.set(p, rt.streamTime);
      const cutoff = rt.streamTime - this.config.retentionMs;
      if (cutoff <= 0) continue;
      for (const name of rt.windowedPipelineNames()) this.store.deleteWindowsBefore(p, name, cutoff, deleted);
      this.store.deleteSessionsBefore(p, cutoff, deleted);
      this.store.deleteAlertsBefore(p, cutoff, deleted);
    }
  }

  async close(): Promise<void> {
    for (const rt of this.partitions.values()) rt.dispose();
    await this.store.close();
  }
}
