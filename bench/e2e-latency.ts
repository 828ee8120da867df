import { latencyHistogram, type Histogram } from '../loadgen/histogram.js';

/**
 * Event-to-dashboard latency bookkeeping for bench:e2e.
 *
 * loadgen --timestamps wall stamps event i of each of its `threads` shares with
 * floor(startAt + i * 1000 / (rate / threads)): its creation time, known here without seeing the
 * event. The engine's dashboard messages (SNAPSHOT, DELTA) carry `streamTime`, the newest event
 * time in committed state. When a message arrives at time A with stream time S, every event
 * stamped in (previous S, S] has reached the dashboard, so each of them is recorded with latency
 * A - stamp. Every created event is recorded (not one sample per message), which is the
 * coordinated-omission-correct count: a stalled dashboard makes every event created during the
 * stall wait, and each is counted with its own wait.
 */
export interface Schedule {
  /** Wall-clock start of loadgen's schedule (epoch ms). */
  startAt: number;
  /** Events per second over all threads. */
  rate: number;
  threads: number;
  /** Events each thread sent, once known (Infinity while it runs). */
  perThread?: number[];
}

/** Events stamped strictly before `t` (epoch ms). */
export function createdBefore(s: Schedule, t: number): number {
  const r = s.rate / s.threads;
  const x = ((t - s.startAt) * r) / 1000;
  if (x <= 0) return 0;
  const each = Math.ceil(x);
  let n = 0;
  for (let j = 0; j < s.threads; j++) n += Math.min(s.perThread?.[j] ?? Infinity, each);
  return n;
}

export class DashboardLatency {
  readonly histogram: Histogram = latencyHistogram();
  /** Newest stamp known to be on the dashboard. */
  covered: number;
  /** Events recorded. */
  recorded = 0;
  /** Dashboard messages whose stream time moved forward. */
  advances = 0;

  constructor(readonly schedule: Schedule) {
    this.covered = schedule.startAt - 1;
  }

  /** A SNAPSHOT or DELTA with `streamTime` arrived at `arrivalMs` (epoch ms, fractional). Returns the events it covered. */
  onDashboard(arrivalMs: number, streamTime: number): number {
    if (!(streamTime > this.covered)) return 0;
    let n = 0;
    let before = createdBefore(this.schedule, this.covered + 1);
    for (let t = this.covered + 1; t <= streamTime; t++) {
      const upTo = createdBefore(this.schedule, t + 1);
      const count = upTo - before;
      before = upTo;
      if (count > 0) {
        this.histogram.recordValueWithCount(Math.max(1, Math.round((arrivalMs - t) * 1000)), count);
        n += count;
      }
    }
    this.covered = streamTime;
    this.recorded += n;
    this.advances++;
    return n;
  }

  /** Events created but not yet seen on the dashboard (needs `schedule.perThread`). */
  outstanding(): number {
    if (!this.schedule.perThread) throw new Error('outstanding(): the schedule\'s perThread counts are not known yet');
    return createdBefore(this.schedule, Infinity) - createdBefore(this.schedule, this.covered + 1);
  }

  /**
   * Ends the run at `endMs`: events never seen on the dashboard are recorded with latency
   * endMs - stamp (a lower bound, so that they are not silently dropped). Returns how many.
   */
  finish(endMs: number): number {
    const left = this.outstanding();
    if (left === 0) return 0;
    const end = createdBefore(this.schedule, Infinity);
    let before = createdBefore(this.schedule, this.covered + 1);
    for (let t = this.covered + 1; before < end; t++) {
      const upTo = createdBefore(this.schedule, t + 1);
      if (upTo > before) this.histogram.recordValueWithCount(Math.max(1, Math.round((endMs - t) * 1000)), upTo - before);
      before = upTo;
    }
    return left;
  }
}
