import { ConfigError, parseEngineConfig, type EngineConfig, type EngineOptions } from './config.js';
import { ShardDispatcher } from './dispatch/dispatcher.js';
import type { EventSource, OffsetMap } from './source/types.js';
import { MemorySink, type OutputSink } from './sink/sink.js';
import { AlertStore } from './alerts/alert-store.js';
import { EngineError } from './errors.js';
import { checkLayout } from './state/layout.js';
import { WebhookNotifier } from './alerts/notifier.js';
import { QueryLayer } from './query/query.js';
import { ReferenceStore } from './state/reference-store.js';
import { GLOBAL_ALERTS_OUTBOX_KEY, GLOBAL_ALERTS_PROGRESS_KEY, GlobalWindowAlerts, type GlobalAlertProgress } from './global-alerts.js';
import type { LivePartials } from './kafka/live-partials.js';
import type { PartitionOwner } from './kafka/instances.js';
import type { StoreKey } from './state/shard-store.js';
import type { Alert } from './codec/types.js';
import type { ShardResult } from './workers/protocol.js';
import type { PartitionCounters } from './state/shard-store.js';
import type { ChangelogBatch } from './state/changelog-codec.js';
import type { ChangelogRestorer, ChangelogWriter, RestoreOutcome } from './kafka/changelog.js';

/**
 * Scaled out (several processes in one consumer group): the changelog writer and restorer. With
 * them, a commit's input offsets reach Kafka only after its changelog transaction committed, and
 * an assigned partition is restored from the changelog before it is processed.
 */
export interface ScaleOut {
  writer: ChangelogWriter;
  restorer: ChangelogRestorer;
}

export interface EngineMetrics {
  messages: number;
  skippedMessages: number;
  events: number;
  eventsBySource: Record<string, number>;
  late: Record<string, number>;
  deadLetters: number;
  unknownUsers: number;
  unknownCurrencies: number;
  outputs: number;
  alerts: number;
  commits: number;
  shardFailures: number;
  batchMs: number[];
  /** Per shard commit (latest 10,000): LMDB transaction time and records written. */
  commitMs: number[];
  commitWrites: number[];
  /** Sum over worker threads of their V8 heap in use (latest report per shard's thread). */
  workerHeapBytes: number;
  /** Sum over worker threads of the keys they have interned (latest report; see config.workerMaxKeys). */
  workerKeys: number;
  /** Highest key count a worker thread reported (since start). */
  workerKeysPeak: number;
  /** Sum over worker threads of their per-key arrays off the JS heap (latest report). */
  workerKeyBytes: number;
}

const SOURCE_NAMES = ['NONE', 'WEB', 'MOBILE', 'TRANSACTION', 'IOT', 'USER_ACTION'];

/** A figure each worker thread reports with its commits: the latest per thread, summed over threads. */
class PerWorker {
  private readonly latest = new Map<number, number>();

  /** Records worker's latest value; returns the sum over the workers. */
  report(worker: number, value: number): number {
    this.latest.set(worker, value);
    let sum = 0;
    for (const v of this.latest.values()) sum += v;
    return sum;
  }
}

/** A change the dashboard should show: a tile or window touched by the last batches. */
export interface Delta {
  pipeline: string;
  partition: number;
  windowStart: number;
}

export type DeltaListener = (changed: Delta[], alerts: Alert[]) => void;

/**
 * The engine: a source feeding the shard dispatcher, outputs to a sink, alerts to the alert
 * store and the webhook, a query layer over the committed state. Offsets go back to the source
 * only once the shard's LMDB commit holding them is durable.
 */
