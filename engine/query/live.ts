import type { PartitionMeta, StoreKey } from '../state/shard-store.js';
import type { PartitionReader, ScanRange } from './query.js';

/**
 * One partition's dashboard projection (engine/state/live-projection.ts) in memory, read by the
 * query layer like a store: ranges in LMDB's key order, so merges (and floating-point sums) run in
 * the same order as over the stores and give the same numbers. Only what the live dashboard and
 * the global window alerts read is here: active users (counts), revenue, events per platform,
 * error-rate windows, load time per minute, alerts and their statuses, the partition's progress.
 */
interface Entry {
  key: StoreKey;
  value: unknown;
}

/** LMDB's (ordered-binary) order for the keys used here: numbers before strings, a prefix before its extensions. */
export function compareKeys(a: StoreKey, b: StoreKey): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x === y) continue;
    const tx = typeof x;
    const ty = typeof y;
    if (tx !== ty) return tx === 'number' ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

class SortedEntries {
  private readonly byKey = new Map<string, Entry>();
  private sorted: Entry[] = [];
  private dirty = false;

  set(json: string, key: StoreKey, value: unknown): 'new' | 'changed' {
    const e = this.byKey.get(json);
    if (e) {
      e.value = value;
      return 'changed';
    }
    this.byKey.set(json, { key, value });
    this.dirty = true;
    return 'new';
  }

  delete(json: string): void {
    if (this.byKey.delete(json)) this.dirty = true;
  }

  get(json: string): unknown {
    return this.byKey.get(json)?.value;
  }

  get size(): number {
    return this.byKey.size;
  }

  all(): Entry[] {
    if (this.dirty) {
      this.sorted = [...this.byKey.values()].sort((a, b) => compareKeys(a.key, b.key));
      this.dirty = false;
    }
    return this.sorted;
  }

  /** Entries with start <= key < end (absent bounds: open), in order. */
  range(r: ScanRange): Entry[] {
    const all = this.all();
    let lo = 0;
    if (r.start) {
      let hi = all.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (compareKeys(all[mid].key, r.start) < 0) lo = mid + 1;
        else hi = mid;
      }
    }
    const out: Entry[] = [];
    for (let i = lo; i < all.length; i++) {
      if (r.end && compareKeys(all[i].key, r.end) >= 0) break;
      out.push(all[i]);
      if (r.limit !== undefined && out.length >= r.limit) break;
    }
    return r.reverse ? out.reverse() : out;
  }

  /** Drops entries whose third key element (a window start) is below `before`. */
  trim(before: number): void {
    for (const [json, e] of this.byKey) {
      if (typeof e.key[2] === 'number' && e.key[2] < before) {
        this.byKey.delete(json);
        this.dirty = true;
      }
    }
  }
}

export class LivePartition implements PartitionReader {
  /** Pipeline -> entries (absolute keys [partition, pipeline, ...]). */
  private readonly pipelines = new Map<string, SortedEntries>();
  meta: PartitionMeta | undefined;
  /** Wall time of the last applied commit that moved the partition's offsets or stream time. */
  lastProgressAt = 0;

  constructor(readonly partition: number) {}

  private entries(pipeline: string): SortedEntries {
    let e = this.pipelines.get(pipeline);
    if (!e) this.pipelines.set(pipeline, (e = new SortedEntries()));
    return e;
  }

  /** Applies one record (key relative to the partition); returns whether the key is new. */
  apply(rel: StoreKey, value: unknown): 'new' | 'changed' | 'deleted' {
    const key = [this.partition, ...rel];
    const json = JSON.stringify(key);
    const e = this.entries(rel[0] as string);
    if (value === undefined) {
      e.delete(json);
      return 'deleted';
    }
    return e.set(json, key, value);
  }

  trim(before: number, keepPipelines: Set<string>): void {
    for (const [name, e] of this.pipelines) if (!keepPipelines.has(name)) e.trim(before);
  }

  get size(): number {
    let n = 0;
    for (const e of this.pipelines.values()) n += e.size;
    return n;
  }

  state = {
    getRange: (range: ScanRange): Iterable<{ key: unknown; value: unknown }> => this.pipelineOf(range)?.range(range) ?? [],
    getKeys: (range: ScanRange): Iterable<unknown> => (this.pipelineOf(range)?.range(range) ?? []).map((e) => e.key),
    get: (key: StoreKey): unknown => this.pipelines.get(key[1] as string)?.get(JSON.stringify(key)),
  };

  readMeta(): PartitionMeta | undefined {
    return this.meta;
  }

  /** The pipeline a range lies in ([p, 'alerts'] to [p, 'alerts\u0000'] is 'alerts'). */
  private pipelineOf(range: ScanRange): SortedEntries | undefined {
    const name = range.start?.[1];
    if (typeof name !== 'string') throw new Error('the live dashboard view answers only ranges within one pipeline');
    return this.pipelines.get(name);
  }
}
