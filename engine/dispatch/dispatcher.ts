import { Piscina } from 'piscina';
import type { EngineConfig } from '../config.js';
import { builtFile } from '../built-file.js';
import type { OffsetMap, RawMessage } from '../source/types.js';
import { decodeTaskError, encodeTaskError, type ProfileIndexHandle, type BatchTask, type CommitInfo, type MembershipResult, type ShardResult, type ShardTask } from '../workers/protocol.js';
import type { PartitionCounters, PartitionMeta, StoreKey } from '../state/shard-store.js';
import type { ChangelogBatch } from '../state/changelog-codec.js';

/** The compiled worker entry (tests run the TypeScript sources, workers always run the build). */
export function workerFile(): string {
  return builtFile(import.meta.url, 'engine', 'workers', 'shard-worker.js');
}

interface SlabBuilder {
  buf: SharedArrayBuffer;
  bytes: Uint8Array;
  used: number;
  index: number[];
}

interface Sent {
  seq: number;
  slab: SharedArrayBuffer;
  index: Float64Array;
  bytes: number;
}

interface ShardChannel {
  shard: number;
  worker: number;
  partitions: number[];
  /** Scaled out (changelog mode): the partitions of this shard this process owns now (loaded in the worker). */
  owned: Set<number>;
  gen: number;
  seq: number;
  inFlight: number;
  builder: SlabBuilder | null;
  /**
   * Size of the next slab: it follows the traffic between MIN_SLAB_BYTES and config.slabBytes. At a
   * low rate the linger timer sends slabs that are mostly empty; a full-size slab each time cost
   * 100 MB/s of zeroed shared memory at 20,000 events/s (held until the commit), and the main
   * thread's garbage collector paid for it.
   */
  nextSlabBytes: number;
  avgSlabUsed: number;
  /** Slabs sent since the last durable commit, kept for replay after a failure. */
  retained: Sent[];
  retainedBytes: number;
  /**
   * Full-size slabs a commit released, for the next slabs: a fresh SharedArrayBuffer is zeroed and
   * faulted in page by page, which was a fifth of the main thread's time at 1.7 M events/s. Once its
   * batch is committed no worker reads a slab again (the reader copies what it keeps; a replay only
   * sends slabs still in `retained`). At most what `retained` may hold: the slabs one commit releases
   * are about the slabs of the next commit interval.
   */
  spare: SharedArrayBuffer[];
  /**
   * The batch (generation, seq) that last asked its worker for an early commit because `retained`
   * was over its bound: later slabs do not ask again until that commit is back. Every slab sent
   * meanwhile asked too, and at 4 shards and 1.8 M events/s that made six commits per shard per
   * second instead of one (each with its fixed cost): about 13 % of the throughput.
   */
  commitAsked: { gen: number; seq: number } | null;
  recovering: Promise<void> | null;
  /** Its thread is being replaced (recycleWorker): `recovering` holds new slabs back meanwhile. */
  recycling: boolean;
  /** Slabs held back (in `retained`, not sent) while `recovering` is set. */
  held: number;
  lastActivity: number;
  /**
   * Tasks waiting for the shard's worker. Exactly one task per shard runs at a time: Piscina's
   * queue does not promise FIFO order across its scheduling paths, so the order of a shard's
   * batches is kept here.
   */
  queue: Array<{ task: ShardTask; done: (res: unknown) => void; fail: (err: Error) => void }>;
  running: boolean;
  /** Failures since the last durable commit: each waits longer before the shard reopens. */
  failures: number;
  /** Failures a retry may not fix (not stale refusals, not retriable errors) since the last commit. */
  finalFailures: number;
  lastFailure: Error | null;
  /** Gave up: the same batch failed for a non-retriable reason too many times. */
  failed: boolean;
}

const MAX_NON_RETRIABLE_FAILURES = 3;
/** Smallest slab the dispatcher allocates (slabs grow toward config.slabBytes while they fill up). */
const MIN_SLAB_BYTES = 16 * 1024;

/** A worker thread replaced by a fresh one (ShardDispatcher.recycleWorker). */
export interface RecycleRecord {
  worker: number;
  /** Keys the old thread reported with its last commits. */
  keysBefore: number;
  /** Keys the new thread held after reopening the shards (what their state restored). */
  keysAfter: number;
  /** From the request to the new thread taking slabs: the old one's last batches and commits included. */
  ms: number;
  at: number;
}

