import * as hdr from 'hdr-histogram-js';
import type { EngineConfig } from '../config.js';
import { ShardStore, type PartitionMeta, type StoreKey } from '../state/shard-store.js';
import { EngineError } from '../errors.js';
import { ReferenceStore } from '../state/reference-store.js';
import { listAlerts, type AlertFilter, type AlertList, type AlertStatus, type AlertStore } from '../alerts/alert-store.js';
import { ALERT_STATUS } from '../state/live-projection.js';
import type { Alert } from '../codec/types.js';
import { FUNNEL_STEPS, funnelDepth, openGroupOf, openSessionsInGroup, openSessionsOf } from '../operators/pipelines/sessions.js';
import type { Revenue } from '../operators/pipelines/revenue.js';
import type { ProductStats } from '../operators/pipelines/products.js';
import type { SensorStats } from '../operators/pipelines/performance.js';
import { HOUR, MINUTE } from '../operators/windows.js';
import { partitionOf as partitionFn } from '../source/embedded.js';

export interface TimeRange {
  from: number;
  to: number;
}

export interface ScanRange {
  start?: StoreKey;
  end?: StoreKey;
  limit?: number;
  reverse?: boolean;
}

/**
 * What the queries read a partition through: its shard store here, or (scaled out) a view of the
 * partition's owner on another instance (engine/query/remote.ts). Values are the stored partials,
 * so merges (sums, sets, HDR histograms, top-K) are the same whichever instance runs them.
 */
export interface PartitionReader {
  state: {
    getRange(range: ScanRange): Iterable<{ key: unknown; value: unknown }>;
    getKeys(range: ScanRange): Iterable<unknown>;
    get(key: StoreKey): unknown;
  };
  readMeta(partition: number): PartitionMeta | undefined;
}

/**
 * Scaled out: which partitions are read here and which through other instances. `unknown`: what to
 * do with a partition that has neither (its owner is not known yet): skip it (the main thread's
 * local view: health, live tiles) or throw QueryUnavailable (REST queries answer 503).
 */
export interface QueryRouting {
  local: Set<number>;
  remote: Map<number, PartitionReader>;
  unknown: 'skip' | 'throw';
}

/** A partition's owner is not known or not reachable (a rebalance): retry shortly. */
export class QueryUnavailable extends EngineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PARTITION_UNAVAILABLE', message, true, options);
  }
}

/**
 * The query layer the server calls. It reads the shards' LMDB environments directly (no worker
 * round trip) in short read transactions, and merges per-partition partials: global numbers are
 * sums of partials, exact because a user's state lives in exactly one partition. It sees what has
 * been committed (at most one commit interval behind the workers).
 */
export class QueryLayer {
  private readonly stores = new Map<number, ShardStore>();
  private reference: ReferenceStore | null = null;
  private routing: QueryRouting | null = null;

  constructor(
    private readonly config: EngineConfig,
    private readonly alertStore?: AlertStore,
  ) {}

  private store(shard: number): ShardStore | null {
    let s = this.stores.get(shard);
    if (!s) {
      try {
        s = ShardStore.open(this.config.dataDir, shard, this.config.mapSizeBytes, false, this.config.storeWritemap, this.config.storePageSize); // as the engine opened it (lmdb-js shares one environment per path in a process)
      } catch {
        return null;
      }
      this.stores.set(shard, s);
    }
    return s;
  }

  /**
   * Starts the next reads from the newest committed state. lmdb-js keeps one read snapshot per
   * thread and renews it only on a later timer turn, so a read right after a commit can still see
   * the state from before it: callers that answer "what changed" (the live tick, the query thread)
   * call this first.
   */
  fresh(): void {
    for (const s of this.stores.values()) s.env.resetReadTxn();
    this.alertStore?.env.resetReadTxn();
    this.reference?.env.resetReadTxn();
  }

  /** Shards whose store can be read now (for health). */
  availability(): Array<{ shard: number; available: boolean }> {
    return Array.from({ length: this.config.shards }, (_, shard) => ({ shard, available: this.store(shard) !== null }));
  }

  /** Scaled out: where each partition is read from (null: every partition from the local stores). */
  setRouting(routing: QueryRouting | null): void {
    this.routing = routing;
  }

  /** Whether partition p is read from this instance's own store (always, unless routed). */
  isLocal(p: number): boolean {
    return !this.routing || this.routing.local.has(p);
  }

  private reader(p: number): PartitionReader | null {
    const r = this.routing;
    if (!r || r.local.has(p)) return this.store(p % this.config.shards);
    const remote = r.remote.get(p);
    if (remote) return remote;
    if (r.unknown === 'skip') return null;
    throw new QueryUnavailable(`partition ${p} has no known owner right now (a rebalance is under way); retry in a few seconds`);
  }

