import type { Alert } from '../codec/types.js';
import type { EngineConfig } from '../config.js';
import type { OutputRecord } from '../operators/api.js';
import type { PartitionCounters, PartitionMeta, StoreKey } from '../state/shard-store.js';
import type { ChangelogBatch } from '../state/changelog-codec.js';
import type { ProfileIndexHandle } from '../state/profile-index.js';

export type { ProfileIndexHandle };

/**
 * Messages between the dispatcher (main thread) and shard workers. A slab is a SharedArrayBuffer
 * holding many raw messages; the index says where each lies: INDEX_STRIDE numbers per message.
 * Both sides keep the slab (shared, not copied) so the dispatcher can replay it after a failure.
 */
export const INDEX_STRIDE = 5;
export const IDX_PARTITION = 0;
export const IDX_TOPIC = 1;
export const IDX_OFFSET = 2;
export const IDX_START = 3;
export const IDX_LENGTH = 4;

/** Topic codes: 0 carries any event type (embedded source); 1..5 are the source topics. */
export const TOPIC_CODES = ['embedded', 'web-events', 'mobile-events', 'transaction-events', 'iot-events', 'user-actions'] as const;

export interface OpenTask {
  op: 'open';
  shard: number;
  gen: number;
  partitions: number[];
  config: EngineConfig;
  /** The reference store's profile-change counters (shared memory), see ReferenceStore.profileEpochs. */
  profileEpochs?: Int32Array;
  profileIndex?: ProfileIndexHandle;
}

export interface BatchTask {
  op: 'batch';
  shard: number;
  gen: number;
  /** Slab sequence number within the shard (in order, one at a time). */
  seq: number;
  slab: SharedArrayBuffer;
  index: Float64Array;
  /** Commit after this batch even if the interval has not passed. */
  commit: boolean;
  /** Test-only fault injection, honoured only when RTA_ENABLE_FAULTS=1. */
  fault?: 'throw' | 'exit';
  /** Set when the thread's copy is older (the index grew since the thread was last handed it). */
  profileIndex?: ProfileIndexHandle;
}

export interface CommitTask {
  op: 'commit';
  shard: number;
  gen: number;
  seq: number;
  /** Scaled out: state writes from the main thread (absolute keys; undefined value deletes), committed in this transaction. */
  writes?: Array<[StoreKey, unknown]>;
}

export interface CloseTask {
  op: 'close';
  shard: number;
  gen: number;
}

/** Scaled out: partitions assigned to / taken from this process, and restores from the changelog. */
export interface MembershipTask {
  op: 'load' | 'release' | 'metas';
  shard: number;
  gen: number;
  partitions: number[];
}

export interface RestoreTask {
  op: 'restore';
  shard: number;
  gen: number;
  partition: number;
  /** Clear the partition's keys first (a full restore). */
  reset: boolean;
  keys: string[];
  values: Array<Uint8Array | null>;
}

export interface MembershipResult {
  shard: number;
  gen: number;
  metas?: Record<number, PartitionMeta | null>;
  offsets?: Record<number, Record<string, number>>;
  counters?: Record<number, PartitionCounters>;
}

export type ShardTask = OpenTask | BatchTask | CommitTask | CloseTask | MembershipTask | RestoreTask;

export interface DeadLetter {
  partition: number;
  topic: number;
  offset: number;
  /** Index of the event inside its message, or -1 when the whole message is rejected. */
  eventIndex: number;
  code: string;
  reason: string;
  /** The original message bytes (whole message), or the rejected event as JSON. */
  bytes: Uint8Array;
}

export interface ShardCounters {
  messages: number;
  skippedMessages: number;
  events: number;
  eventsBySource: number[];
  late: Record<string, number>;
  deadLetters: number;
  unknownUsers: number;
  unknownCurrencies: number;
}

export interface CommitInfo {
  /** The batch sequence number this commit covers (every slab <= seq is durable). */
  seq: number;
  /** Per partition: highest processed offset per topic code. */
  offsets: Record<number, Record<string, number>>;
  streamTimes: Record<number, number>;
  /** Cumulative exactly-once counters per partition, as committed. */
  counters: Record<number, PartitionCounters>;
  durationMs: number;
  writes: number;
  /** Scaled out: the commit's records for the changelog topic (sent before its offsets are committed to Kafka). */
  changelog?: ChangelogBatch;
}

export interface ShardResult {
  shard: number;
  gen: number;
  seq: number;
  counters: ShardCounters;
  deadLetters: DeadLetter[];
  outputs: OutputRecord[];
  alerts: Alert[];
  /** [pipeline, partition, windowStart] changed by this batch. */
  changed: Array<[string, number, number]>;
  committed?: CommitInfo;
  /** Offsets the shard had already committed when opened (for the source to resume from). */
  restored?: Record<number, Record<string, number>>;
  processingMs: number;
  /** The worker thread's V8 heap in use, reported with commits. */
  heapUsedBytes?: number;
  /** Keys the worker thread has interned (Vocabulary.keyCount), reported with commits. */
  threadKeys?: number;
  /** Bytes of the thread's per-key arrays off the JS heap (intern tables, per-user records, baselines), with commits. */
  threadKeyBytes?: number;
  /** With a commit: the thread holds more keys than config.workerMaxKeys allows; the dispatcher replaces it. */
  recycle?: boolean;
}

export function emptyCounters(): ShardCounters {
  return { messages: 0, skippedMessages: 0, events: 0, eventsBySource: [0, 0, 0, 0, 0, 0], late: {}, deadLetters: 0, unknownUsers: 0, unknownCurrencies: 0 };
}

const TASK_ERROR_TAG = /\s\[code=([\w.-]+) (retriable|final)\]$/;

/** An error from a worker task, with its code and retriable flag in the message (the only part that survives Piscina's copy). */
export function encodeTaskError(err: unknown): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  if (TASK_ERROR_TAG.test(e.message)) return e;
  const code = (e as { code?: unknown }).code;
  const retriable = (e as { retriable?: unknown }).retriable === true;
  const out = new Error(`${e.message} [code=${typeof code === 'string' && code ? code : 'ERR_WORKER'} ${retriable ? 'retriable' : 'final'}]`);
  out.stack = e.stack;
  return out;
}

/** The code and retriable flag of a task error (also when it arrived without the tag: a thread that died). */
export function decodeTaskError(err: Error): { code: string | undefined; retriable: boolean } {
  const own = err as { code?: unknown; retriable?: unknown };
  const m = TASK_ERROR_TAG.exec(err.message ?? '');
  if (m) return { code: m[1], retriable: m[2] === 'retriable' };
  return { code: typeof own.code === 'string' ? own.code : undefined, retriable: own.retriable === true };
}