/**
 * Whether the source must pause: the shards hold `maxInFlightPerShard` slabs each on average, one
 * holds four times that, or one is recovering or has failed. (Why not a per-shard bound alone: see
 * ShardDispatcher.updateBackpressure.)
 */
export function sourceMustPause(shards: ReadonlyArray<{ inFlight: number; recovering: unknown; failed: boolean }>, maxInFlightPerShard: number): boolean {
  let total = 0;
  for (const ch of shards) {
    if (ch.inFlight >= 4 * maxInFlightPerShard || ch.recovering || ch.failed) return true;
    total += ch.inFlight;
  }
  return total >= maxInFlightPerShard * shards.length;
}

/** A task that failed because its thread died while it waited behind another shard's task: retriable. */
function queuedBehind(err: Error): Error {
  return encodeTaskError(Object.assign(new Error(`${err.message} (the thread held other shards' tasks too: not counted against this shard)`, { cause: err }), { code: 'ERR_THREAD_LOST', retriable: true }));
}

export interface DispatcherEvents {
  onResult(result: ShardResult): void;
  /** Scaled out, returns the commit's changelog acknowledgement: the partitions it could NOT write (fenced, given up). */
  onCommitted(shard: number, offsets: OffsetMap, counters: Record<number, PartitionCounters>, streamTimes: Record<number, number>, changelog?: ChangelogBatch): Promise<number[]> | void;
  onBackpressure(paused: boolean): void;
  onShardFailure(shard: number, err: Error, recovered: boolean): void;
  /** A message whose partition is outside the configured partitions (topic grew after start). */
  onUnplaceable(message: RawMessage): void;
}

/**
 * The main thread's dispatcher: groups raw messages by partition into byte slabs (shared, not
 * copied to workers), hands each slab to the worker that owns the partition's shard, bounds the
 * slabs in flight per shard (pausing the source when the bound is reached), and replays what a
 * failed shard had not committed.
 */
export class ShardDispatcher {
  private readonly pools: Piscina[];
  /**
   * Per worker thread, the tasks handed to it and not yet settled, oldest first. The thread runs
   * them in that order, so when it dies the oldest is the one that was running: only that shard
   * counts the death against its batch; the others were waiting and are simply retried.
   */
  private readonly handed: ShardTask[][];
  private readonly waited = new Set<ShardTask>();
  /** Per worker thread, the version of the profile index last handed to it. */
  private readonly indexVersionHanded: number[] = [];
  private readonly channels: ShardChannel[];
  private paused = false;
  private lingerTimer: NodeJS.Timeout | null = null;
  private commitTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly idleWaiters: Array<() => void> = [];
  readonly stats = { slabs: 0, bytes: 0, replays: 0, failures: 0, recycles: 0, slabsReused: 0 };
  /** Worker threads being replaced by fresh ones (see recycleWorker), by worker index. */
  private readonly recycling = new Map<number, Promise<void>>();
  /** The latest thread replacements (up to 100): keys before, keys the new thread restored, duration. */
  readonly recycled: RecycleRecord[] = [];
  /** Per worker thread, the keys it held when its last open finished (shard-worker.ts reports them). */
  private readonly keysAtOpen: number[] = [];
  /** Exactly-once counters per partition as restored at open (then updated by commits). */
  restoredCounters: Record<number, PartitionCounters> = {};

  constructor(
    private readonly config: EngineConfig,
    private readonly events: DispatcherEvents,
    private readonly profileEpochs?: Int32Array,
    private readonly profileIndex?: () => ProfileIndexHandle,
  ) {
    // A shard runs one task at a time (see `run`), but a thread with several shards takes one task
    // of each at once: it starts the next shard's batch while the main thread is still handling the
    // last result. With one task per thread it waited a round trip through the main thread after
    // every batch (20-27 % of its time in bench:engine, 2 workers; 5-14 % now, with 12 slabs in flight).
    this.pools = Array.from({ length: config.workers }, () => this.newPool());
    this.handed = this.pools.map(() => []);
    this.channels = Array.from({ length: config.shards }, (_, s) => ({
      shard: s,
      worker: s % config.workers,
      partitions: Array.from({ length: config.partitions }, (_, p) => p).filter((p) => p % config.shards === s),
      owned: new Set<number>(),
      gen: 0,
      seq: 0,
      inFlight: 0,
      builder: null,
      nextSlabBytes: config.slabBytes,
      avgSlabUsed: config.slabBytes,
      retained: [],
      retainedBytes: 0,
      spare: [],
      commitAsked: null,
      recovering: null,
      recycling: false,
      held: 0,
      lastActivity: Date.now(),
      queue: [],
      running: false,
      failures: 0,
      finalFailures: 0,
      lastFailure: null,
      failed: false,
    }));
  }