  private *partitions(): Generator<[number, PartitionReader]> {
    for (let p = 0; p < this.config.partitions; p++) {
      const s = this.reader(p);
      if (s) yield [p, s];
    }
  }

  /**
   * Serves other instances' reads of partitions this one owns (scaled out). A partition it does not
   * own (any more) is refused: the asking instance answers 503 rather than a stale number.
   */
  serveScan(requests: Array<{ p: number; op: 'range' | 'keys' | 'get'; arg: unknown }>, owned: Set<number>): unknown[] {
    const out: unknown[] = [];
    for (const q of requests) {
      if (!owned.has(q.p)) throw new QueryUnavailable(`partition ${q.p} is not owned by this instance (any more)`);
      const s = this.store(q.p % this.config.shards);
      if (!s) throw new QueryUnavailable(`the store of partition ${q.p} is not open yet`);
      if (q.op === 'range') out.push([...s.state.getRange(q.arg as ScanRange)].map(({ key, value }) => [key, value]));
      else if (q.op === 'keys') out.push([...s.state.getKeys(q.arg as ScanRange)]);
      else out.push(s.state.get(q.arg as StoreKey));
    }
    return out;
  }

  /**
   * Every stored [windowStart, key, value] of a pipeline with from <= windowStart < to, over all
   * partitions; with `members`, the member chunks of the windows (engine/operators/api.ts MemberLog) as well.
   */
  *windows<V>(pipeline: string, range: TimeRange, members = false): Generator<{ partition: number; windowStart: number; key: string; value: V; chunk?: number }> {
    for (const [p, s] of this.partitions()) {
      for (const { key, value } of s.state.getRange({ start: [p, pipeline, range.from], end: [p, pipeline, range.to] })) {
        const k = key as StoreKey;
        if (k.length > 4 && !members) continue;
        yield { partition: p, windowStart: k[2] as number, key: k[3] as string, value: value as V, chunk: k[4] as number | undefined };
      }
    }
  }

  /** Earliest stored window start of a pipeline over all partitions, or null. */
  firstWindowStart(pipeline: string): number | null {
    let min = Infinity;
    for (const [p, s] of this.partitions()) {
      for (const key of s.state.getKeys({ start: [p, pipeline, 0], end: [p, pipeline, Number.MAX_SAFE_INTEGER], limit: 1 })) {
        min = Math.min(min, (key as StoreKey)[2] as number);
      }
    }
    return min === Infinity ? null : min;
  }

  /** Per partition: committed stream time and offsets. */
  progress(): Array<{ partition: number; streamTime: number; offsets: Record<string, number> }> {
    const out = [];
    for (const [p, s] of this.partitions()) {
      const m = s.readMeta(p);
      out.push({ partition: p, streamTime: m?.streamTime ?? 0, offsets: m?.offsets ?? {} });
    }
    return out;
  }

  /** Newest committed stream time over all partitions (the dashboard's "now"). */
  latestStreamTime(): number {
    return Math.max(0, ...this.progress().map((x) => x.streamTime));
  }

  activeUsers(range: TimeRange): Array<{ windowStart: number; windowEnd: number; users: number; byPlatform: Record<string, number> }> {
    const by = new Map<number, { users: number; byPlatform: Record<string, number> }>();
    // Stored: the partition's user sets; the live dashboard's projection (scaled out): their sizes.
    for (const w of this.windows<{ u: string[]; p: Record<string, string[]> } | { n: number; p: Record<string, number> }>('active_users', range)) {
      let a = by.get(w.windowStart);
      if (!a) by.set(w.windowStart, (a = { users: 0, byPlatform: {} }));
      a.users += 'n' in w.value ? w.value.n : w.value.u.length;
      for (const [pl, list] of Object.entries(w.value.p)) a.byPlatform[pl] = (a.byPlatform[pl] ?? 0) + (typeof list === 'number' ? list : list.length);
    }
    return [...by].sort((x, y) => x[0] - y[0]).map(([ws, a]) => ({ windowStart: ws, windowEnd: ws + MINUTE, ...a }));
  }

