import type { QueryLayer } from '../engine/query/query.js';
import { MINUTE } from '../engine/operators/windows.js';

/**
 * The dashboard's REST queries, as plain functions of the query layer and already-validated
 * parameters: the server parses and validates on its event loop (400s), and runs these on its
 * query thread so a long merge never holds up other requests or the live stream.
 */
export class QueryNotFound extends Error {
  readonly code = 'ERR_NOT_FOUND';
}

type Params = Record<string, unknown>;

function range(q: QueryLayer, hours: number): { from: number; to: number } {
  const to = q.latestStreamTime() + 1;
  return { from: to - hours * 3_600_000, to };
}

export const DASHBOARD_QUERIES = {
  activeUsers(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    const windows = q.activeUsers(range(q, hours));
    return { hours, windows, current: windows.at(-1) ?? null };
  },
  revenue(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    const granularity = p.granularity as 'minute' | 'hour';
    return { hours, granularity, currency: 'USD', windows: q.revenue(range(q, hours), granularity) };
  },
  funnel(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    return { hours, ...q.funnel(range(q, hours)) };
  },
  geo(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    return { hours, countries: q.geo(range(q, hours)) };
  },
  performance(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    const r = range(q, hours);
    return { hours, unit: 'ms', pages: q.performance(r), iot: q.iot(r) };
  },
  topProducts(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    const limit = p.limit as number;
    return { hours, limit, products: q.topProducts(range(q, hours), limit) };
  },
  product(q: QueryLayer, p: Params) {
    const id = p.id as string;
    const hours = p.hours as number;
    const stats = q.products(range(q, hours)).get(id);
    if (!stats) throw new QueryNotFound(`product ${id} has no activity in the last ${hours} h`);
    return { productId: id, hours, ...stats };
  },
  user(q: QueryLayer, p: Params) {
    return q.user(p.id as string);
  },
  alerts(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    return { hours, ...q.alerts({ since: range(q, hours).from, severity: p.severity as 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW' | undefined, limit: p.limit as number }) };
  },
} as const;

export type DashboardQuery = keyof typeof DASHBOARD_QUERIES;

/** What the snapshot's tiles take from the engine's main thread (counters, in-flight slabs, source lag): passed in, so the query thread can build it too. */
export interface LiveTiles {
  lateDrops: number;
  deadLetters: number;
  slabsInFlight: number;
  consumerLag: number | null;
  eventsProcessed: number;
}

type LatencyRow = { windowStart: number; count: number; p50: number; p90: number; p99: number };

/**
 * The dashboard snapshot (tiles and recent series) from a query layer. The live-update tick builds
 * it on the query thread (its HDR merges took 10-50 ms of the event loop per tick); a connecting
 * client gets the cached one, or one built on the event loop when it is stale. Each builder keeps
 * its own cache of closed minutes' load-time percentiles.
 */
export class DashboardSnapshots {
  /** Per-minute load-time percentiles of closed minutes (null: no data in that minute). */
  private readonly latencyCache = new Map<number, LatencyRow | null>();

  constructor(private readonly config: { partitions: number; graceMs: number }) {}

  /** latencyMinutes: how many minutes of load-time percentiles to include. */
  build(q: QueryLayer, live: LiveTiles, opts: { latencyMinutes?: number } = {}): Record<string, unknown> {
    const now = q.latestStreamTime() + 1;
    const active = q.activeUsers({ from: now - 60 * MINUTE, to: now });
    const revenue = q.revenue({ from: now - 60 * MINUTE, to: now });
    const platforms = q.platformEvents({ from: now - 10 * MINUTE, to: now });
    const errors = q.errorRate({ from: now - 10 * MINUTE, to: now });
    const alerts = q.alerts({ limit: 20 });
    const lastFullMinute = Math.floor((now - 1) / MINUTE) * MINUTE - MINUTE;
    // The oldest partition's committed stream time (from the stores, so it holds after a restart):
    // everything at or before it is on the dashboard. 0 until every partition has committed.
    const progress = q.progress();
    const watermark = progress.length === this.config.partitions && progress.every((p) => p.streamTime > 0)
      ? Math.min(...progress.map((p) => p.streamTime)) : 0;
    const latency = this.latencySeries(q, lastFullMinute + MINUTE - ((opts.latencyMinutes ?? 30) - 1) * MINUTE, now, watermark);
    return {
      streamTime: now - 1,
      watermark: watermark || null,
      tiles: {
        activeUsersNow: active.at(-1)?.users ?? 0,
        revenueUsdLast5Min: revenue.at(-1)?.usd ?? 0,
        errorRate: errors.at(-1)?.rate ?? 0,
        lateDrops: live.lateDrops,
        deadLetters: live.deadLetters,
        slabsInFlight: live.slabsInFlight,
        // Event-time rate of the last complete minute (the current minute is still filling).
        eventsPerSecByPlatform: Object.fromEntries(platforms.filter((p) => p.windowStart === lastFullMinute).map((p) => [p.platform, Math.round((p.events / 60) * 10) / 10])),
        consumerLag: live.consumerLag,
        // Processed events (wall clock): the UI derives the engine's throughput from successive values.
        eventsProcessed: live.eventsProcessed,
      },
      activeUsers: active,
      revenue,
      platformEvents: platforms,
      latency,
      alerts: { total: alerts.total, bySeverity: alerts.bySeverity, recent: alerts.alerts },
    };
  }

  /**
   * Load-time percentiles per minute over all platforms and pages (histograms merged per minute:
   * exact). A minute whose window has closed on every partition (watermark past its end + grace)
   * never changes again, so it is read once and kept; each snapshot reads only the open minutes.
   */
  private latencySeries(q: QueryLayer, from: number, to: number, watermark: number): LatencyRow[] {
    const final = (m: number) => m + MINUTE + this.config.graceMs <= watermark;
    let firstOpen = from;
    while (firstOpen < to && final(firstOpen) && this.latencyCache.has(firstOpen)) firstOpen += MINUTE;
    const fresh = firstOpen < to ? new Map(q.latencyByWindow({ from: firstOpen, to }).map((r) => [r.windowStart, r])) : new Map<number, LatencyRow>();
    for (let m = firstOpen; m < to; m += MINUTE) if (final(m)) this.latencyCache.set(m, fresh.get(m) ?? null);
    const out: LatencyRow[] = [];
    for (let m = from; m < to; m += MINUTE) {
      const row = m < firstOpen ? this.latencyCache.get(m) : fresh.get(m);
      if (row) out.push(row);
    }
    for (const m of this.latencyCache.keys()) if (m < from - 60 * MINUTE) this.latencyCache.delete(m);
    return out;
  }
}
