import os from 'node:os';
import { z } from 'zod';

/**
 * Engine options, validated once at construction. Precedence (applied in main.ts):
 * flags > environment > defaults. Unknown options are errors.
 */
export const AlertThresholdsSchema = z.strictObject({
  /** z-score of a transaction amount against the user's running baseline. */
  anomalyZScore: z.number().positive().default(3),
  /** Transactions a user needs before the baseline is trusted. */
  anomalyMinTransactions: z.number().int().min(2).default(5),
  maxPlatformsPer10Min: z.number().int().positive().default(3),
  maxLocationsPer10Min: z.number().int().positive().default(2),
  /** Global revenue (USD) below which a closed 5-minute window alerts. */
  lowRevenuePer5Min: z.number().nonnegative().default(1000),
  /** Error share of web and mobile events in a 5-minute window. */
  errorRate: z.number().min(0).max(1).default(0.05),
  /** Minimum events in a 5-minute window before the error rate is judged. */
  errorRateMinEvents: z.number().int().nonnegative().default(100),
  /** LOGIN_FAILED count per user in a 5-minute window. */
  loginFailures: z.number().int().positive().default(3),
  /** IoT thresholds by sensor type (readings above alert). */
  iot: z.record(z.string(), z.number()).default({ TEMPERATURE: 80, HUMIDITY: 95, PRESSURE: 1100, VIBRATION: 20 }),
});
export type AlertThresholds = z.infer<typeof AlertThresholdsSchema>;

