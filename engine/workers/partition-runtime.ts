import { EventKind, type Alert } from '../codec/types.js';
import type { EngineConfig } from '../config.js';
import { WindowedPipeline, type OutputRecord, type Pipeline, type PipelineContext, type Profile } from '../operators/api.js';
import { ActiveUsersPipeline, ErrorRatePipeline, PlatformEventsPipeline, UserActionsPipeline } from '../operators/pipelines/traffic.js';
import { RevenuePipeline } from '../operators/pipelines/revenue.js';
import { ProductsPipeline } from '../operators/pipelines/products.js';
import { GeoPipeline } from '../operators/pipelines/geo.js';
import { IotPipeline, PerformancePipeline } from '../operators/pipelines/performance.js';
import { SessionsPipeline } from '../operators/pipelines/sessions.js';
import { AccountSharingPipeline, IotThresholdPipeline, LoginFailuresPipeline, TransactionAnomalyPipeline } from '../operators/pipelines/alerts.js';
import { SequenceAuditPipeline } from '../operators/pipelines/sequence-audit.js';
import type { ScratchEvent } from './scratch.js';
import type { Vocabulary } from './symbols.js';
import type { KeyRange, PartitionCounters, PartitionMeta, StoreKey } from '../state/shard-store.js';

/** Sinks a partition writes into while a batch runs (owned by the shard runtime). */
export interface BatchSinks {
  outputs: OutputRecord[];
  alerts: Alert[];
  late: Record<string, number>;
  unknownUsers: { n: number };
  unknownCurrencies: { n: number };
}

export interface ProfileSource {
  profile(user: number): Profile;
}

/**
 * One input partition's processing state: its stream time, the offsets it has applied per topic,
 * and an instance of every analytics pipeline. State is partitioned by input partition (events
 * are keyed by user), so it can move with its partition.
 */
export class PartitionRuntime {
  streamTime = 0;
  /** Highest applied offset per topic code (applied in memory; maybe not yet committed). */
  readonly offsets: Record<string, number> = {};
  /** Counters that are part of the state: committed with it, so replays never count twice. */
  counters: PartitionCounters = { events: 0, deadLetters: 0, late: {} };
  readonly pipelines: Pipeline[];
  private readonly ctx: PipelineContext;
  /** Alerts raised since the last commit: stored with the state in the same transaction. */
  private readonly alertWrites: Alert[] = [];

  constructor(
    readonly partition: number,
    config: EngineConfig,
    vocab: Vocabulary,
    profiles: ProfileSource,
    sinks: BatchSinks,
    read: (key: StoreKey) => unknown = () => undefined,
  ) {
    const fxBySymbol: number[] = [];
    this.ctx = {
      partition,
      config,
      vocab,
      profile: (u) => {
        const p = profiles.profile(u);
        if (!p.known) sinks.unknownUsers.n++;
        return p;
      },
      fx: (c) => {
        let r = fxBySymbol[c];
        if (r === undefined) {
          r = config.fxToUsd[vocab.sym(c)] ?? NaN;
          fxBySymbol[c] = r;
        }
        if (Number.isNaN(r)) {
          sinks.unknownCurrencies.n++;
          return 1;
        }
        return r;
      },
      output: (r) => sinks.outputs.push(r),
      alert: (a) => {
        sinks.alerts.push(a);
        this.alertWrites.push(a);
      },
      read: (name, key) => read([partition, name, ...key]),
      late: (name) => {
        sinks.late[name] = (sinks.late[name] ?? 0) + 1;
        this.counters.late[name] = (this.counters.late[name] ?? 0) + 1;
      },
    };
    const c = this.ctx;
    this.pipelines = [
      (this.activeUsers = new ActiveUsersPipeline(c)), (this.platformEvents = new PlatformEventsPipeline(c)), (this.errorRate = new ErrorRatePipeline(c)),
      (this.userActions = new UserActionsPipeline(c)), (this.revenue = new RevenuePipeline(c)), (this.products = new ProductsPipeline(c)),
      (this.geo = new GeoPipeline(c)), (this.performance = new PerformancePipeline(c)), (this.iot = new IotPipeline(c)),
      (this.sessions = new SessionsPipeline(c)), (this.loginFailures = new LoginFailuresPipeline(c)), (this.accountSharing = new AccountSharingPipeline(c)),
      (this.iotThreshold = new IotThresholdPipeline(c)), (this.transactionAnomaly = new TransactionAnomalyPipeline(c)),
    ];
    this.audit = config.auditSequences ? new SequenceAuditPipeline(c) : null;
    if (this.audit) this.pipelines.push(this.audit);
  }

  /** --audit-sequences only (null otherwise: one predictable branch per event). */
  private readonly audit: SequenceAuditPipeline | null;

