import type { Alert } from './codec/types.js';
import type { EngineConfig } from './config.js';
import type { QueryLayer } from './query/query.js';
import { alertId } from './operators/api.js';
import { MINUTE } from './operators/windows.js';

/**
 * Alerts on global windows (revenue below a threshold per 5-minute window, error rate above a
 * threshold per 5-minute window). A global window is a sum of per-partition partials and is final
 * when every partition's committed stream time has passed its end + grace; a partition idle longer
 * than idleTimeoutMs (wall time) does not hold it back (the stuck-watermark problem). Evaluated
 * from committed state, in window order; alert ids are deterministic, so re-evaluation after a
 * restart updates rather than duplicates.
 */
export interface GlobalAlertProgress {
  /** The next 5-minute revenue window (by start) to evaluate, or null before the first. */
  revenue: number | null;
  errors: number | null;
}

/** Scaled out: partition 0's state key of the global alerts' progress. */
export const GLOBAL_ALERTS_PROGRESS_KEY = ['global-alerts', 'progress'];
/** Scaled out: partition 0's state key of the global alerts committed but not yet delivered to the output topics. */
export const GLOBAL_ALERTS_OUTBOX_KEY = ['global-alerts', 'outbox'];

export class GlobalWindowAlerts {
  private nextRevenue: number | null = null;
  private nextErrors: number | null = null;

  constructor(
    private readonly config: EngineConfig,
    private readonly query: QueryLayer,
    private readonly lastActivity: (partition: number) => number,
  ) {}

  /** The time up to which every partition is complete (min stream time over non-idle partitions). */
  watermark(now = Date.now()): number {
    let w = Infinity;
    let any = false;
    for (const p of this.query.progress()) {
      const idle = now - this.lastActivity(p.partition) > this.config.idleTimeoutMs;
      if (p.streamTime > 0) any = true;
      if (idle) continue;
      w = Math.min(w, p.streamTime);
    }
    if (!any) return 0;
    return w === Infinity ? this.query.latestStreamTime() : w;
  }

  /** Where evaluation continues (scaled out it is kept in partition 0's state, so it moves with it). */
  progress(): GlobalAlertProgress {
    return { revenue: this.nextRevenue, errors: this.nextErrors };
  }

  setProgress(p: GlobalAlertProgress | undefined): void {
    this.nextRevenue = p?.revenue ?? null;
    this.nextErrors = p?.errors ?? null;
  }

  evaluate(now = Date.now()): Alert[] {
    const wm = this.watermark(now);
    if (wm <= 0) return [];
    const a = this.config.alerts;
    const out: Alert[] = [];
    const size = 5 * MINUTE;
    const grace = this.config.graceMs;
    if (this.nextRevenue === null) this.nextRevenue = this.firstWindow('revenue', MINUTE);
    if (this.nextErrors === null) this.nextErrors = this.firstWindow('error_rate', size);
    // Windows older than the retention period have been deleted (their revenue would read as 0):
    // an evaluation that fell that far behind resumes at the oldest window still kept.
    const floor = wm - this.config.retentionMs;
    if (this.nextRevenue !== null && this.nextRevenue < floor) this.nextRevenue = Math.ceil(floor / MINUTE) * MINUTE;
    if (this.nextErrors !== null && this.nextErrors < floor) this.nextErrors = Math.ceil(floor / size) * size;
    if (this.nextRevenue !== null) {
      let ws = this.nextRevenue;
      const finals = ws + size + grace <= wm ? this.query.revenue({ from: ws, to: wm }) : [];
      const byStart = new Map(finals.map((r) => [r.windowStart, r]));
      for (; ws + size + grace <= wm; ws += MINUTE) {
        const usd = byStart.get(ws)?.usd ?? 0;
        if (usd < a.lowRevenuePer5Min) {
          out.push({
            alertId: alertId('LOW_REVENUE', 'global', ws), type: 'LOW_REVENUE', severity: usd < a.lowRevenuePer5Min / 4 ? 'CRITICAL' : 'HIGH', key: 'global',
            windowStart: ws, timestamp: ws + size, message: `revenue ${usd.toFixed(2)} USD in the 5 minutes from ${new Date(ws).toISOString()} is below ${a.lowRevenuePer5Min} USD`,
            value: usd, threshold: a.lowRevenuePer5Min, userId: '',
          });
        }
      }
      this.nextRevenue = ws;
    }
    if (this.nextErrors !== null) {
      let ws = this.nextErrors;
      const finals = ws + size + grace <= wm ? this.query.errorRate({ from: ws, to: wm }) : [];
      const byStart = new Map(finals.map((r) => [r.windowStart, r]));
      for (; ws + size + grace <= wm; ws += size) {
        const r = byStart.get(ws);
        if (r && r.events >= a.errorRateMinEvents && r.rate > a.errorRate) {
          out.push({
            alertId: alertId('HIGH_ERROR_RATE', 'global', ws), type: 'HIGH_ERROR_RATE', severity: r.rate > a.errorRate * 4 ? 'CRITICAL' : 'HIGH', key: 'global',
            windowStart: ws, timestamp: ws + size, message: `error rate ${(r.rate * 100).toFixed(2)}% (${r.errors} of ${r.events} web and mobile events) in the 5 minutes from ${new Date(ws).toISOString()} is above ${(a.errorRate * 100).toFixed(1)}%`,
            value: Math.round(r.rate * 10000) / 10000, threshold: a.errorRate, userId: '',
          });
        }
      }
      this.nextErrors = ws;
    }
    return out;
  }

  private firstWindow(pipeline: string, align: number): number | null {
    const min = this.query.firstWindowStart(pipeline);
    return min === null ? null : Math.floor(min / align) * align;
  }
}