export const EngineConfigSchema = z.strictObject({
  dataDir: z.string().min(1).default('data'),
  /** Input partitions (the Kafka topics' partition count; the embedded source uses the same). */
  partitions: z.number().int().min(1).max(1024).default(8),
  /**
   * State shards: partition p belongs to shard p % shards. Fixed for a data directory (recorded in
   * it: see state/layout.ts). By default 8, or the partition count if lower: one partition per
   * shard at the default 8 partitions; more than the partitions is refused. With 2 workers, 8 shards
   * were 3-6 % faster than 4 in the sustained bench:engine run (each thread has four shards' batches to go on with while the main
   * thread handles a result, instead of two) and the same with a million users passing through
   * (BENCHMARKS.md, sixteenth session).
   */
  shards: z.number().int().min(1).max(256).default(8),
  /** Worker threads; shard s runs on worker s % workers. */
  workers: z.number().int().min(1).max(64).default(Math.max(1, os.availableParallelism() - 1)),
  /**
   * Niceness of the shard worker and query threads (Linux, per thread; 0 leaves them alone): the
   * main thread (consumer, dispatch, dashboard server) then preempts them when it has work.
   */
  workerNice: z.number().int().min(0).max(19).default(10),
  /**
   * Slabs (messages batched per shard) in flight per shard, on average over the shards, before the
   * source is paused; one shard may hold four times as many (see ShardDispatcher.updateBackpressure).
   * The source pauses as a whole, so one busy shard holds back the others: a per-shard bound of 4
   * left the worker threads waiting for work 15-25 % of the time in bench:engine (2 workers, 4
   * shards), 12 about half that, and 12 still 30 % when a million users pass through (long
   * commits). 8 on average, 32 for one shard: as fast as 12 per shard in the standard run, and
   * faster there (BENCHMARKS.md, ninth session).
   */
  maxInFlightPerShard: z.number().int().min(1).max(64).default(8),
  /**
   * Largest slab in bytes (slabs follow the traffic: a slow stream sends small ones at each
   * linger). 1 MB: every slab is a worker task with a fixed cost on both threads (a message each
   * way, a result, deltas, a new shared buffer), and at 256 KB (about 2,000 events) that cost held
   * the sustained run at 1.3-1.5 M events/s against 1.7 M at 1 MB; 2 MB was no faster
   * (BENCHMARKS.md, sixteenth session).
   */
  slabBytes: z.number().int().min(4096).max(64 * 1024 * 1024).default(1024 * 1024),
  /** Longest a partial slab waits before it is dispatched. */
  slabLingerMs: z.number().int().min(0).max(10_000).default(10),
  commitIntervalMs: z.number().int().min(10).max(600_000).default(1000),
  /**
   * Bytes of slabs a shard keeps for replay since its last commit; past it the next batch asks
   * for a commit early. Sized for a commit interval at full rate (~30 MB/s per shard at 1 M/s).
   */
  maxRetainedBytesPerShard: z.number().int().min(1024 * 1024).default(64 * 1024 * 1024),
  /**
   * Keys (users, devices, products) a worker thread may have interned before it is replaced by a
   * fresh thread. Interned ids and the per-user records behind them live as long as their thread,
   * so a thread that sees an unbounded number of users would grow without bound. Past this many
   * (and past twice as many as the thread held right after opening its shards, so a large live
   * set does not make it recycle over and over), the dispatcher commits the thread's shards,
   * starts a new thread and reopens them there from that commit: the new thread interns only the
   * keys of open windows and sessions (see ShardDispatcher.recycleWorker).
   */
  workerMaxKeys: z.number().int().min(1).default(1_000_000),
  /** Dirty entries in a shard's write-back cache that force a commit. */
  cacheMaxDirty: z.number().int().min(100).default(200_000),
  /**
   * Exact user sets (active users, users per country) are stored as member chunks: each commit
   * writes the users it added, and every this-many chunks the whole set is written once more and
   * the chunks before it are deleted (a reader reads at most this many + 1).
   */
  memberChunkMerge: z.number().int().min(1).max(1024).default(16),
  graceMs: z.number().int().nonnegative().default(30_000),
  retentionMs: z.number().int().positive().default(24 * 3600_000),
  /** A partition idle (no events) this long in wall time stops holding back global windows. */
  idleTimeoutMs: z.number().int().positive().default(60_000),
  /** Events stamped further than this in the future (wall clock) go to the dead-letter topic. */
  maxFutureMs: z.number().int().positive().default(24 * 3600_000),
  sessionGapMs: z.number().int().positive().default(30 * 60_000),
  /**
   * Open sessions are stored per group of users (engine/operators/pipelines/sessions.ts): a changed
   * group is written whole once the users in its delta (changed since it was last written whole)
   * reach this share of its users, else only its delta is written. 0: every changed group whole;
   * above 1: never (deltas only). Not a flag: a tuning and test knob.
   */
  openGroupWholeShare: z.number().min(0).default(0.5),
  /** USD value of one unit of each currency, to sum revenue across currencies. */
  fxToUsd: z.record(z.string(), z.number().positive()).default({ USD: 1, EUR: 1.08, GBP: 1.27, BRL: 0.2, JPY: 0.0067, INR: 0.012 }),
  alerts: AlertThresholdsSchema.default(AlertThresholdsSchema.parse({})),
  /** CRITICAL alerts are POSTed here (retried with backoff; never blocks processing). */
  webhookUrl: z.string().url().optional(),
  /**
   * Stores, per user, the sequence numbers of the events counted (pipelines/sequence-audit.ts) so
   * that a verification run can prove per key that nothing was lost or counted twice. Off: the
   * pipeline is not built and no event's seq is read.
   */
  auditSequences: z.boolean().default(false),
  /** LMDB map size per environment; it grows when full. */
  mapSizeBytes: z.number().int().positive().default(256 * 1024 * 1024),
  /**
   * Opens the shard stores with LMDB's MDB_WRITEMAP: a commit writes pages straight into the
   * memory map, with no page copies and no sorted list of dirty pages (whose inserts grow with the
   * transaction). Commits with a million users passing through cost about a quarter less, and the
   * run is a fifth to a third faster (BENCHMARKS.md, tenth session). **Unsafe, for benchmarks
   * only:** lmdb-js 3.5.6's LMDB aborts the process in some delete-heavy commits with it (an
   * assertion in mdb_freelist_save; `test/engine/retention.test.ts` hits it every time, and a
   * restart repeats the same commit). The data file is then as large as the map (sparse); the store
   * holds its blocks ahead of LMDB's writes with fallocate (state/file-reserve.ts), so that a full
   * disk fails the commit instead of killing the process with SIGBUS.
   */
  storeWritemap: z.boolean().default(false),
  /**
   * LMDB page size of shard stores created from now on (existing stores keep theirs); unset:
   * lmdb-js's default, the OS page size (4,096 here). Larger pages make a tree of a million users
   * a quarter as many pages, so a commit that touches most of them keeps a shorter list of dirty
   * pages: with 16,384 the high-cardinality run was 16 % faster, the standard run unchanged to
   * slightly slower (BENCHMARKS.md, tenth session); since open sessions are stored in groups of
   * users, 14 % slower with a million users (nineteenth session). Each page a commit touches is written whole.
   */
  storePageSize: z.number().int().refine((n) => [4096, 8192, 16384, 32768, 65536].includes(n), 'must be 4096, 8192, 16384, 32768 or 65536').optional(),
  /**
   * Scaled-out mode (several processes in one consumer group): a partition's state is loaded only
   * while this process owns it, every commit's changes are returned for the changelog topic, and a
   * partition assigned here is restored from the changelog before it is processed (docs/SCALING.md).
   */
  changelog: z.boolean().default(false),
});
export type EngineConfig = z.infer<typeof EngineConfigSchema>;
export type EngineOptions = z.input<typeof EngineConfigSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'ERR_ENGINE_CONFIG';
  readonly retriable = false;
}

export function parseEngineConfig(input: EngineOptions = {}): EngineConfig {
  const r = EngineConfigSchema.safeParse(input);
  if (!r.success) {
    const msg = r.error.issues.map((i) => `options.${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid engine options: ${msg}`, { cause: r.error });
  }
  // More shards than partitions would leave shards empty: the default follows the partitions, a given count above them is refused.
  if (input.shards === undefined) r.data.shards = Math.min(r.data.shards, r.data.partitions);
  else if (r.data.shards > r.data.partitions) {
    throw new ConfigError(`invalid engine options: options.shards: ${r.data.shards} is more than options.partitions (${r.data.partitions}) (--shards, --partitions); partition p lives in shard p % shards, so shards ${r.data.partitions}-${r.data.shards - 1} would never hold a partition. Use at most ${r.data.partitions} shards (a data directory already recorded with more shards than partitions needs a new data directory: its layout is fixed)`);
  }
  return r.data;
}
