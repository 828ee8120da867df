import type { EngineConfig } from '../config.js';
import type { Alert } from '../codec/types.js';
import type { ScratchEvent } from '../workers/scratch.js';
import type { Vocabulary } from '../workers/symbols.js';
import { KeyedWindows, type WindowCodec, type WindowEntry } from './keyed-windows.js';
import type { KeyRange } from '../state/shard-store.js';

/** A user's reference data after the LEFT join: unknown users get UNKNOWN and `known` false. */
export interface Profile {
  known: boolean;
  tier: number;
  segment: number;
  country: number;
  region: number;
}

/** Output records: final values of closed windows, closed sessions, alerts. Keys are deterministic. */
export interface OutputRecord {
  topic: 'dashboard-metrics' | 'user-session-analytics' | 'dashboard-alerts';
  key: string;
  value: Record<string, unknown>;
}

export interface PipelineContext {
  readonly partition: number;
  readonly config: EngineConfig;
  readonly vocab: Vocabulary;
  profile(user: number): Profile;
  /** USD value of one unit of a currency symbol (1 for unknown currencies, counted). */
  fx(currency: number): number;
  output(record: OutputRecord): void;
  alert(alert: Alert): void;
  late(pipeline: string): void;
  /** Reads this partition's committed state (key relative to [partition, pipeline]); cold paths only. */
  read(pipeline: string, key: StateKey): unknown;
}

export type StateKey = (string | number)[];

/**
 * What an analytics pipeline is: it sees each event (with its partition's stream time), is told
 * when stream time advances, and hands its changed state to the runtime at commit. The runtime
 * (workers/partition-runtime.ts) batches, stores and commits; pipelines only aggregate.
 */
export interface Pipeline {
  readonly name: string;
  onEvent(e: ScratchEvent, streamTime: number): void;
  onStreamTime(streamTime: number): void;
  /** Writes changed state; `undefined` removes the key. Keys are relative to [partition, name]. */
  collectWrites(write: (key: StateKey, value: unknown) => void): void;
  committed(): void;
  /** Restores one stored entry of this pipeline at startup (key relative to [partition, name]). */
  restore(key: StateKey, value: unknown, streamTime: number): void;
  /** True when the pipeline reads its state from the store when first needed (ctx.read), not scanned at startup. */
  readonly restoresLazily?: boolean;
  /**
   * The key ranges (relative to [partition, name]) that hold what `restore` keeps at this stream
   * time; omitted: every key is scanned. An open then reads the live state, not every closed
   * window or session kept for retention (24 h of them when a million users pass through).
   */
  restoreRanges?(streamTime: number): KeyRange[];
  /** Called once the open has restored the partition, with its committed stream time (optional). */
  opened?(streamTime: number): void;
  readonly dirtyCount: number;
  /** Releases thread-shared resources when the partition's runtime is closed (optional). */
  dispose?(): void;
  /** Windows changed since the last call (for dashboard deltas); the set is cleared by the caller. */
  readonly changed: Set<number>;
}

/** A pipeline over one KeyedWindows store: declares its window, key and aggregate. */
export abstract class WindowedPipeline<V> implements Pipeline {
  readonly store: KeyedWindows<V>;

  constructor(
    readonly name: string,
    protected readonly ctx: PipelineContext,
    sizeMs: number,
    codec: WindowCodec<V>,
    graceMs = ctx.config.graceMs,
  ) {
    this.store = new KeyedWindows(name, sizeMs, graceMs, codec);
    this.store.onLate = () => ctx.late(name);
  }

  get changed(): Set<number> {
    return this.store.changed;
  }

  abstract onEvent(e: ScratchEvent, streamTime: number): void;

  /** Final value of a closed window (for output topics and global evaluation). */
  protected onClose(_windowStart: number, _entries: Map<number, WindowEntry<V>>): void {}

  onStreamTime(streamTime: number): void {
    this.store.closeUpTo(streamTime, (ws, entries) => this.onClose(ws, entries));
  }

  /**
   * For values that hold an exact member set: its log, and how a chunk of it is stored (the fresh
   * members, the whole set). The entries' member chunks are written with their values.
   */
  protected readonly members?: { log(v: V): MemberLog; delta(v: V, fresh: number[]): unknown; full(v: V): unknown };