  /** Revenue per 5-minute window (hopping, 1-minute advance) or per hour (tumbling, from the 1-minute hops). */
  revenue(range: TimeRange, granularity: 'minute' | 'hour' = 'minute'): Array<{ windowStart: number; windowEnd: number; usd: number; count: number; byCurrency: Record<string, number>; byTier: Record<string, number> }> {
    const by = new Map<number, Revenue>();
    for (const w of this.windows<Revenue>('revenue', range)) {
      let a = by.get(w.windowStart);
      if (!a) by.set(w.windowStart, (a = { usd: 0, count: 0, byCurrency: {}, byTier: {} }));
      mergeRevenue(a, w.value);
    }
    let rows = [...by].sort((x, y) => x[0] - y[0]).map(([ws, a]) => ({ windowStart: ws, windowEnd: ws + 5 * MINUTE, ...roundRevenue(a) }));
    if (granularity === 'hour') {
      // Hourly totals from the 5-minute windows that start on 5-minute boundaries (they tile the hour).
      const hours = new Map<number, Revenue>();
      for (const r of rows) {
        if (r.windowStart % (5 * MINUTE) !== 0) continue;
        const h = Math.floor(r.windowStart / HOUR) * HOUR;
        let a = hours.get(h);
        if (!a) hours.set(h, (a = { usd: 0, count: 0, byCurrency: {}, byTier: {} }));
        mergeRevenue(a, r);
      }
      rows = [...hours].sort((x, y) => x[0] - y[0]).map(([ws, a]) => ({ windowStart: ws, windowEnd: ws + HOUR, ...roundRevenue(a) }));
    }
    return rows;
  }

  platformEvents(range: TimeRange): Array<{ windowStart: number; platform: string; events: number; errors: number }> {
    const by = new Map<string, { windowStart: number; platform: string; events: number; errors: number }>();
    for (const w of this.windows<{ n: number; errors: number }>('platform_events', range)) {
      const k = `${w.windowStart}|${w.key}`;
      let a = by.get(k);
      if (!a) by.set(k, (a = { windowStart: w.windowStart, platform: w.key, events: 0, errors: 0 }));
      a.events += w.value.n;
      a.errors += w.value.errors;
    }
    return [...by.values()].sort((x, y) => x.windowStart - y.windowStart || (x.platform < y.platform ? -1 : 1));
  }

  errorRate(range: TimeRange): Array<{ windowStart: number; events: number; errors: number; rate: number }> {
    const by = new Map<number, { events: number; errors: number }>();
    for (const w of this.windows<{ n: number; errors: number }>('error_rate', range)) {
      let a = by.get(w.windowStart);
      if (!a) by.set(w.windowStart, (a = { events: 0, errors: 0 }));
      a.events += w.value.n;
      a.errors += w.value.errors;
    }
    return [...by].sort((x, y) => x[0] - y[0]).map(([ws, a]) => ({ windowStart: ws, ...a, rate: a.events ? a.errors / a.events : 0 }));
  }

  userActions(range: TimeRange): Record<string, number> {
    const out: Record<string, number> = {};
    for (const w of this.windows<{ n: number }>('user_actions', range)) out[w.key] = (out[w.key] ?? 0) + w.value.n;
    return out;
  }

  /** Funnel over sessions that started in the range and have closed, with conversion between steps. */
  funnel(range: TimeRange): { sessions: number; steps: Array<{ step: string; sessions: number; conversionFromPrevious: number; conversionFromStart: number }> } {
    const reached = [0, 0, 0, 0, 0];
    let sessions = 0;
    for (const [p, s] of this.partitions()) {
      for (const { key, value } of s.state.getRange({ start: [p, 'sessions', 'funnel', Math.floor(range.from / HOUR) * HOUR], end: [p, 'sessions', 'funnel', range.to] })) {
        void key;
        const f = value as { sessions: number; reached: number[] };
        sessions += f.sessions;
        f.reached.forEach((n, i) => (reached[i] += n));
      }
    }
    return {
      sessions,
      steps: FUNNEL_STEPS.map((step, i) => ({
        step,
        sessions: reached[i],
        conversionFromPrevious: i === 0 ? (sessions ? reached[0] / sessions : 0) : reached[i - 1] ? reached[i] / reached[i - 1] : 0,
        conversionFromStart: reached[0] ? reached[i] / reached[0] : 0,
      })),
    };
  }

  products(range: TimeRange): Map<string, ProductStats> {
    const by = new Map<string, ProductStats>();
    for (const w of this.windows<ProductStats>('products', range)) {
      let a = by.get(w.key);
      if (!a) by.set(w.key, (a = { views: 0, carts: 0, checkouts: 0, purchases: 0, units: 0, usd: 0 }));
      a.views += w.value.views;
      a.carts += w.value.carts;
      a.checkouts += w.value.checkouts;
      a.purchases += w.value.purchases;
      a.units += w.value.units;
      a.usd += w.value.usd;
    }
    return by;
  }

