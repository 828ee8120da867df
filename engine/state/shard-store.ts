import { EngineError } from '../errors.js';
import path from 'node:path';
import fs from 'node:fs';
import { open, type RootDatabase, type Database } from 'lmdb';
import { writeKey, readKey } from 'ordered-binary';
import { ALERT_STATUS } from './live-projection.js';
import { FileReserve, fileReserveUnsupported } from './file-reserve.js';

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
/** A range of keys relative to a prefix: from `start` (inclusive) to `end` (exclusive), or to the prefix's end. */
export interface KeyRange {
  start: StoreKey;
  end?: StoreKey;
}

export class StoreError extends EngineError {}

export function shardPath(dataDir: string, shard: number): string {
  return path.join(dataDir, `shard-${shard}`);
}

/**
 * Checks a shard's data file before LMDB maps it. LMDB trusts its file: a truncated one or a
 * garbled header crashes the whole process (SIGBUS or SIGSEGV, no error to report) as soon as it
 * is opened. Detected here: a header that is not LMDB's (both meta pages must carry its magic and
 * data version) and a file cut short (the newest meta's tree roots and last used page must lie inside it). Damage
 * inside the trees is not detected. An empty or absent file is a new store. Layout: lmdb-js's
 * liblmdb, 64-bit (24-byte page header; MDB_meta after it).
 */
export function checkDataFile(file: string): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    let size = fs.fstatSync(fd).size;
    if (size === 0) return null;
    const meta = (at: number) => {
      const b = Buffer.alloc(160);
      if (fs.readSync(fd, b, 0, 160, at) < 160) return null;
      if (b.readUInt32LE(24) !== 0xbeefc0de || (b.readUInt32LE(28) & 0xffff) !== 2) return null;
      return { psize: b.readUInt32LE(48), freeRoot: b.readBigUInt64LE(88), mainRoot: b.readBigUInt64LE(136), lastPage: b.readBigUInt64LE(144), txnid: b.readBigUInt64LE(152) };
    };
    const m0 = meta(0);
    if (!m0 || m0.psize < 512 || m0.psize > 65536 || (m0.psize & (m0.psize - 1)) !== 0) return `${path.basename(file)} has no valid LMDB header (${size} bytes)`;
    const m1 = meta(m0.psize);
    if (!m1) return `${path.basename(file)}'s second meta page is not valid LMDB (${size} bytes)`;
    const m = m1.txnid > m0.txnid ? m1 : m0;
    // The size after the metas: another thread of this process (a worker, while the query layer
    // opens the store) may be committing. LMDB writes a commit's pages before its meta, so a size
    // read first could be older than the newest meta and read as a file cut short.
    size = fs.fstatSync(fd).size;
    const pages = BigInt(Math.floor(size / m0.psize));
    for (const [name, root] of [['free-page', m.freeRoot], ['main', m.mainRoot]] as const) {
      if (root !== 0xffffffffffffffffn && root >= pages) return `${path.basename(file)} is cut short: ${size} bytes (${pages} pages) but its ${name} tree's root is page ${root}`;
    }
    // Every page up to the newest meta's last used page must be in the file: roots inside it are not
    // enough, a cut can still leave branch or leaf pages beyond the end (SIGBUS on the first read;
    // seen in reliability scenario 7 once its stores held more data).
    if (m.lastPage >= pages) return `${path.basename(file)} is cut short: ${size} bytes (${pages} pages) but its last used page is ${m.lastPage}`;
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Whether a failed commit is a full disk or map (retriable: the shard waits for space). LMDB does
 * not always say ENOSPC: on a full tmpfs a commit also failed with EIO ("Input/output error"; seen
 * in reliability scenario 7), which counted as a write failure and made the shard give up (health
 * DOWN until restarted). So an I/O error while the store's filesystem has (almost) no space left is
 * a full disk too.
 */
