import { Packr } from 'msgpackr';
import type { PartitionMeta, StoreKey } from './shard-store.js';

/**
 * The changelog's record format. Partition p of the changelog topic holds state partition p:
 * key = the LMDB key relative to the partition ([pipeline, ...key]) as JSON (deterministic, so
 * compaction keeps the newest value of each key), value = the stored value as MessagePack, or a
 * tombstone (null) for a delete. The partition's progress is the key ["~meta"]; every commit's
 * records are followed by it, inside one Kafka transaction per partition.
 *
 * Values are re-encoded with a Packr of our own (no shared record structures): lmdb-js's encoding
 * refers to structure definitions stored in the environment, which another process lacks.
 */
const packr = new Packr({ useRecords: false, moreTypes: true });
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export const META_KEY = '["~meta"]';

export function encodeValue(v: unknown): Uint8Array {
  return packr.pack(v);
}

export function decodeValue(b: Uint8Array): unknown {
  return packr.unpack(b);
}

export function encodeKey(rel: StoreKey): string {
  return JSON.stringify(rel);
}

export function decodeKey(k: string | Uint8Array): StoreKey {
  return JSON.parse(typeof k === 'string' ? k : fromUtf8.decode(k)) as StoreKey;
}

/**
 * One commit's changelog records for several partitions, packed into one buffer (a worker returns
 * it to the main thread in one piece, not as thousands of small objects). Index: CHANGELOG_STRIDE
 * numbers per record: partition, key start, key length, value start, value length (-1: tombstone).
 */
export interface ChangelogBatch {
  data: Uint8Array;
  index: Float64Array;
  /** Partitions in this batch (each one's records end with its meta record). */
  partitions: number[];
  /** The dashboard projection of the same commit (engine/state/live-projection.ts), sent in the same transactions. */
  live?: ChangelogBatch;
}

export const CHANGELOG_STRIDE = 5;

export class ChangelogBatchBuilder {
  private chunks: Uint8Array[] = [];
  private size = 0;
  private readonly index: number[] = [];
  private readonly parts: number[] = [];

  add(partition: number, key: string, value: unknown): void {
    const k = utf8.encode(key);
    const v = value === undefined ? null : encodeValue(value);
    this.index.push(partition, this.size, k.length, this.size + k.length, v ? v.length : -1);
    this.chunks.push(k);
    this.size += k.length;
    if (v) {
      this.chunks.push(v);
      this.size += v.length;
    }
  }

  addMeta(partition: number, meta: PartitionMeta): void {
    this.add(partition, META_KEY, meta);
    this.parts.push(partition);
  }

  get empty(): boolean {
    return this.parts.length === 0;
  }

  build(): ChangelogBatch {
    const data = new Uint8Array(this.size);
    let at = 0;
    for (const c of this.chunks) {
      data.set(c, at);
      at += c.length;
    }
    return { data, index: Float64Array.from(this.index), partitions: this.parts };
  }
}

/** Canonical text of a meta (object key order can differ after a round trip), for equality. */
export function metaFingerprint(m: PartitionMeta | undefined | null): string {
  if (!m) return '';
  const sortObj = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
  const c = m.counters;
  return JSON.stringify([sortObj(m.offsets ?? {}), m.streamTime, c ? [c.events, c.deadLetters, sortObj(c.late ?? {})] : null]);
}