  topProducts(range: TimeRange, limit: number, by: 'usd' | 'views' | 'purchases' = 'usd'): Array<ProductStats & { productId: string; name: string; category: string }> {
    const ref = this.ref();
    return [...this.products(range)]
      .sort((a, b) => b[1][by] - a[1][by] || (a[0] < b[0] ? -1 : 1))
      .slice(0, limit)
      .map(([id, s]) => {
        const p = ref.product(id);
        return { productId: id, name: p?.name ?? id, category: p?.category ?? 'UNKNOWN', ...s, usd: round2(s.usd) };
      });
  }

  geo(range: TimeRange): Array<{ country: string; region: string; events: number; users: number; usd: number }> {
    const by = new Map<string, { country: string; region: string; events: number; users: Set<string>; usd: number }>();
    // Values (events, revenue; users too when stored before member chunks), then their user chunks.
    for (const w of this.windows<{ events: number; users?: string[]; usd: number; region: string } | string[]>('geo', range, true)) {
      let a = by.get(w.key);
      if (!a) by.set(w.key, (a = { country: w.key, region: '', events: 0, users: new Set(), usd: 0 }));
      if (Array.isArray(w.value)) {
        for (const u of w.value) a.users.add(u);
        continue;
      }
      a.region = w.value.region;
      a.events += w.value.events;
      for (const u of w.value.users ?? []) a.users.add(u);
      a.usd += w.value.usd;
    }
    return [...by.values()].map((a) => ({ country: a.country, region: a.region, events: a.events, users: a.users.size, usd: round2(a.usd) })).sort((x, y) => y.events - x.events);
  }

  /** Load-time percentiles per platform and page, from HDR histograms merged over partitions and windows. */
  performance(range: TimeRange): Array<{ platform: string; page: string; count: number; p50: number; p90: number; p99: number; p999: number; max: number; mean: number }> {
    const by = new Map<string, hdr.Histogram>();
    for (const w of this.windows<string>('performance', range)) {
      const h = hdr.decodeFromCompressedBase64(w.value, 32, false) as hdr.Histogram;
      const acc = by.get(w.key);
      if (acc) acc.add(h);
      else by.set(w.key, h);
    }
    return [...by].map(([k, h]) => {
      const [platform, page] = k.split('|');
      return {
        platform, page, count: h.totalCount, p50: h.getValueAtPercentile(50), p90: h.getValueAtPercentile(90), p99: h.getValueAtPercentile(99),
        p999: h.getValueAtPercentile(99.9), max: h.maxValue, mean: round2(h.mean),
      };
    }).sort((a, b) => b.count - a.count);
  }

  /** Load-time percentiles per 1-minute window over every platform and page: the histograms of the window are merged, so the percentiles are exact. */
  latencyByWindow(range: TimeRange): Array<{ windowStart: number; count: number; p50: number; p90: number; p99: number }> {
    const by = new Map<number, hdr.Histogram>();
    for (const w of this.windows<string>('performance', range)) {
      const h = hdr.decodeFromCompressedBase64(w.value, 32, false) as hdr.Histogram;
      const acc = by.get(w.windowStart);
      if (acc) acc.add(h);
      else by.set(w.windowStart, h);
    }
    return [...by].sort((x, y) => x[0] - y[0]).map(([windowStart, h]) => ({
      windowStart, count: h.totalCount, p50: h.getValueAtPercentile(50), p90: h.getValueAtPercentile(90), p99: h.getValueAtPercentile(99),
    }));
  }

  iot(range: TimeRange): Array<{ sensorType: string; count: number; mean: number; min: number; max: number; overThreshold: number }> {
    const by = new Map<string, SensorStats>();
    for (const w of this.windows<SensorStats>('iot', range)) {
      let a = by.get(w.key);
      if (!a) by.set(w.key, (a = { n: 0, sum: 0, min: Infinity, max: -Infinity, over: 0 }));
      a.n += w.value.n;
      a.sum += w.value.sum;
      a.min = Math.min(a.min, w.value.min);
      a.max = Math.max(a.max, w.value.max);
      a.over += w.value.over;
    }
    return [...by].map(([k, a]) => ({ sensorType: k, count: a.n, mean: a.n ? round2(a.sum / a.n) : 0, min: a.min, max: a.max, overThreshold: a.over }));
  }