  collectWrites(write: (key: StateKey, value: unknown) => void): void {
    const codec = this.store.codec;
    const m = this.members;
    for (const e of this.store.takeDirty()) {
      const key = codec.keyToString(e.key);
      write([e.windowStart, key], codec.encode(e.value));
      if (m) m.log(e.value).write(write, e.windowStart, key, (fresh) => m.delta(e.value, fresh), () => m.full(e.value));
    }
  }

  committed(): void {
    const m = this.members;
    if (m) for (const e of this.store.takeDirty()) m.log(e.value).committed();
    this.store.committed();
  }

  restore(key: StateKey, value: unknown, streamTime: number): void {
    const [ws, k] = key as [number, string];
    if (!this.store.isLate(ws, streamTime)) this.store.restore(ws, k, value);
  }

  /** Keys start with the window start: windows that are still open start after stream time - size - grace. */
  restoreRanges(streamTime: number): KeyRange[] {
    return [{ start: [streamTime - this.store.sizeMs - this.store.graceMs] }];
  }

  get dirtyCount(): number {
    return this.store.dirtyCount;
  }
}

/** Codec for windows with a single (global, per partition) key. */
export function singleKeyCodec<V>(create: () => V, encode: (v: V) => unknown = (v) => v, decode: (x: unknown) => V = (x) => x as V): WindowCodec<V> {
  return { create, keyToString: () => '', keyFromString: () => 0, encode, decode };
}

/** Codec for windows keyed by a symbol of the vocabulary. */
export function symbolKeyCodec<V>(ctx: PipelineContext, create: () => V, encode: (v: V) => unknown = (v) => v, decode: (x: unknown) => V = (x) => x as V): WindowCodec<V> {
  return { create, keyToString: (k) => ctx.vocab.sym(k), keyFromString: (s) => ctx.vocab.symOf(s), encode, decode };
}

/** Codec for windows keyed by user. */
export function userKeyCodec<V>(ctx: PipelineContext, create: () => V, encode: (v: V) => unknown = (v) => v, decode: (x: unknown) => V = (x) => x as V): WindowCodec<V> {
  return { create, keyToString: (k) => ctx.vocab.users.value(k), keyFromString: (s) => ctx.vocab.users.internString(s), encode, decode };
}

export function alertId(type: string, key: string, windowStart: number): string {
  return `${type}:${key}:${windowStart}`;
}

/**
 * The exact member set of a window entry (users of a minute, of a country's hour), stored apart
 * from the entry's value as chunks under [windowStart, key, n]: chunk 0 a full copy, chunks
 * 1..`chunks` what each commit added. A commit writes only the members added since the last one;
 * every MERGE_AT-th (16th) chunk the whole set is written again as chunk 0 and the deltas are deleted, so
 * a reader reads at most MERGE_AT + 1 chunks. Rewriting the whole set at every commit made a
 * commit's cost grow with the window's cardinality (1.3 MB per active-users write, per partition
 * and commit, with a million users passing through; large LMDB values also cost overflow pages).
 */
export class MemberLog {
  constructor(private readonly mergeAt: number) {}

  /** Members added since the last commit. */
  fresh: number[] = [];
  /** Delta chunks stored after chunk 0. */
  chunks = 0;
  /**
   * The next write must be the whole set: it was read from a value stored before member chunks
   * (the value is rewritten as counts, so the set must go to chunk 0 first).
   */
  needsFull = false;

  add(member: number): void {
    this.fresh.push(member);
  }

  /**
   * Writes this commit's chunk of the entry (ws, key): `delta` encodes the fresh members, `full`
   * the whole set. Call `committed` after the commit.
   */
  write(write: (key: StateKey, value: unknown) => void, ws: number, key: string, delta: (fresh: number[]) => unknown, full: () => unknown): void {
    if (this.fresh.length === 0 && !this.needsFull) return;
    if (this.needsFull || this.chunks + 1 > this.mergeAt) {
      write([ws, key, 0], full());
      for (let i = 1; i <= this.chunks; i++) write([ws, key, i], undefined);
      this.chunks = 0;
      this.needsFull = false;
    } else {
      write([ws, key, ++this.chunks], delta(this.fresh));
    }
  }

  committed(): void {
    if (this.fresh.length > 0) this.fresh = [];
  }

  /** A stored chunk read back at startup (chunks come in key order: 0, 1, 2...). */
  restored(chunk: number): void {
    if (chunk > this.chunks) this.chunks = chunk;
  }
}