export class Engine {
  readonly config: EngineConfig;
  readonly dispatcher: ShardDispatcher;
  readonly alertStore: AlertStore;
  readonly notifier: WebhookNotifier;
  readonly query: QueryLayer;
  readonly globalAlerts: GlobalWindowAlerts;
  readonly metrics: EngineMetrics = {
    messages: 0, skippedMessages: 0, events: 0, eventsBySource: {}, late: {}, deadLetters: 0, unknownUsers: 0, unknownCurrencies: 0,
    outputs: 0, alerts: 0, commits: 0, shardFailures: 0, batchMs: [], commitMs: [], commitWrites: [], workerHeapBytes: 0,
    workerKeys: 0, workerKeysPeak: 0, workerKeyBytes: 0,
  };
  private readonly workerHeap = new PerWorker();
  private readonly workerKeys = new PerWorker();
  private readonly workerKeyBytes = new PerWorker();
  private readonly partitionActivity: number[];
  private readonly deltaListeners = new Set<DeltaListener>();
  /** Per shard: windows changed by processed batches whose commit has not run yet. */
  private readonly uncommittedChanges = new Map<number, Delta[]>();
  private readonly uncommittedAlerts = new Map<number, Alert[]>();
  private readonly reference: ReferenceStore;
  private readonly batchListeners = new Set<(ms: number) => void>();
  private globalTimer: NodeJS.Timeout | null = null;
  private ended: Promise<void>;
  private resolveEnded!: () => void;
  private rejectEnded!: (e: Error) => void;
  private stopping = false;
  private sourcePaused = false;
  private readonly pendingAlertWrites = new Set<Promise<unknown>>();
  /** Commits whose changelog transactions are under way (their offsets go to Kafka after). */
  private readonly pendingChangelog = new Set<Promise<void>>();
  /** Assignments and revocations run one at a time, in the order the group decided them. */
  private membershipChain: Promise<unknown> = Promise.resolve();
  /** Scaled out: partition restores so far (newest last, bounded). */
  readonly restores: RestoreOutcome[] = [];
  /** Scaled out: per assignment, the time to restore its partitions (they are restored together). */
  readonly restoreBatches: Array<{ at: number; partitions: number; records: number; bytes: number; ms: number }> = [];
  /** Scaled out: changes of the partitions this process owns (the server's routing listens). */
  private readonly ownershipListeners = new Set<(owned: number[]) => void>();
  /** Per partition, the exactly-once counters of the last durable commit. */
  readonly committedCounters: Record<number, PartitionCounters> = {};
  readonly committedStreamTimes: Record<number, number> = {};
  readonly startedAt = Date.now();
  lastError: Error | null = null;
  /** Scaled out: every partition's committed dashboard partials (read from Kafka), and a query layer over them. */
  private live: LivePartials | null = null;
  liveQuery: QueryLayer | null = null;
  private liveOwners: () => Map<number, PartitionOwner> = () => new Map();
  private liveSince = 0;
  /** Scaled out, while this instance owns partition 0: the global window alerts, continued from partition 0's state. */
  private scaledGlobal: GlobalWindowAlerts | null = null;
  private scaledGlobalRunning: Promise<void> | null = null;
  readonly scaledGlobalStats = { evaluations: 0, alerts: 0, sent: 0, refused: 0 };