  private newPool(): Piscina {
    return new Piscina({
      filename: workerFile(),
      minThreads: 1,
      maxThreads: 1,
      concurrentTasksPerWorker: Math.ceil(this.config.shards / this.config.workers),
      idleTimeout: Number.MAX_SAFE_INTEGER,
      maxQueue: Infinity, // the dispatcher bounds in-flight slabs per shard itself
    });
  }

  shardOf(partition: number): number {
    return partition % this.config.shards;
  }

  /** Opens every shard (restoring from LMDB) and returns the offsets their state already counted. */
  async open(): Promise<OffsetMap> {
    const restored: OffsetMap = {};
    await Promise.all(this.channels.map(async (ch) => {
      const r = await this.openShard(ch);
      Object.assign(restored, r);
    }));
    this.commitTimer = setInterval(() => this.commitIdle(), Math.max(50, Math.floor(this.config.commitIntervalMs / 2)));
    this.commitTimer.unref();
    return restored;
  }

  private async openShard(ch: ShardChannel): Promise<OffsetMap> {
    ch.gen++;
    // Scaled out, a shard holds only the partitions this process owns (none until assigned).
    const partitions = this.config.changelog ? [...ch.owned] : ch.partitions;
    const res = (await this.run(ch, { op: 'open', shard: ch.shard, gen: ch.gen, partitions, config: this.config, profileEpochs: this.profileEpochs })) as { restored: OffsetMap; counters: Record<number, PartitionCounters>; threadKeys?: number };
    if (res.threadKeys !== undefined) this.keysAtOpen[ch.worker] = res.threadKeys;
    this.restoredCounters = { ...this.restoredCounters, ...res.counters };
    return res.restored;
  }

  push(messages: RawMessage[]): void {
    for (const m of messages) {
      if (!(m.partition >= 0 && m.partition < this.config.partitions)) {
        this.events.onUnplaceable(m);
        continue;
      }
      const ch = this.channels[this.shardOf(m.partition)];
      let b = ch.builder;
      const len = m.value.length;
      if (b && b.used + len > b.bytes.length) {
        this.flush(ch);
        b = null;
      }
      if (!b) {
        const size = Math.max(ch.nextSlabBytes, len);
        const reuse = size === this.config.slabBytes && ch.spare.length > 0;
        if (reuse) this.stats.slabsReused++;
        const buf = reuse ? ch.spare.pop()! : new SharedArrayBuffer(size);
        b = ch.builder = { buf, bytes: new Uint8Array(buf), used: 0, index: [] };
      }
      b.bytes.set(m.value, b.used);
      b.index.push(m.partition, m.topic, m.offset, b.used, len);
      b.used += len;
      if (b.used >= this.config.slabBytes) this.flush(ch);
    }
    if (!this.lingerTimer) this.lingerTimer = setTimeout(() => this.flushAll(), this.config.slabLingerMs);
  }

  flushAll(): void {
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    for (const ch of this.channels) if (ch.builder && ch.builder.index.length) this.flush(ch);
  }

  private flush(ch: ShardChannel): void {
    const b = ch.builder;
    ch.builder = null;
    if (!b || b.index.length === 0) return;
    // Twice the recent fill (a moving average over ~16 slabs), in powers of two: full slabs at a
    // high rate keep the configured size, an occasional small linger flush does not shrink it.
    ch.avgSlabUsed += (b.used - ch.avgSlabUsed) / 16;
    let next = Math.min(MIN_SLAB_BYTES, this.config.slabBytes);
    while (next < this.config.slabBytes && next < ch.avgSlabUsed * 2) next *= 2;
    ch.nextSlabBytes = Math.min(next, this.config.slabBytes);
    const sent: Sent = { seq: ++ch.seq, slab: b.buf, index: Float64Array.from(b.index), bytes: b.used };
    ch.retained.push(sent);
    ch.retainedBytes += sent.bytes;
    this.stats.slabs++;
    this.stats.bytes += sent.bytes;
    // While a shard recovers, new slabs wait in `retained`: the replay sends them in order.
    if (!ch.recovering) this.send(ch, sent);
    else ch.held++;
    this.updateBackpressure();
  }