export function isStoreFull(message: string, dir: string): boolean {
  if (/MDB_MAP_FULL|ENOSPC|No space/i.test(message)) return true;
  if (!/EIO|Input\/output error/i.test(message)) return false;
  try {
    const st = fs.statfsSync(dir);
    const free = st.bavail * st.bsize;
    return free < Math.max(1024 * 1024, st.blocks * st.bsize * 0.01);
  } catch {
    return false;
  }
}

/**
 * The state's keys, encoded with ordered-binary as lmdb-js does by default, but passed as an own
 * key encoder so that LMDB compares them with memcmp. For ordered-binary keys in a named database
 * lmdb-js installs its own comparator (compareFast), which compares 4 bytes at a time through
 * calls to ntohl; our keys share long prefixes ([partition, pipeline, 'open', 'user-…']), 28
 * bytes before two users' keys differ, so random puts into a store of a million users spent
 * 15 % of their time there (perf). Both comparators order keys as unsigned bytes, shorter first on
 * a common prefix, so stores written with either stay valid under the other. Measured: +6 % events
 * per worker CPU-second with a million users passing through (BENCHMARKS.md, tenth session).
 */
const KEY_ENCODER = { writeKey, readKey };

export class ShardStore {
  /** With MDB_WRITEMAP: the data file's blocks held ahead of LMDB's writes (see FileReserve). */
  private readonly reserve: FileReserve | null;

  private constructor(
    readonly env: RootDatabase,
    readonly state: Database<unknown, StoreKey>,
    private readonly dir: string,
    /** Whether LMDB writes through the memory map (EngineConfig.storeWritemap, where the filesystem can hold blocks). */
    readonly writemap: boolean,
  ) {
    if (!writemap) {
      this.reserve = null;
    } else {
      const native = (env as unknown as { env: { info(): { lastPageNumber: number } } }).env;
      const pageSize = (env.getStats() as { pageSize: number }).pageSize;
      this.reserve = new FileReserve(path.join(dir, 'data.mdb'), pageSize, () => native.info().lastPageNumber);
    }
  }

  /**
   * `writemap`: EngineConfig.storeWritemap (LMDB's MDB_WRITEMAP), for a store opened to write, and
   * only where fallocate(1) can hold the file's blocks (FileReserve); elsewhere the store opens
   * without it, with a process warning.
   * `pageSize`: EngineConfig.storePageSize, for a store created now (LMDB keeps an existing one's).
   */
  static open(dataDir: string, shard: number, mapSizeBytes: number, readOnly = false, writemap = false, pageSize?: number): ShardStore {
    const dir = shardPath(dataDir, shard);
    if (!readOnly) fs.mkdirSync(dir, { recursive: true });
    else if (!fs.existsSync(dir)) throw new StoreError('ERR_STORE_MISSING', `shard store ${dir} does not exist yet`, true);
    const damage = checkDataFile(path.join(dir, 'data.mdb'));
    if (damage) throw new StoreError('ERR_STORE_CORRUPT', `shard store ${dir} is corrupt (${damage}). Stop the engine, delete ${dir} and restart: the shard is rebuilt by replaying its partitions from the source (see RELIABILITY.md, scenario 7).`, false);
    let useWritemap = writemap && !readOnly;
    if (useWritemap) {
      const why = fileReserveUnsupported(dir);
      if (why !== null) {
        useWritemap = false;
        warnWritemapOff(dir, why);
      }
    }
    try {
      const env = open({ path: dir, mapSize: mapSizeBytes, maxDbs: 4, readOnly, noMemInit: true, useWritemap, ...(pageSize ? { pageSize } : {}) });
      const state = env.openDB<unknown, StoreKey>({ name: 'state', keyEncoder: KEY_ENCODER } as { name: string }); // keyEncoder: not in lmdb's types
      return new ShardStore(env, state, dir, useWritemap);
    } catch (cause) {
      throw new StoreError('ERR_STORE_OPEN', `cannot open shard store ${dir}: ${(cause as Error).message}. If it is corrupt, stop the engine, delete ${dir} and restart: the shard is rebuilt by replaying its partitions from the source.`, false, { cause });
    }
  }