  private constructor(
    config: EngineConfig,
    readonly source: EventSource,
    readonly sink: OutputSink,
    readonly scale: ScaleOut | null = null,
  ) {
    this.config = config;
    this.alertStore = AlertStore.open(config.dataDir);
    this.notifier = new WebhookNotifier(config.webhookUrl);
    this.query = new QueryLayer(config, this.alertStore);
    // Scaled out, the stores may hold partitions another instance owns now (stale): the main
    // thread's views (health, live tiles) read only what this instance owns.
    if (scale) this.query.setRouting({ local: new Set(), remote: new Map(), unknown: 'skip' });
    this.partitionActivity = new Array(config.partitions).fill(Date.now());
    // While the engine is paused (backpressure, a recovering shard) partitions are not idle:
    // their data is waiting, so they must keep holding global windows back.
    this.globalAlerts = new GlobalWindowAlerts(config, this.query, (p) => (this.sourcePaused || this.dispatcher.stalled ? Date.now() : this.partitionActivity[p] ?? 0));
    this.ended = new Promise((res, rej) => {
      this.resolveEnded = res;
      this.rejectEnded = rej;
    });
    this.ended.catch(() => undefined);
    // The reference store of this data directory (shared with whoever else opened it in this
    // thread): its profile-change counters let the workers' profile caches follow updates.
    this.reference = ReferenceStore.open(config.dataDir);
    this.dispatcher = new ShardDispatcher(config, {
      onResult: (r) => this.onResult(r),
      onCommitted: (shard, offsets, counters, streamTimes, changelog) => {
        Object.assign(this.committedCounters, counters);
        Object.assign(this.committedStreamTimes, streamTimes);
        const written = this.onCommitted(offsets, changelog);
        // Changed windows are announced once the commit holding them is durable and the committed
        // stream time is updated: the query layer reads committed state, so a listener re-reading a
        // window on an earlier notice would get the old value and then hear nothing more about it.
        // Commits run in the shard's order after every batch before them: pending is exactly what this commit holds.
        const deltas = this.uncommittedChanges.get(shard)?.splice(0) ?? [];
        const alerts = this.uncommittedAlerts.get(shard)?.splice(0) ?? [];
        if (deltas.length || alerts.length) {
          for (const l of this.deltaListeners) l(deltas, alerts);
        }
        return written;
      },
      onBackpressure: (paused) => {
        this.sourcePaused = paused;
        if (paused) this.source.pause();
        else if (!this.stopping) this.source.resume();
      },
      onUnplaceable: (m) => {
        this.metrics.deadLetters++;
        this.lastError = new Error(`partition ${m.partition} is outside the ${config.partitions} partitions this engine runs with: the topic grew after start; restart with --partitions matching the topics`);
        this.sink.deadLetters([{ partition: m.partition, topic: m.topic, offset: m.offset, eventIndex: -1, code: 'ERR_PARTITION_UNKNOWN', reason: this.lastError.message, bytes: m.value }]);
      },
      onShardFailure: (shard, err, recovered) => {
        this.metrics.shardFailures++;
        this.lastError = err;
        if (!recovered) this.rejectEnded(new Error(`shard ${shard} could not recover: ${err.message}`, { cause: err }));
      },
    }, this.reference.profileEpochs, () => this.reference.profileIndex());
  }

  static async start(options: EngineOptions, source: EventSource, sink: OutputSink = new MemorySink(), scale: ScaleOut | null = null): Promise<Engine> {
    const config = parseEngineConfig(options);
    checkLayout(config.dataDir, { partitions: config.partitions, shards: config.shards });
    if (scale && !config.changelog) throw new ConfigError('invalid engine options: options.changelog must be true when the engine is started with a changelog writer (scaled out)');
    if (!scale && config.changelog) throw new ConfigError('invalid engine options: options.changelog needs a changelog writer and restorer (start the engine with --changelog on the Kafka source)');
    const engine = new Engine(config, source, sink, scale);
    let restored: OffsetMap;
    try {
      restored = await engine.dispatcher.open();
    } catch (e) {
      // A shard that cannot open (a corrupt store): close the others and the worker threads before
      // the error reaches the caller, so a process that exits on it does not tear down LMDB
      // environments mid-open (that aborted the process instead of exiting with the error).
      await engine.dispatcher.close().catch(() => undefined);
      await engine.reference.close().catch(() => undefined);
      throw e;
    }
    Object.assign(engine.committedCounters, engine.dispatcher.restoredCounters);
    await source.start({
      onMessages: (msgs) => {
        const now = Date.now();
        for (const m of msgs) engine.partitionActivity[m.partition] = now;
        engine.dispatcher.push(msgs);
      },
      onEnd: () => {
        engine.dispatcher.drain().then(() => {
          engine.evaluateGlobal();
          engine.resolveEnded();
        }, (e: Error) => engine.rejectEnded(e));
      },
      onError: (err) => {
        engine.lastError = err;
      },
      onPartitionsRevoked: (partitions) => (scale ? engine.revoke(partitions) : engine.dispatcher.commitPartitions(partitions)),
      ...(scale ? { onPartitionsAssigned: (partitions: number[]) => engine.assign(partitions) } : {}),
    }, restored);
    engine.globalTimer = setInterval(() => engine.evaluateGlobal(), 1000);
    engine.globalTimer.unref();
    return engine;
  }