  private readonly activeUsers: ActiveUsersPipeline;
  private readonly platformEvents: PlatformEventsPipeline;
  private readonly errorRate: ErrorRatePipeline;
  private readonly userActions: UserActionsPipeline;
  private readonly revenue: RevenuePipeline;
  private readonly products: ProductsPipeline;
  private readonly geo: GeoPipeline;
  private readonly performance: PerformancePipeline;
  private readonly iot: IotPipeline;
  private readonly sessions: SessionsPipeline;
  private readonly loginFailures: LoginFailuresPipeline;
  private readonly accountSharing: AccountSharingPipeline;
  private readonly iotThreshold: IotThresholdPipeline;
  private readonly transactionAnomaly: TransactionAnomalyPipeline;

  /**
   * Stream time = max event timestamp seen in this partition. Each event goes to the pipelines
   * that consume its kind (each pipeline still checks what it needs), one direct call per
   * pipeline: a single loop over all fourteen would be a megamorphic call site that V8 can
   * neither inline nor cache, paid fourteen times per event. A new pipeline must be added here.
   */
  onEvent(e: ScratchEvent): void {
    if (e.ts > this.streamTime) this.streamTime = e.ts;
    const st = this.streamTime;
    const kind = e.kind;
    if (this.audit !== null) this.audit.onEvent(e, st);
    this.platformEvents.onEvent(e, st);
    if (kind === EventKind.IOT) {
      this.iot.onEvent(e, st);
      this.iotThreshold.onEvent(e, st);
      return;
    }
    this.activeUsers.onEvent(e, st);
    this.geo.onEvent(e, st);
    this.sessions.onEvent(e, st);
    this.accountSharing.onEvent(e, st);
    if (kind === EventKind.WEB || kind === EventKind.MOBILE) {
      this.errorRate.onEvent(e, st);
      this.products.onEvent(e, st);
      this.performance.onEvent(e, st);
    } else if (kind === EventKind.TRANSACTION) {
      this.revenue.onEvent(e, st);
      this.products.onEvent(e, st);
      this.transactionAnomaly.onEvent(e, st);
    } else if (kind === EventKind.USER_ACTION) {
      this.userActions.onEvent(e, st);
      this.loginFailures.onEvent(e, st);
    }
  }

  /** Names of the pipelines whose state is windows (retention deletes their old windows). */
  windowedPipelineNames(): string[] {
    return this.pipelines.filter((p) => p instanceof WindowedPipeline).map((p) => p.name);
  }

  /** Windows changed since the last call, for dashboard deltas. */
  takeChanged(out: Array<[string, number, number]>): void {
    for (const p of this.pipelines) {
      if (p.changed.size === 0) continue;
      for (const ws of p.changed) out.push([p.name, this.partition, ws]);
      p.changed.clear();
    }
  }

  /** After each message: windows and sessions whose time has come close. */
  advance(): void {
    for (const p of this.pipelines) p.onStreamTime(this.streamTime);
  }

  restore(meta: PartitionMeta | undefined, scan: (pipeline: string, range?: KeyRange) => Iterable<[StoreKey, unknown]>): void {
    if (meta) {
      this.streamTime = meta.streamTime;
      Object.assign(this.offsets, meta.offsets);
      if (meta.counters) this.counters = { ...meta.counters, late: { ...meta.counters.late } };
    }
    for (const p of this.pipelines) {
      if (p.restoresLazily) continue;
      const ranges = p.restoreRanges?.(this.streamTime);
      if (!ranges) for (const [k, v] of scan(p.name)) p.restore(k, v, this.streamTime);
      else for (const r of ranges) for (const [k, v] of scan(p.name, r)) p.restore(k, v, this.streamTime);
    }
    for (const p of this.pipelines) p.opened?.(this.streamTime);
  }

  collectWrites(write: (key: StoreKey, value: unknown) => void): void {
    const partition = this.partition;
    for (const p of this.pipelines) {
      const name = p.name;
      p.collectWrites((k, v) => write([partition, name, ...k], v));
    }
    for (const a of this.alertWrites) write([partition, 'alerts', a.alertId], a);
  }

  committed(): void {
    for (const p of this.pipelines) p.committed();
    this.alertWrites.length = 0;
  }

  /** The partition leaves this thread (shard closed, failed or reopened). */
  dispose(): void {
    for (const p of this.pipelines) p.dispose?.();
  }

  get dirtyCount(): number {
    let n = 0;
    for (const p of this.pipelines) n += p.dirtyCount;
    return n;
  }

  meta(): PartitionMeta {
    return { offsets: { ...this.offsets }, streamTime: this.streamTime, counters: { ...this.counters, late: { ...this.counters.late } } };
  }
}
