import { describe, expect, it } from 'vitest';
import { p99Verdict, websocketAbuse } from './websocket.js';

// Scenario 10, quick: churn, paused and 10 KB/s readers, an oversized frame, malformed JSON and a
// flood, from another process, in 3 abuse windows alternating with clean ones; 8 well-behaved clients measured throughout.
describe('WebSocket abuse (scenario 10, quick)', () => {
  it('closes offenders (1008/1009), keeps memory bounded, and the well-behaved clients are served as in the clean windows', async () => {
    const r = await websocketAbuse({ rounds: 3, windowMs: 5000, churnParallel: 50, pausedReaders: 20, throttledReaders: 20, throttleBytesPerSec: 10_000, watchers: 8, niceAbusers: true },
      (s) => console.log(`[scenario 10] ${s}`));
    const verdict = p99Verdict(r.windows);
    console.log(`[scenario 10] ${JSON.stringify({ ...r, verdict })}`);
    for (const a of r.abusers) {
      expect(a.oversizedClose).toBe(1009);
      expect(a.floodClose).toBe(1008);
      expect(a.floodErrorsBeforeClose).toBeGreaterThan(0); // warned with ERR_RATE_LIMITED before the close
      expect(a.malformedReply).toContain('ERR_BAD_MESSAGE');
      expect(a.malformedStillOpen).toBe(true);
      expect(a.pausedStillOpen).toBe(20); // slow readers are not disconnected (they are coalesced)
      expect(a.throttled).toMatchObject({ upgraded: 20, stillOpen: 20 });
      expect(a.throttled.maxReadBytesPerSec).toBeLessThanOrEqual(10_000);
    }
    expect(r.abusers.reduce((n, a) => n + a.churned, 0)).toBeGreaterThan(300);
    expect(r.clientsAfter).toBe(8); // only the watchers: nothing leaked
    // Bounded, not leaking: the engine lets V8's heaps grow to 4x their live size before a full GC
    // (--heap-growing-percent 300, for the REST tail), so the peak includes that headroom. Measured
    // growth here: +101 MB with V8's default growth, +134 MB with 300 (alone); +155 MB under npm test.
    expect(r.rssPeakMb - r.rssBeforeMb).toBeLessThan(200);
    for (const p of [r.clean, r.abuse]) {
      expect(p.requests).toBeGreaterThan((p.ms / 200) * 8 * 0.8); // answered (5 per second per watcher)
      expect(p.unanswered).toBe(0);
      expect(p.maxDeltaGapMs).toBeLessThan(3000); // deltas kept coming (they follow the 1 s commit)
    }
    // The server's own work for the abusers: the engine process's CPU in abuse windows vs clean ones
    // (CPU time, which the machine's other load barely changes, unlike latency).
    expect(r.abuse.engineCpuPct - r.clean.engineCpuPct).toBeLessThan(15);
    // The p99 comparison (p99Verdict) is asserted in the soak run, which runs alone: in npm test the
    // other test files share the 2 cores, and a 5 s window's p99 then measures them (RELIABILITY.md).
    // Here only a gross regression fails: the abuse windows' median p99 beyond the worst clean window + 1 s.
    expect(verdict.abuseMedianP99Ms).toBeLessThan(verdict.cleanMedianP99Ms + verdict.cleanSpreadMs + 1000);
  }, 120_000);
});