  /** Resolves when a bounded source has ended and everything it sent is processed and committed. */
  finished(): Promise<void> {
    return this.ended.then(() => Promise.all([...this.pendingAlertWrites])).then(() => {
      // Reads from here on see the final commits, not a snapshot taken before them.
      this.query.fresh();
    });
  }

  /** Exactly-once totals over all partitions, from committed state (replays never count twice). */
  committedTotals(): PartitionCounters {
    const t: PartitionCounters = { events: 0, deadLetters: 0, late: {} };
    for (const c of Object.values(this.committedCounters)) {
      t.events += c.events;
      t.deadLetters += c.deadLetters;
      for (const [k, v] of Object.entries(c.late)) t.late[k] = (t.late[k] ?? 0) + v;
    }
    return t;
  }

  /** Called with the worker time of every processed slab (for latency histograms). */
  onBatch(listener: (ms: number) => void): () => void {
    this.batchListeners.add(listener);
    return () => this.batchListeners.delete(listener);
  }

  onDeltas(listener: DeltaListener): () => void {
    this.deltaListeners.add(listener);
    return () => this.deltaListeners.delete(listener);
  }

  private onResult(r: ShardResult): void {
    const m = this.metrics;
    const c = r.counters;
    m.messages += c.messages;
    m.skippedMessages += c.skippedMessages;
    m.events += c.events;
    c.eventsBySource.forEach((n, i) => {
      if (n) m.eventsBySource[SOURCE_NAMES[i]] = (m.eventsBySource[SOURCE_NAMES[i]] ?? 0) + n;
    });
    for (const [k, v] of Object.entries(c.late)) m.late[k] = (m.late[k] ?? 0) + v;
    m.deadLetters += c.deadLetters;
    m.unknownUsers += c.unknownUsers;
    m.unknownCurrencies += c.unknownCurrencies;
    m.outputs += r.outputs.length;
    if (r.processingMs) {
      for (const l of this.batchListeners) l(r.processingMs);
      m.batchMs.push(r.processingMs);
      if (m.batchMs.length > 10_000) m.batchMs.splice(0, 5_000);
    }
    if (r.committed) {
      m.commitMs.push(r.committed.durationMs);
      m.commitWrites.push(r.committed.writes);
      if (m.commitMs.length > 10_000) {
        m.commitMs.splice(0, 5_000);
        m.commitWrites.splice(0, 5_000);
      }
    }
    const worker = r.shard % this.config.workers;
    if (r.heapUsedBytes) m.workerHeapBytes = this.workerHeap.report(worker, r.heapUsedBytes);
    if (r.threadKeys !== undefined) {
      m.workerKeys = this.workerKeys.report(worker, r.threadKeys);
      if (r.threadKeys > m.workerKeysPeak) m.workerKeysPeak = r.threadKeys;
    }
    if (r.threadKeyBytes !== undefined) m.workerKeyBytes = this.workerKeyBytes.report(worker, r.threadKeyBytes);
    if (r.outputs.length) this.sink.outputs(r.outputs);
    if (r.deadLetters.length) this.sink.deadLetters(r.deadLetters);
    if (r.alerts.length) this.publishAlerts(r.alerts, false);
    if (r.changed.length) {
      let pending = this.uncommittedChanges.get(r.shard);
      if (!pending) this.uncommittedChanges.set(r.shard, (pending = []));
      for (const [pipeline, partition, windowStart] of r.changed) pending.push({ pipeline, partition, windowStart });
    }
    // A worker's alerts are stored with its shard's state: announced with the commit that holds them.
    if (r.alerts.length) {
      let pending = this.uncommittedAlerts.get(r.shard);
      if (!pending) this.uncommittedAlerts.set(r.shard, (pending = []));
      pending.push(...r.alerts);
    }
  }

  /** Worker alerts are already stored with their shard's state; global ones are stored here. */
  private publishAlerts(alerts: Alert[], global: boolean): Promise<boolean> {
    this.metrics.alerts += alerts.length;
    this.sink.alerts(alerts);
    return this.storeAlerts(alerts, global);
  }