  private send(ch: ShardChannel, sent: Sent, fault?: BatchTask['fault']): void {
    const gen = ch.gen;
    // Ask for a commit when much is held for replay: it bounds the retained memory. Once: the
    // batches queued behind the asking one are committed with it or by the next interval.
    const asked = ch.commitAsked !== null && ch.commitAsked.gen === gen;
    const commit = !asked && ch.retainedBytes > this.config.maxRetainedBytesPerShard;
    if (commit) ch.commitAsked = { gen, seq: sent.seq };
    const task: BatchTask = { op: 'batch', shard: ch.shard, gen, seq: sent.seq, slab: sent.slab, index: sent.index, commit, fault };
    ch.inFlight++;
    ch.lastActivity = Date.now();
    this.run(ch, task).then(
      (res) => {
        ch.inFlight--;
        this.onResult(ch, res as ShardResult);
      },
      (err: Error) => {
        ch.inFlight--;
        this.onFailure(ch, gen, err);
      },
    );
  }

  /** Runs a shard's tasks one at a time, in the order they were submitted. */
  private run(ch: ShardChannel, task: ShardTask): Promise<unknown> {
    return new Promise((done, fail) => {
      ch.queue.push({ task, done, fail });
      this.pump(ch);
    });
  }

  private pump(ch: ShardChannel): void {
    if (ch.running) return;
    const next = ch.queue.shift();
    if (!next) return;
    ch.running = true;
    const handed = this.handed[ch.worker];
    handed.push(next.task);
    // The thread reads profiles from the shared index: every open, and the first batch after the index grew, carry it.
    if (this.profileIndex && (next.task.op === 'open' || next.task.op === 'batch')) {
      const index = this.profileIndex();
      if (next.task.op === 'open' || this.indexVersionHanded[ch.worker] !== index.version) {
        next.task.profileIndex = index;
        this.indexVersionHanded[ch.worker] = index.version;
      }
    }
    this.pools[ch.worker].run(next.task).then(
      (res) => {
        handed.splice(handed.indexOf(next.task), 1);
        this.waited.delete(next.task); // marked by a failure that was not its thread's death after all
        ch.running = false;
        next.done(res);
        this.pump(ch);
      },
      (err: Error) => {
        // No task error tag: the thread died (or the pool closed). With several shards' tasks on the
        // thread, any of them may have killed it: the oldest is not necessarily the one that was
        // running (an open awaiting the old runtime's close is older than the batch that ran meanwhile), so
        // none is charged with a failure that counts toward giving up; the retries still back off.
        // Charging the oldest made a sibling shard give up after a burst of deaths (seen in CI:
        // worker-failure.test.ts, "a burst of thread deaths"). The first of its tasks to hear of it marks them.
        if (decodeTaskError(err).code === undefined && !this.waited.has(next.task) && handed.length > 1) for (const t of handed) this.waited.add(t);
        const waited = this.waited.delete(next.task);
        handed.splice(handed.indexOf(next.task), 1);
        ch.running = false;
        next.fail(waited ? queuedBehind(err) : err);
        this.pump(ch);
      },
    );
  }

  private onResult(ch: ShardChannel, res: ShardResult): void {
    if (res.gen === ch.gen) {
      this.events.onResult(res);
      if (res.committed) this.onCommitted(ch, res.committed);
      if (res.recycle) this.recycleWorker(ch.worker, res.threadKeys ?? 0);
    }
    this.updateBackpressure();
    this.checkIdle();
  }

