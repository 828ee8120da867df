import { describe, expect, it } from 'vitest';
import { p99Verdict, websocketAbuse } from './websocket.js';

// Scenario 10, full: 10 abuse windows of 10 s (at least 10,000 connections churned in all, 200
// paused and 50 throttled readers each window) alternating with clean windows.
describe('WebSocket abuse (scenario 10, soak)', () => {
  it('10,000 churned connections, paused and 10 KB/s readers, offenders: memory bounded, offenders closed, well-behaved clients as in the clean windows', async () => {
    const r = await websocketAbuse({ rounds: 10, windowMs: 10_000, churnParallel: 100, churnMin: 1000, pausedReaders: 200, throttledReaders: 50, throttleBytesPerSec: 10_000, watchers: 8, niceAbusers: true },
      (s) => console.log(`[scenario 10 soak] ${s}`));
    const verdict = p99Verdict(r.windows);
    console.log(`[scenario 10 soak] ${JSON.stringify({ ...r, verdict })}`);
    for (const a of r.abusers) {
      expect(a.oversizedClose).toBe(1009);
      expect(a.floodClose).toBe(1008);
      expect(a.pausedStillOpen).toBe(200);
      expect(a.throttled).toMatchObject({ upgraded: 50, stillOpen: 50 });
    }
    expect(r.abusers.reduce((n, a) => n + a.churned, 0)).toBeGreaterThanOrEqual(10_000);
    expect(r.clientsAfter).toBe(8);
    expect(r.rssPeakMb - r.rssBeforeMb).toBeLessThan(300);
    expect(r.abuse.unanswered).toBe(0);
    expect(r.abuse.maxDeltaGapMs).toBeLessThan(3000);
    expect(r.abuse.engineCpuPct - r.clean.engineCpuPct).toBeLessThan(15);
    expect(verdict.ok).toBe(true);
  });
});