  /**
   * Stores global alerts in the alert store and marks critical alerts as notified, then sends the
   * fresh ones to the webhook. Resolves to whether the writes succeeded: a failed write (a full
   * disk) keeps the alerts for the next global evaluation, which writes them again (ids are
   * deterministic: a rewrite updates), so no alert and no notification is lost.
   */
  private storeAlerts(alerts: Alert[], global: boolean): Promise<boolean> {
    const critical = alerts.filter((a) => a.severity === 'CRITICAL');
    const w = (global ? this.alertStore.putGlobal(alerts) : Promise.resolve())
      .then(() => (critical.length ? this.alertStore.markNotified(critical.map((a) => a.alertId)) : []))
      .then((fresh) => {
        const ids = new Set(fresh);
        for (const a of critical) if (ids.has(a.alertId)) this.notifier.notify(a);
        return true;
      }, (e: Error) => {
        this.lastError = e;
        this.unstoredAlerts.push({ alerts, global });
        return false;
      });
    this.pendingAlertWrites.add(w);
    void w.finally(() => this.pendingAlertWrites.delete(w));
    return w;
  }

  /** Alerts whose store writes failed, written again at the next global evaluation. */
  private unstoredAlerts: Array<{ alerts: Alert[]; global: boolean }> = [];

  private retryUnstoredAlerts(): void {
    for (const { alerts, global } of this.unstoredAlerts.splice(0)) {
      void this.storeAlerts(alerts, global).then((stored) => {
        if (stored && global) this.announceGlobal(alerts);
      });
    }
  }

  private announceGlobal(alerts: Alert[]): void {
    this.alertStoreWritten = true;
    for (const l of this.deltaListeners) l([], alerts);
  }

  /** Scaled out, returns the changelog write's outcome: the partitions it could not write (fenced). */
  private onCommitted(offsets: OffsetMap, changelog?: ChangelogBatch): Promise<number[]> | undefined {
    this.metrics.commits++;
    if (!this.scale || !changelog) {
      if (this.pendingChangelog.size === 0) this.source.commit(offsets);
      else void Promise.all([...this.pendingChangelog]).then(() => this.source.commit(offsets));
      return undefined;
    }
    // The input offsets reach Kafka only once the changelog holds the state that counted them.
    const written = this.scale.writer.write(changelog);
    const ack = written.then(() => this.source.commit(offsets));
    this.pendingChangelog.add(ack);
    void ack.finally(() => this.pendingChangelog.delete(ack));
    return written;
  }

  /** Partitions this process processes now (all of them unless scaled out). */
  ownedPartitions(): number[] {
    return this.dispatcher.ownedPartitions();
  }

  onOwnership(listener: (owned: number[]) => void): () => void {
    this.ownershipListeners.add(listener);
    return () => this.ownershipListeners.delete(listener);
  }

  private membership<T>(op: () => Promise<T>): Promise<T> {
    const next = this.membershipChain.then(op, op);
    this.membershipChain = next.catch(() => undefined);
    return next;
  }