  /** A user's drill-down: open and closed sessions, transaction baseline, alerts. */
  user(userId: string): { userId: string; profile: unknown; sessions: unknown[]; openSessions: unknown[]; baseline: { transactions: number; meanUsd: number; stddevUsd: number } | null; alerts: unknown[] } {
    const p = this.partitionOfUser(userId);
    const s = this.reader(p);
    const sessions: unknown[] = [];
    let openSessions: unknown[] = [];
    let baseline = null;
    if (s) {
      for (const { value } of s.state.getRange({ start: [p, 'sessions', 'closed', userId], end: [p, 'sessions', 'closed', userId + '\u0000'] })) {
        const v = value as { stages: number };
        sessions.push({ ...v, funnelDepth: funnelDepth(v.stages) });
      }
      // The newest stored form (sessions.ts, OPEN_GROUPS): the user's own key, else its entry in
      // its group's delta, else in the group (an empty own key or delta entry: none open).
      const own = s.state.get([p, 'sessions', 'open', userId]);
      const g = openGroupOf(userId);
      openSessions = own !== undefined
        ? openSessionsOf(own)
        : openSessionsInGroup(s.state.get([p, 'sessions', 'openDelta', g]), userId) ?? openSessionsInGroup(s.state.get([p, 'sessions', 'openGroup', g]), userId) ?? [];
      const b = s.state.get([p, 'baseline', userId]) as { n: number; mean: number; m2: number } | undefined;
      if (b) baseline = { transactions: b.n, meanUsd: round2(b.mean), stddevUsd: b.n > 1 ? round2(Math.sqrt(b.m2 / (b.n - 1))) : 0 };
    }
    return { userId, profile: this.ref().profile(userId) ?? null, sessions: sessions.reverse(), openSessions, baseline, alerts: this.alerts({ userId }).alerts };
  }

  /**
   * Every alert: per-event ones from the partitions' state, global ones from the alert store (one
   * instance) or partition 0's state (scaled out). Statuses: from the alert's partition (scaled
   * out, where acknowledgements go through the state and its changelog), else the alert store.
   */
  alerts(filter: AlertFilter = {}): AlertList {
    const store = this.alertStore;
    const partitionStatus = new Map<string, { status: AlertStatus; at: number }>();
    const collected: Alert[] = [];
    for (const [p, s] of this.partitions()) {
      for (const { value } of s.state.getRange({ start: [p, 'alerts'], end: [p, 'alerts\u0000'] })) collected.push(value as Alert);
      for (const { key, value } of s.state.getRange({ start: [p, ALERT_STATUS], end: [p, ALERT_STATUS + '\u0000'] })) {
        partitionStatus.set((key as StoreKey)[2] as string, value as { status: AlertStatus; at: number });
      }
    }
    function* all(): Generator<Alert> {
      yield* collected;
      if (store) yield* store.globalAlerts();
    }
    return listAlerts(all(), (id) => partitionStatus.get(id) ?? store?.statusOf(id) ?? { status: 'OPEN', at: 0 }, filter);
  }

  /** One stored value of a partition (key relative to it), or undefined. */
  readKey(partition: number, rel: StoreKey): unknown {
    return this.reader(partition)?.state.get([partition, ...rel]);
  }

  /** The partition whose state holds an alert (scaled out: where its status is kept), or null. */
  alertPartition(id: string): number | null {
    for (const [p, s] of this.partitions()) {
      if (s.state.get([p, 'alerts', id]) !== undefined) return p;
    }
    return null;
  }

  alert(id: string): (Alert & { status: string }) | undefined {
    return this.alerts({ limit: Number.MAX_SAFE_INTEGER }).alerts.find((a) => a.alertId === id);
  }

  /** The partition whose state holds a user (the source's partitioner). */
  partitionOfUser(userId: string): number {
    return partitionFn(userId, this.config.partitions);
  }

  private ref(): ReferenceStore {
    return (this.reference ??= ReferenceStore.open(this.config.dataDir));
  }

  async close(): Promise<void> {
    await Promise.all([...this.stores.values()].map((s) => s.close()));
    this.stores.clear();
    if (this.reference) await this.reference.close();
    this.reference = null;
  }
}


function mergeRevenue(a: Revenue, b: Revenue): void {
  a.usd += b.usd;
  a.count += b.count;
  for (const [k, v] of Object.entries(b.byCurrency)) a.byCurrency[k] = (a.byCurrency[k] ?? 0) + v;
  for (const [k, v] of Object.entries(b.byTier)) a.byTier[k] = (a.byTier[k] ?? 0) + v;
}

function roundRevenue(a: Revenue): Revenue {
  return {
    usd: round2(a.usd), count: a.count,
    byCurrency: Object.fromEntries(Object.entries(a.byCurrency).map(([k, v]) => [k, round2(v)])),
    byTier: Object.fromEntries(Object.entries(a.byTier).map(([k, v]) => [k, round2(v)])),
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
