import { describe, expect, it } from 'vitest';
import { createdBefore, DashboardLatency } from '../../bench/e2e-latency.js';
import { wallStamp } from '../../loadgen/share.js';
import { hgrm, latencyHistogram } from '../../loadgen/histogram.js';
import { percentileCurve } from '../../bench/svg.js';

describe('bench:e2e latency bookkeeping', () => {
  it('counts created events exactly as loadgen stamps them (3 threads, a rate that does not divide evenly)', () => {
    const s = { startAt: 1_700_000_000_123, rate: 10_000, threads: 3, perThread: [400, 397, 399] };
    const stamps: number[] = [];
    for (let j = 0; j < 3; j++) for (let i = 0; i < s.perThread[j]; i++) stamps.push(wallStamp(s.startAt, i, s.rate / s.threads));
    for (let t = s.startAt - 2; t < s.startAt + 200; t++) expect(createdBefore(s, t)).toBe(stamps.filter((x) => x < t).length);
    expect(createdBefore(s, Infinity)).toBe(1196);
  });

  it('records every event a dashboard message covers, with its own latency; stale messages record nothing', () => {
    const start = 1_000_000;
    const lat = new DashboardLatency({ startAt: start, rate: 1000, threads: 1 }); // one event per ms
    expect(lat.onDashboard(start + 600, start + 499)).toBe(500); // stamps start..start+499, waited 600..101 ms
    expect(lat.onDashboard(start + 700, start + 499)).toBe(0);
    expect(lat.onDashboard(start + 700, start + 400)).toBe(0);
    const h = lat.histogram;
    expect(h.totalCount).toBe(500);
    expect(h.minNonZeroValue / 1000).toBeCloseTo(101, 0);
    expect(h.maxValue / 1000).toBeCloseTo(600, 0);
    expect(h.getValueAtPercentile(50) / 1000).toBeCloseTo(350, -1);
    // A stall: the next message comes 2 s later and covers 500 more events; each waited long.
    expect(lat.onDashboard(start + 2999, start + 999)).toBe(500);
    expect(h.getValueAtPercentile(75) / 1000).toBeGreaterThan(2000);
  });

  it('counts events the dashboard never showed at the end instead of dropping them', () => {
    const start = 5_000;
    const lat = new DashboardLatency({ startAt: start, rate: 2000, threads: 2 });
    lat.onDashboard(start + 100, start + 49); // 50 ms x 2 events/ms
    expect(lat.recorded).toBe(100);
    lat.schedule.perThread = [150, 150]; // 300 ms of schedule in all
    expect(lat.outstanding()).toBe(200);
    expect(lat.finish(start + 1000)).toBe(200);
    expect(lat.histogram.totalCount).toBe(300);
    // The oldest event never shown was stamped start + 50 (each thread stamps one event per ms).
    expect(lat.histogram.maxValue / 1000).toBeCloseTo(950, 0);
    // The 100 shown events waited 51-100 ms; the 200 never shown at least 851 ms.
    expect(lat.histogram.getValueAtPercentile(33) / 1000).toBeLessThan(101);
    expect(lat.histogram.getValueAtPercentile(34) / 1000).toBeGreaterThan(850);
  });
});

describe('.hgrm output', () => {
  it('is HdrHistogram\'s percentile distribution in milliseconds, and the chart reads it back', () => {
    const h = latencyHistogram();
    for (let v = 1; v <= 1000; v++) h.recordValue(v * 1000); // 1..1000 ms in microseconds
    const text = hgrm(h);
    const lines = text.split('\n');
    expect(lines[0]).toBe('       Value     Percentile TotalCount 1/(1-Percentile)');
    expect(text).toMatch(/#\[Mean    =\s+500\.\d+, StdDeviation   =\s+[\d.]+\]/);
    expect(text).toMatch(/#\[Max     =\s+1000\.\d+, Total count    =\s+1000\]/);
    const curve = percentileCurve(text);
    const median = curve.find(([p]) => p >= 50)!;
    expect(median[1]).toBeCloseTo(500, -1);
    expect(curve.at(-1)![0]).toBe(100);
    expect(curve.at(-1)![1]).toBeCloseTo(1000, -1);
  });
});