  /**
   * Scaled out, partitions assigned to this process: fence their previous owner (transactional
   * producers), restore each from the changelog unless the local store is current, load them into
   * their shards, and return the offsets their state counted.
   */
  assign(partitions: number[]): Promise<OffsetMap> {
    return this.membership(async () => {
      const scale = this.scale!;
      await scale.writer.openPartitions(partitions);
      const metas = await this.dispatcher.readMetas(partitions);
      // Test-only control (RTA_TEST_SKIP_RESTORE=1): take the local store as it is, to show what a
      // missing restore costs (test/scale/changelog-restore.test.ts).
      const skip = process.env.RTA_TEST_SKIP_RESTORE === '1';
      const requests = skip ? [] : partitions.map((p) => ({ partition: p, local: metas[p] ?? null, checkpoint: scale.writer.checkpoint[p] }));
      const t0 = performance.now();
      const outcomes = requests.length ? await scale.restorer.restore(requests, (p, reset, keys, values) => this.dispatcher.restoreChunk(p, reset, keys, values)) : [];
      for (const outcome of outcomes) {
        if (outcome.lastMetaOffset !== null) scale.writer.setCheckpoint(outcome.partition, outcome.lastMetaOffset);
        this.restores.push(outcome);
      }
      if (this.restores.length > 1000) this.restores.splice(0, this.restores.length - 500);
      if (outcomes.length) {
        this.restoreBatches.push({ at: Date.now(), partitions: outcomes.length, records: outcomes.reduce((n, o) => n + o.records, 0), bytes: outcomes.reduce((n, o) => n + o.bytes, 0), ms: performance.now() - t0 });
        if (this.restoreBatches.length > 1000) this.restoreBatches.splice(0, 500);
      }
      const { offsets, counters } = await this.dispatcher.loadPartitions(partitions);
      for (const p of partitions) {
        delete this.committedCounters[p];
        delete this.committedStreamTimes[p];
      }
      Object.assign(this.committedCounters, counters);
      this.notifyOwnership();
      return offsets;
    });
  }

  /**
   * Scaled out, partitions taken away: process and commit what was handed over for them, wait
   * until the changelog holds it, drop them from the shards' memory, close their producers.
   */
  revoke(partitions: number[]): Promise<void> {
    return this.membership(async () => {
      const scale = this.scale!;
      await this.dispatcher.commitPartitions(partitions);
      await Promise.all([...this.pendingChangelog]);
      await this.dispatcher.releasePartitions(partitions);
      await scale.writer.closePartitions(partitions);
      for (const p of partitions) {
        delete this.committedCounters[p];
        delete this.committedStreamTimes[p];
      }
      this.notifyOwnership();
    });
  }

  private notifyOwnership(): void {
    const owned = this.ownedPartitions();
    this.query.setRouting({ local: new Set(owned), remote: new Map(), unknown: 'skip' });
    for (const l of this.ownershipListeners) l(owned);
  }

  /**
   * Scaled out: the live partials of every partition (engine/kafka/live-partials.ts) and who owns
   * what (the instance registry). The global window alerts are evaluated from them by the owner of
   * partition 0.
   */
  attachLive(live: LivePartials, owners: () => Map<number, PartitionOwner>): void {
    this.live = live;
    this.liveOwners = owners;
    this.liveSince = Date.now();
    const q = new QueryLayer(this.config);
    q.setRouting({ local: new Set(), remote: new Map(live.views.map((v) => [v.partition, v])), unknown: 'throw' });
    this.liveQuery = q;
    live.keepFrom(() => {
      const pr = this.scaledGlobal?.progress();
      const from = Math.min(pr?.revenue ?? Infinity, pr?.errors ?? Infinity);
      return Number.isFinite(from) ? from : null;
    });
  }

  /**
   * Scaled out: writes state of an owned partition from the main thread (alert statuses, global
   * alerts) and commits it at once; resolves when the changelog holds it, so the write moves with
   * the partition. Refused (code ERR_PARTITION_NOT_OWNED) when this instance does not own it.
   */
  async writeState(partition: number, writes: Array<[StoreKey, unknown]>): Promise<void> {
    if (!this.scale) throw new EngineError('ERR_NOT_SCALED_OUT', 'writeState is for scaled-out engines (--changelog)', false);
    const written = await this.dispatcher.commitWrites(partition, writes);
    // Durable means in the changelog too: a fenced producer (another process took the partition
    // while this one still had it loaded) commits locally but its transaction never happens, and
    // the partition's next owner would not have the write.
    const skipped = written ? await written : [partition];
    if (skipped.includes(partition)) {
      throw new EngineError('ERR_PARTITION_NOT_OWNED', `partition ${partition}: the write is not in the changelog (another instance owns the partition now); retry on its owner`, true);
    }
    await Promise.all([...this.pendingChangelog]);
  }