  private onCommitted(ch: ShardChannel, c: CommitInfo): Promise<number[]> | void {
    ch.failures = 0;
    ch.finalFailures = 0;
    ch.lastFailure = null;
    if (ch.commitAsked && c.seq >= ch.commitAsked.seq) ch.commitAsked = null;
    while (ch.retained.length && ch.retained[0].seq <= c.seq) {
      const sent = ch.retained.shift()!;
      ch.retainedBytes -= sent.bytes;
      if (sent.slab.byteLength === this.config.slabBytes && ch.spare.length * sent.slab.byteLength < this.config.maxRetainedBytesPerShard) ch.spare.push(sent.slab);
    }
    return this.events.onCommitted(ch.shard, c.offsets, c.counters, c.streamTimes, c.changelog);
  }

  private onFailure(ch: ShardChannel, gen: number, err: Error): void {
    if (gen !== ch.gen || this.closed || ch.recovering || ch.failed) {
      // A task of an older generation (refused, or failed after its shard was reopened), or a
      // failure while a recovery is already under way: that recovery replays everything.
      this.updateBackpressure();
      this.checkIdle();
      return;
    }
    // Invalidate every task of this generation at once: the replays queued behind the failed
    // batch must not start recoveries of their own.
    ch.gen++;
    this.stats.failures++;
    ch.failures++;
    ch.lastFailure = err;
    // Stale refusals (sibling shards of a thread that died) and retriable errors (a full store)
    // are retried without limit; anything else, a thread that died included, gives up after a
    // few attempts without a commit in between (a batch that kills its worker every time).
    const { code, retriable: flagged } = decodeTaskError(err);
    const retriable = flagged || code === 'ERR_SHARD_STALE';
    if (!retriable) ch.finalFailures++;
    if (ch.finalFailures > MAX_NON_RETRIABLE_FAILURES) {
      // The same batch keeps failing for a reason a retry will not fix: stop, keep the source
      // paused (nothing is committed past this point), and say so in health.
      ch.failed = true;
      this.events.onShardFailure(ch.shard, err, false);
      this.updateBackpressure();
      return;
    }
    ch.recovering = this.recover(ch).then(
      () => {
        ch.recovering = null;
        this.events.onShardFailure(ch.shard, err, true);
        this.updateBackpressure();
        this.checkIdle();
      },
      (e2: Error) => {
        ch.recovering = null;
        this.events.onShardFailure(ch.shard, e2, false);
      },
    );
    this.updateBackpressure();
  }

  /** Reopen the shard from its last commit (new generation) and replay everything since. */
  private async recover(ch: ShardChannel): Promise<void> {
    // A failure that repeats (a full disk or map fails every commit) must not become a busy
    // crash loop: consumption stays paused (the shard is recovering) and each retry waits longer.
    if (ch.failures > 1) await this.sleep(Math.min(30_000, 100 * 2 ** (ch.failures - 2)));
    if (this.closed) throw new Error('dispatcher closed');
    await this.reopenShard(ch);
    this.stats.replays += ch.retained.length;
    ch.held = 0;
    for (const sent of ch.retained) this.send(ch, sent);
  }