  readMeta(partition: number): PartitionMeta | undefined {
    return this.state.get([partition, '~meta']) as PartitionMeta | undefined;
  }

  /** Every stored entry of a partition's pipeline, with the key relative to [partition, pipeline]. */
  /** A pipeline's stored entries (keys relative to [partition, pipeline]), all or those in `range` (`end` omitted: to the pipeline's last key). */
  *scan(partition: number, pipeline: string, range?: KeyRange): Generator<[StoreKey, unknown]> {
    const start = range ? [partition, pipeline, ...range.start] : [partition, pipeline];
    const end = range?.end ? [partition, pipeline, ...range.end] : [partition, pipeline + '\u0000'];
    for (const { key, value } of this.state.getRange({ start, end })) {
      yield [(key as StoreKey).slice(2), value];
    }
  }

  /**
   * Writes state changes and progress in one synchronous, durable transaction (it returns after
   * LMDB has committed and flushed). A failure (map or disk full) throws a StoreError and nothing
   * of the transaction is visible.
   */
  commit(writes: Array<[StoreKey, unknown]>, metas: Map<number, PartitionMeta>): void {
    this.commitEach((write) => {
      for (const [k, v] of writes) write(k, v);
    }, metas);
  }

  /**
   * As `commit`, with the writes produced inside the transaction by `collect` (undefined deletes);
   * returns how many there were. Each key and value is garbage as soon as it is written: collected
   * into an array first, a commit's hundred thousand of them outlived the young generation and were
   * promoted, and the old generation grew with garbage when many users passed through.
   */
  commitEach(collect: (write: (key: StoreKey, value: unknown) => void) => void, metas: Map<number, PartitionMeta>): number {
    let n = 0;
    const state = this.state;
    const reserve = this.reserve;
    const write = (k: StoreKey, v: unknown) => {
      if (reserve !== null) reserve.write(v);
      if (v === undefined) state.removeSync(k);
      else state.putSync(k, v);
      n++;
    };
    this.storeTransaction('shard commit', () => {
      collect(write);
      for (const [p, m] of metas) this.put([p, '~meta'], m);
    });
    return n;
  }

  /**
   * Applies changelog records of one partition in one transaction (a restore): keys relative to
   * the partition, undefined deletes. With `reset`, the partition's whole key range is cleared first.
   */
  applyRestore(partition: number, records: Array<[StoreKey, unknown]>, reset: boolean): void {
    try {
      this.transaction(() => {
        if (reset) {
          for (const k of this.state.getKeys({ start: [partition], end: [partition + 1] })) this.remove(k as StoreKey);
        }
        for (const [k, v] of records) {
          if (v === undefined) this.remove([partition, ...k]);
          else this.put([partition, ...k], v);
        }
      });
    } catch (cause) {
      const msg = (cause as Error).message ?? String(cause);
      const full = /MDB_MAP_FULL|ENOSPC|No space/i.test(msg);
      throw new StoreError(full ? 'ERR_STORE_FULL' : 'ERR_STORE_WRITE', `changelog restore of partition ${partition} failed: ${msg}${full ? ' (free disk space; the restore is retried)' : ''}`, full, { cause });
    }
  }

  /** Deletes closed sessions that ended before `cutoff`, and funnel hours before it (retention). */
  deleteSessionsBefore(partition: number, cutoff: number, deleted?: StoreKey[]): number {
    const index = [...this.state.getKeys({ start: [partition, 'sessions', 'closedByEnd', 0], end: [partition, 'sessions', 'closedByEnd', cutoff] })] as StoreKey[];
    const funnel = [...this.state.getKeys({ start: [partition, 'sessions', 'funnel', 0], end: [partition, 'sessions', 'funnel', cutoff] })] as StoreKey[];
    if (index.length === 0 && funnel.length === 0) return 0;
    this.storeTransaction(`retention of partition ${partition}'s sessions`, () => {
      for (const k of index) {
        const [, , , , user, start] = k;
        this.remove([partition, 'sessions', 'closed', user, start]);
        this.remove(k);
        deleted?.push([partition, 'sessions', 'closed', user, start], k);
      }
      for (const k of funnel) this.remove(k);
      if (deleted) for (const k of funnel) deleted.push(k);
    });
    return index.length + funnel.length;
  }