  /**
   * Scaled out: when partition p last made progress, for the global watermark's idleness rule. A
   * partition without a live owner (a rebalance) or just taken over is not idle: its data waits.
   */
  private scaledActivity(p: number): number {
    const now = Date.now();
    const owner = this.liveOwners().get(p);
    if (!owner) return now;
    if (this.ownedPartitions().includes(p) && (this.sourcePaused || this.dispatcher.stalled)) return now;
    return Math.max(this.live!.views[p].lastProgressAt, owner.since, this.liveSince);
  }

  /**
   * Scaled out, on the owner of partition 0 only: the global window alerts from every partition's
   * committed partials. Their progress (the next window of each) is written to partition 0's state
   * with the alerts, in one commit that also goes to the changelog, so an evaluation moves with
   * the partition: a new owner continues where the committed progress says, and alert ids are
   * deterministic, so a window re-evaluated after a crash updates its alert rather than adding one.
   *
   * The same commit puts the alerts in an outbox (partition 0's state too), emptied only once the
   * output topics have them: whoever owns partition 0 next sends what the outbox still holds. Sent
   * after the commit alone, a SIGKILL in between lost them for good (the next owner continues past
   * their windows); with the outbox they are sent at least once (a repeat is an upsert: same id).
   * Progress is read from the committed state at every evaluation, never kept in memory across
   * ownership changes (an instance that lost partition 0 and got it back would otherwise continue
   * from its own older progress and raise again what the other owner raised meanwhile).
   */
  private evaluateGlobalScaled(): Promise<void> {
    if (this.scaledGlobalRunning) return this.scaledGlobalRunning;
    const run = async () => {
      const live = this.live;
      if (!live || !live.ready || this.stopping || !this.liveQuery) return;
      if (!this.ownedPartitions().includes(0)) {
        this.scaledGlobal = null;
        return;
      }
      // Owned by the shard but not yet readable here: an assignment loads its partitions one by one
      // and routes this thread's reads to them only once all are loaded. Read before that, partition
      // 0's progress looked absent, and the evaluation started again from the first window, raising
      // every global alert a second time (seen in test/scale/live-dashboard.test.ts after a move).
      if (!this.query.isLocal(0)) return;
      this.scaledGlobal ??= new GlobalWindowAlerts(this.config, this.liveQuery, (p) => this.scaledActivity(p));
      const g = this.scaledGlobal;
      this.query.fresh();
      const outbox = this.query.readKey(0, GLOBAL_ALERTS_OUTBOX_KEY) as Alert[] | undefined;
      if (outbox?.length && !(await this.sendGlobalOutbox(outbox))) return;
      g.setProgress(this.query.readKey(0, GLOBAL_ALERTS_PROGRESS_KEY) as GlobalAlertProgress | undefined);
      const before = JSON.stringify(g.progress());
      let alerts: Alert[];
      try {
        alerts = g.evaluate();
      } catch (e) {
        if ((e as { code?: string }).code !== 'ERR_PARTITION_UNAVAILABLE') this.lastError = e as Error;
        return;
      }
      this.scaledGlobalStats.evaluations++;
      const progress = g.progress();
      if (!alerts.length && JSON.stringify(progress) === before) return;
      const writes: Array<[StoreKey, unknown]> = [...alerts.map((a): [StoreKey, unknown] => [[0, 'alerts', a.alertId], a]), [[0, ...GLOBAL_ALERTS_PROGRESS_KEY], progress]];
      if (alerts.length) writes.push([[0, ...GLOBAL_ALERTS_OUTBOX_KEY], alerts]);
      if (!(await this.writeGlobalState(writes))) return;
      // Test-only control (RTA_TEST_KILL_AFTER_GLOBAL_COMMIT=1): die here, the alerts committed but
      // not yet sent (test/scale/global-alerts-crash.test.ts).
      if (alerts.length && process.env.RTA_TEST_KILL_AFTER_GLOBAL_COMMIT === '1') process.kill(process.pid, 'SIGKILL');
      if (alerts.length) {
        this.scaledGlobalStats.alerts += alerts.length;
        await this.sendGlobalOutbox(alerts);
      }
    };
    this.scaledGlobalRunning = run().finally(() => {
      this.scaledGlobalRunning = null;
    });
    return this.scaledGlobalRunning;
  }