  /** Opens the shard from its last commit with a new generation, retrying until it opens or the dispatcher closes. */
  private async reopenShard(ch: ShardChannel): Promise<void> {
    let delay = 50;
    for (;;) {
      try {
        await this.openShard(ch);
        return;
      } catch (e) {
        if (this.closed) throw e;
        await this.sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  /**
   * Replaces worker thread `w` by a fresh one: it has interned more keys than config.workerMaxKeys
   * allows, and interned ids (with the per-user records behind them) live as long as their thread.
   * Its shards take no new slabs (they wait in `retained`, counted against the in-flight bound,
   * while the other threads' shards go on), commit what they were sent, and are reopened from that commit on the new thread, which interns
   * only the keys their state still holds (open windows and sessions). Then the slabs that arrived
   * meanwhile are sent. Nothing rests on the commits succeeding: whatever they did not cover is
   * replayed from `retained`, exactly as after a failure.
   */
  private recycleWorker(w: number, keysBefore: number): void {
    // One thread at a time, so the others keep processing (they grow alike, and would otherwise
    // all stop together); the next commit of a thread still over its limit asks again.
    if (this.closed || this.recycling.size > 0) return;
    const channels = this.channels.filter((ch) => ch.worker === w);
    // A shard recovering or given up: not now (the thread's next commit asks again).
    if (channels.some((ch) => ch.recovering !== null || ch.failed)) return;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    for (const ch of channels) {
      ch.recovering = gate;
      ch.recycling = true;
    }
    this.updateBackpressure();
    const t0 = performance.now();
    const run = async () => {
      // The new thread starts (loads its modules) while the old one finishes its shards' batches.
      const fresh = this.newPool();
      const last = await Promise.all(channels.map((ch) => this.commitShard(ch)));
      // What the old thread held in the end (it went on with the batches sent before the request).
      for (const res of last) if (res?.threadKeys !== undefined) keysBefore = Math.max(keysBefore, res.threadKeys);
      if (this.closed) {
        await fresh.destroy();
        return;
      }
      // The stores close in their thread before it ends. (lmdb-js also frees the read slots of a
      // thread that is terminated, checked on 3.5, but the orderly path does not rest on that.)
      await Promise.all(channels.map((ch) => this.run(ch, { op: 'close', shard: ch.shard, gen: ch.gen }).catch(() => undefined)));
      const old = this.pools[w];
      this.pools[w] = fresh;
      this.indexVersionHanded[w] = -1; // the new thread has no index yet (its opens carry it)
      await old.destroy();
      this.stats.recycles++;
      // Every shard opens before any slab is sent: the new thread measures the keys its shards'
      // state restored before its first batch (shard-worker.ts).
      for (const ch of channels) await this.reopenShard(ch);
      for (const ch of channels) {
        ch.held = 0;
        for (const sent of ch.retained) this.send(ch, sent);
      }
      this.recycled.push({ worker: w, keysBefore, keysAfter: this.keysAtOpen[w] ?? 0, ms: Math.round(performance.now() - t0), at: Date.now() });
      if (this.recycled.length > 100) this.recycled.shift();
    };
    this.recycling.set(w, run().then(
      () => undefined,
      (err: Error) => {
        if (!this.closed) for (const ch of channels) this.events.onShardFailure(ch.shard, err, false);
      },
    ).finally(() => {
      this.recycling.delete(w);
      for (const ch of channels) {
        ch.recovering = null;
        ch.recycling = false;
      }
      release();
      this.updateBackpressure();
      this.checkIdle();
    }));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms).unref());
  }

  /**
   * Pauses the source when the shards together hold shards x maxInFlightPerShard slabs, or one shard
   * four times its share. The source pauses as a whole, so a per-shard bound let one shard's long
   * commit (300 ms when a million users pass through) hold back every other shard: the other worker
   * ran dry and waited 30 % of the time. Now a committing shard's slabs queue up while the others'
   * still flow; the memory bound (the total) is unchanged.
   */
  private updateBackpressure(): void {
    // A shard whose thread is being replaced holds its new slabs back: they count as in flight
    // (the memory bound), but the source keeps feeding the other threads' shards.
    const over = sourceMustPause(this.channels.map((ch) => (ch.recycling ? { inFlight: ch.inFlight + ch.held, recovering: null, failed: false } : ch)), this.config.maxInFlightPerShard);
    if (over !== this.paused) {
      this.paused = over;
      this.events.onBackpressure(over);
    }
  }

  /** Idle shards with uncommitted slabs get a commit task (commit interval applies to quiet shards too). */
  private commitIdle(): void {
    const now = Date.now();
    for (const ch of this.channels) {
      if (ch.inFlight === 0 && !ch.recovering && ch.retained.length && now - ch.lastActivity >= this.config.commitIntervalMs) this.commitShard(ch);
    }
  }

  /** Commits the shard after the tasks before it; resolves with the commit's result (undefined when it failed). */
  private commitShard(ch: ShardChannel): Promise<ShardResult | undefined> {
    const gen = ch.gen;
    const seq = ch.seq;
    ch.inFlight++;
    ch.lastActivity = Date.now();
    return this.run(ch, { op: 'commit', shard: ch.shard, gen, seq }).then(
      (r) => {
        const res = r as ShardResult;
        ch.inFlight--;
        if (gen === ch.gen && res.committed) this.onCommitted(ch, res.committed);
        if (gen === ch.gen && res.recycle) this.recycleWorker(ch.worker, res.threadKeys ?? 0);
        this.checkIdle();
        return res;
      },
      (err: Error) => {
        ch.inFlight--;
        this.onFailure(ch, gen, err);
        return undefined;
      },
    );
  }

  /**
   * Scaled out: writes state of an owned partition from the main thread (alert statuses, global
   * alerts) and commits its shard at once, in order with the shard's batches. Resolves when the
   * commit is durable (its changelog records are then on their way: onCommitted has run), with the
   * commit's changelog acknowledgement (scaled out). A partition not loaded here is refused with
   * ERR_PARTITION_NOT_OWNED, nothing written.
   */
  async commitWrites(partition: number, writes: Array<[StoreKey, unknown]>): Promise<Promise<number[]> | void> {
    const ch = this.channels[this.shardOf(partition)];
    for (let attempt = 0; ; attempt++) {
      if (ch.recovering) await ch.recovering.catch(() => undefined);
      if (ch.failed) throw new Error(`shard ${ch.shard} has given up (${ch.lastFailure?.message ?? 'unknown error'})`, { cause: ch.lastFailure ?? undefined });
      if (!ch.owned.has(partition)) throw Object.assign(new Error(`partition ${partition} is not owned by this instance (any more)`), { code: 'ERR_PARTITION_NOT_OWNED' });
      const gen = ch.gen;
      ch.inFlight++;
      ch.lastActivity = Date.now();
      try {
        const res = (await this.run(ch, { op: 'commit', shard: ch.shard, gen, seq: ch.seq, writes })) as ShardResult;
        ch.inFlight--;
        const ack = gen === ch.gen && res.committed ? this.onCommitted(ch, res.committed) : undefined;
        this.checkIdle();
        return ack;
      } catch (e) {
        ch.inFlight--;
        const { code } = decodeTaskError(e as Error);
        if (code === 'ERR_PARTITION_NOT_OWNED') {
          this.checkIdle();
          throw Object.assign(new Error(`partition ${partition} is not owned by this instance (any more)`, { cause: e }), { code });
        }
        if (code !== 'ERR_SHARD_STALE') this.onFailure(ch, gen, e as Error);
        else this.checkIdle();
        if (attempt >= 20) throw e;
        await this.sleep(50);
      }
    }
  }

  /** True while any shard is recovering or has given up (its data is waiting, not absent). */
  get stalled(): boolean {
    return this.channels.some((ch) => ch.recovering !== null || ch.failed);
  }

  get busy(): boolean {
    return this.channels.some((ch) => !ch.failed && (ch.inFlight > 0 || ch.recovering !== null || (ch.builder?.index.length ?? 0) > 0));
  }

  private checkIdle(): void {
    if (this.busy) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Waits until every slab is processed. */
  async idle(): Promise<void> {
    this.flushAll();
    if (!this.busy) return;
    await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /** Processes everything sent so far and commits every shard. */
  async drain(): Promise<void> {
    for (;;) {
      await this.idle();
      await Promise.all(this.channels.filter((ch) => !ch.failed).map((ch) => this.commitShard(ch)));
      await this.idle();
      if (this.channels.every((ch) => ch.retained.length === 0 || ch.failed)) return;
    }
  }

  /**
   * Processes what was sent for these partitions and commits their shards (a rebalance takes
   * them away). A shard that is recovering or has given up is skipped: its partitions' offsets
   * stay at the last durable commit, so the next owner re-reads from there (nothing lost).
   */
  async commitPartitions(partitions: number[]): Promise<void> {
    const channels = [...new Set(partitions.map((p) => this.channels[this.shardOf(p)]))].filter((ch) => ch && !ch.failed && ch.recovering === null);
    for (const ch of channels) if (ch.builder && ch.builder.index.length) this.flush(ch);
    await Promise.all(channels.map((ch) => this.commitShard(ch)));
  }

  /**
   * Runs a membership task on a partition's shard at its current generation; a shard that is
   * recovering is waited for, and a task refused because the shard was reopened meanwhile is retried.
   */
  private async membership(partition: number, make: (ch: ShardChannel) => ShardTask): Promise<MembershipResult> {
    const ch = this.channels[this.shardOf(partition)];
    for (let attempt = 0; ; attempt++) {
      if (ch.recovering) await ch.recovering.catch(() => undefined);
      if (ch.failed) throw new Error(`shard ${ch.shard} has given up (${ch.lastFailure?.message ?? 'unknown error'}): partition ${partition} cannot be loaded`, { cause: ch.lastFailure ?? undefined });
      try {
        return (await this.run(ch, make(ch))) as MembershipResult;
      } catch (e) {
        if (attempt >= 20 || decodeTaskError(e as Error).code !== 'ERR_SHARD_STALE') throw e;
        await this.sleep(50);
      }
    }
  }

  /** The committed meta of each partition in the local store. */
  async readMetas(partitions: number[]): Promise<Record<number, PartitionMeta | null>> {
    const out: Record<number, PartitionMeta | null> = {};
    await Promise.all(partitions.map(async (p) => {
      const r = await this.membership(p, (ch) => ({ op: 'metas', shard: ch.shard, gen: ch.gen, partitions: [p] }));
      out[p] = r.metas?.[p] ?? null;
    }));
    return out;
  }

  /** Writes restored changelog records of a partition that is not loaded into its shard's store. */
  async restoreChunk(partition: number, reset: boolean, keys: string[], values: Array<Uint8Array | null>): Promise<void> {
    await this.membership(partition, (ch) => ({ op: 'restore', shard: ch.shard, gen: ch.gen, partition, reset, keys, values }));
  }

  /** Loads assigned partitions into their shards; returns the offsets and counters their state holds. */
  async loadPartitions(partitions: number[]): Promise<{ offsets: OffsetMap; counters: Record<number, PartitionCounters> }> {
    const offsets: OffsetMap = {};
    const counters: Record<number, PartitionCounters> = {};
    await Promise.all(partitions.map(async (p) => {
      const r = await this.membership(p, (ch) => ({ op: 'load', shard: ch.shard, gen: ch.gen, partitions: [p] }));
      this.channels[this.shardOf(p)].owned.add(p);
      offsets[p] = r.offsets?.[p] ?? {};
      if (r.counters?.[p]) counters[p] = r.counters[p];
    }));
    return { offsets, counters };
  }

  /** Drops given-up partitions from their shards' memory (call after commitPartitions). */
  async releasePartitions(partitions: number[]): Promise<void> {
    await Promise.all(partitions.map(async (p) => {
      const ch = this.channels[this.shardOf(p)];
      ch.owned.delete(p);
      // A shard that has given up holds nothing to release (it reopens without the partition).
      if (!ch.failed) await this.membership(p, (c) => ({ op: 'release', shard: c.shard, gen: c.gen, partitions: [p] }));
    }));
  }

  /** Partitions loaded in this process (scaled out), or every partition. */
  ownedPartitions(): number[] {
    if (!this.config.changelog) return Array.from({ length: this.config.partitions }, (_, p) => p);
    return this.channels.flatMap((ch) => [...ch.owned]).sort((a, b) => a - b);
  }

  /** Test hook: the next slab of `shard` fails in its worker ('throw') or kills the thread ('exit'). */
  injectFault(shard: number, fault: 'throw' | 'exit'): void {
    const ch = this.channels[shard];
    this.flushAll();
    const sent: Sent = { seq: ++ch.seq, slab: new SharedArrayBuffer(0), index: new Float64Array(0), bytes: 0 };
    ch.retained.push(sent);
    this.send(ch, sent, fault);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    if (this.commitTimer) clearInterval(this.commitTimer);
    await Promise.all(this.recycling.values());
    await Promise.all(this.channels.map((ch) => this.run(ch, { op: 'close', shard: ch.shard, gen: ch.gen }).catch(() => undefined)));
    await Promise.all(this.pools.map((p) => p.destroy()));
  }

  channelInfo(): Array<{ shard: number; worker: number; partitions: number[]; inFlight: number; retained: number; gen: number; recovering: boolean; recycling: boolean; failed: boolean; failures: number; lastFailure: string | null }> {
    return this.channels.map((c) => ({
      shard: c.shard, worker: c.worker, partitions: c.partitions, inFlight: c.inFlight, retained: c.retained.length, gen: c.gen,
      recovering: c.recovering !== null && !c.recycling, recycling: c.recycling, failed: c.failed, failures: c.failures, lastFailure: c.lastFailure ? `${decodeTaskError(c.lastFailure).code ?? 'ERR'}: ${c.lastFailure.message}` : null,
    }));
  }
}