  /**
   * Deletes the partition's alerts whose window started before `cutoff`, with their statuses
   * (retention: without it every alert ever raised stays, and every alert list reads them all).
   * Alerts are keyed by id, not time, so this reads them; retention bounds how many there are.
   */
  deleteAlertsBefore(partition: number, cutoff: number, deleted?: StoreKey[]): number {
    const keys: StoreKey[] = [];
    for (const { key, value } of this.state.getRange({ start: [partition, 'alerts'], end: [partition, 'alerts\u0000'] })) {
      const a = value as { alertId: string; windowStart: number; timestamp: number };
      if (Math.max(a.windowStart || 0, a.timestamp || 0) >= cutoff) continue;
      keys.push(key as StoreKey);
      const status: StoreKey = [partition, ALERT_STATUS, a.alertId];
      if (this.state.get(status) !== undefined) keys.push(status);
    }
    if (keys.length === 0) return 0;
    this.storeTransaction(`retention of partition ${partition}'s alerts`, () => {
      for (const k of keys) this.remove(k);
    });
    if (deleted) for (const k of keys) deleted.push(k);
    return keys.length;
  }

  /** Deletes a pipeline's windows that started before `cutoff` (retention). */
  deleteWindowsBefore(partition: number, pipeline: string, cutoff: number, deleted?: StoreKey[]): number {
    let n = 0;
    const keys = [...this.state.getKeys({ start: [partition, pipeline, 0], end: [partition, pipeline, cutoff] })];
    if (keys.length === 0) return 0;
    this.storeTransaction(`retention of partition ${partition}'s ${pipeline} windows`, () => {
      for (const k of keys) {
        this.remove(k as StoreKey);
        deleted?.push(k as StoreKey);
        n++;
      }
    });
    return n;
  }

  /** A commit's or retention's transaction: a failure is a StoreError, a full disk or map a retriable ERR_STORE_FULL (the shard waits for space). */
  private storeTransaction(what: string, fn: () => void): void {
    try {
      this.transaction(fn);
    } catch (cause) {
      const msg = (cause as Error).message ?? String(cause);
      const full = isStoreFull(msg, this.dir);
      throw new StoreError(full ? 'ERR_STORE_FULL' : 'ERR_STORE_WRITE', `${what} failed: ${msg}${full ? ' (free disk space; consumption pauses and resumes from the last commit)' : ''}`, full, { cause });
    }
  }

  /** A synchronous write transaction; with MDB_WRITEMAP, the file's blocks held before it (FileReserve). */
  private transaction(fn: () => void): void {
    const r = this.reserve;
    if (r === null) {
      this.env.transactionSync(fn);
      return;
    }
    r.begin();
    try {
      this.env.transactionSync(fn);
    } finally {
      r.end();
    }
  }

  private put(key: StoreKey, value: unknown): void {
    this.reserve?.write(value);
    this.state.putSync(key, value);
  }

  private remove(key: StoreKey): void {
    this.reserve?.write(undefined);
    this.state.removeSync(key);
  }

  /** Bytes of the data file held for LMDB (0 without MDB_WRITEMAP, or before the first write). */
  get reservedBytes(): number {
    return this.reserve?.reserved ?? 0;
  }

  close(): Promise<void> {
    return this.env.close();
  }
}

const warnedWritemapOff = new Set<string>();
function warnWritemapOff(dir: string, why: string): void {
  const parent = path.dirname(dir);
  if (warnedWritemapOff.has(parent)) return;
  warnedWritemapOff.add(parent);
  process.emitWarning(`shard stores under ${parent} open without MDB_WRITEMAP: their disk space cannot be held ahead of LMDB's writes (${why}), and with MDB_WRITEMAP a full disk would kill the process`, { code: 'RTA_STORE_WRITEMAP_OFF' });
}