  /** Partition 0's state write of the global alerts; false when refused (moved) or failed (reported in health). */
  private async writeGlobalState(writes: Array<[StoreKey, unknown]>): Promise<boolean> {
    try {
      await this.writeState(0, writes);
      return true;
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_PARTITION_NOT_OWNED') this.scaledGlobalStats.refused++;
      else this.lastError = e as Error;
      return false;
    }
  }

  /** Sends committed global alerts to the output topics (and the webhook), waits for delivery, then empties the outbox. */
  private async sendGlobalOutbox(alerts: Alert[]): Promise<boolean> {
    await this.publishAlerts(alerts, false);
    try {
      await this.sink.delivered?.();
    } catch (e) {
      this.lastError = e as Error; // kept in the outbox: sent again at the next evaluation
      return false;
    }
    this.scaledGlobalStats.sent += alerts.length;
    return this.writeGlobalState([[[0, ...GLOBAL_ALERTS_OUTBOX_KEY], undefined]]);
  }

  evaluateGlobal(): void {
    this.retryUnstoredAlerts();
    // Scaled out, one instance (the owner of partition 0) evaluates them over every partition's partials.
    if (this.scale) {
      void this.evaluateGlobalScaled();
      return;
    }
    try {
      // The newest commits: lmdb-js renews a thread's read snapshot only on a later timer turn, and
      // a commit that just ended (the last one of a bounded run) must close its windows now.
      this.query.fresh();
      const alerts = this.globalAlerts.evaluate();
      if (alerts.length) {
        // Announced once stored, so a listener reading the alert store sees them.
        void this.publishAlerts(alerts, true).then((stored) => {
          if (stored) this.announceGlobal(alerts);
        });
      }
      this.pruneAlertStore();
    } catch (e) {
      this.lastError = e as Error;
    }
  }

  /** Retention cutoff of the alert store's last prune, and whether alerts were stored since. */
  private alertStoreCutoff = 0;
  private alertStoreWritten = false;
  private alertStorePrunedWall = 0;

  /**
   * Retention of the alert store (one instance: global alerts, statuses, notification marks),
   * like the shards' retention of their alerts. By the slowest partition's stream time: a window
   * the shards still hold is never pruned here, so a global alert re-evaluated after a restart
   * finds its notification mark and is not notified twice. At most once a second, when the cutoff
   * moved or alerts were stored since the last prune.
   */
  private pruneAlertStore(): void {
    const wall = Date.now();
    if (wall - this.alertStorePrunedWall < 1000) return;
    const times = this.query.progress().map((p) => p.streamTime).filter((t) => t > 0);
    if (times.length === 0) return;
    const cutoff = Math.min(...times) - this.config.retentionMs;
    if (cutoff <= 0 || (cutoff <= this.alertStoreCutoff && !this.alertStoreWritten)) return;
    this.alertStoreCutoff = cutoff;
    this.alertStoreWritten = false;
    this.alertStorePrunedWall = wall;
    void this.alertStore.pruneBefore(cutoff).catch((e: unknown) => (this.lastError = e as Error));
  }

  /** Graceful stop: stop consuming, process and commit what was sent, close the stores. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.globalTimer) clearInterval(this.globalTimer);
    // Stop consuming, process and commit what was taken, hand the final offsets to the source,
    // then close it (a Kafka source commits them synchronously before leaving its group).
    this.source.pause();
    await this.dispatcher.drain();
    await Promise.all([...this.pendingChangelog]);
    await this.source.stop();
    await this.scaledGlobalRunning;
    if (this.scale) {
      await this.scale.writer.close();
      await this.scale.restorer.close();
    }
    if (!this.scale) this.evaluateGlobal();
    await this.dispatcher.close();
    this.notifier.close();
    await this.sink.close();
    await this.query.close();
    await Promise.all([...this.pendingAlertWrites]);
    await this.alertStore.close();
    await this.reference.close();
  }
}
