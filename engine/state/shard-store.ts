import { EngineError } from '../errors.js';
import path from 'node:path';
import fs from 'node:fs';
import { open, type RootDatabase, type Database } from 'lmdb';

/**
 * One LMDB environment per shard. Keys are arrays: [partition, pipeline, ...key]. Each
 * partition's progress lives beside its state under [partition, '~meta']: the highest processed
 * offset per input topic and the partition's stream time. Both are written in the same
 * transaction as the aggregates: this is what makes a crash safe (on restart a partition skips
 * exactly what its last committed transaction counted).
 */
export interface PartitionMeta {
  /** Highest processed offset per input topic code. */
  offsets: Record<string, number>;
  streamTime: number;
  /** Exactly-once counters of this partition's state (committed with it, replay-safe). */
  counters?: PartitionCounters;
}

export interface PartitionCounters {
  events: number;
  deadLetters: number;
  late: Record<string, number>;
}

export type StoreKey = (string | number)[];

export class StoreError extends EngineError {}

export function shardPath(dataDir: string, shard: number): string {
  return path.join(dataDir, `shard-${shard}`);
}

export class ShardStore {
  private constructor(
    readonly env: RootDatabase,
    readonly state: Database<unknown, StoreKey>,
  ) {}

  static open(dataDir: string, shard: number, mapSizeBytes: number, readOnly = false): ShardStore {
    const dir = shardPath(dataDir, shard);
    if (!readOnly) fs.mkdirSync(dir, { recursive: true });
    else if (!fs.existsSync(dir)) throw new StoreError('ERR_STORE_MISSING', `shard store ${dir} does not exist yet`, true);
    try {
      const env = open({ path: dir, mapSize: mapSizeBytes, maxDbs: 4, readOnly, noMemInit: true });
      const state = env.openDB<unknown, StoreKey>({ name: 'state' });
      return new ShardStore(env, state);
    } catch (cause) {
      throw new StoreError('ERR_STORE_OPEN', `cannot open shard store ${dir}: ${(cause as Error).message}. If it is corrupt, stop the engine, delete ${dir} and restart: the shard is rebuilt by replaying its partitions from the source.`, false, { cause });
    }
  }

  readMeta(partition: number): PartitionMeta | undefined {
    return this.state.get([partition, '~meta']) as PartitionMeta | undefined;
  }

  /** Every stored entry of a partition's pipeline, with the key relative to [partition, pipeline]. */
  *scan(partition: number, pipeline: string): Generator<[StoreKey, unknown]> {
    for (const { key, value } of this.state.getRange({ start: [partition, pipeline], end: [partition, pipeline + '\u0000'] })) {
      yield [(key as StoreKey).slice(2), value];
    }
  }

  /**
   * Writes state changes and progress in one synchronous, durable transaction (it returns after
   * LMDB has committed and flushed). A failure (map or disk full) throws a StoreError and nothing
   * of the transaction is visible.
   */
  commit(writes: Array<[StoreKey, unknown]>, metas: Map<number, PartitionMeta>): void {
    try {
      this.env.transactionSync(() => {
        for (const [k, v] of writes) {
          if (v === undefined) this.state.removeSync(k);
          else this.state.putSync(k, v);
        }
        for (const [p, m] of metas) this.state.putSync([p, '~meta'], m);
      });
    } catch (cause) {
      const msg = (cause as Error).message ?? String(cause);
      const full = /MDB_MAP_FULL|ENOSPC|No space/i.test(msg);
      throw new StoreError(full ? 'ERR_STORE_FULL' : 'ERR_STORE_WRITE', `shard commit failed: ${msg}${full ? ' (free disk space; consumption pauses and resumes from the last commit)' : ''}`, full, { cause });
    }
  }

  /** Deletes closed sessions that ended before `cutoff`, and funnel hours before it (retention). */
  deleteSessionsBefore(partition: number, cutoff: number): number {
    const index = [...this.state.getKeys({ start: [partition, 'sessions', 'closedByEnd', 0], end: [partition, 'sessions', 'closedByEnd', cutoff] })] as StoreKey[];
    const funnel = [...this.state.getKeys({ start: [partition, 'sessions', 'funnel', 0], end: [partition, 'sessions', 'funnel', cutoff] })] as StoreKey[];
    if (index.length === 0 && funnel.length === 0) return 0;
    this.env.transactionSync(() => {
      for (const k of index) {
        const [, , , , user, start] = k;
        this.state.removeSync([partition, 'sessions', 'closed', user, start]);
        this.state.removeSync(k);
      }
      for (const k of funnel) this.state.removeSync(k);
    });
    return index.length + funnel.length;
  }

  /** Deletes a pipeline's windows that started before `cutoff` (retention). */
  deleteWindowsBefore(partition: number, pipeline: string, cutoff: number): number {
    let n = 0;
    const keys = [...this.state.getKeys({ start: [partition, pipeline, 0], end: [partition, pipeline, cutoff] })];
    if (keys.length === 0) return 0;
    this.env.transactionSync(() => {
      for (const k of keys) {
        this.state.removeSync(k);
        n++;
      }
    });
    return n;
  }

  close(): Promise<void> {
    return this.env.close();
  }
}
