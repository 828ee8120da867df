import { describe, expect, it } from 'vitest';
import { websocketAbuse } from './websocket.js';

// Scenario 10, quick: churn, slow readers, oversized frames, malformed JSON, a flood; a watcher keeps getting deltas.
describe('WebSocket abuse (scenario 10, quick)', () => {
  it('closes offenders (1008/1009), keeps memory bounded and deltas flowing to others', async () => {
    const r = await websocketAbuse({ churn: 2000, churnParallel: 50, slowReaders: 20, slowMs: 6000 }, (s) => console.log(`[scenario 10] ${s}`));
    console.log(`[scenario 10] ${JSON.stringify(r)}`);
    expect(r.churned).toBe(2000);
    expect(r.clientsAfterChurn).toBe(1); // only the watcher
    expect(r.oversizedClose).toBe(1009);
    expect(r.floodClose).toBe(1008);
    expect(r.floodErrorsBeforeClose).toBeGreaterThan(0);
    expect(r.malformedReply).toContain('ERR_BAD_MESSAGE');
    expect(r.malformedStillOpen).toBe(true);
    // Paused readers are not disconnected (a few seconds of deltas fit in the kernel's socket
    // buffers; the soak run pauses them long enough for the server to skip and resync them).
    expect(r.slowStillOpen).toBe(20);
    expect(r.rssPeakMb - r.rssBeforeMb).toBeLessThan(150);
    // The watcher got deltas all along: no gap longer than 2 s.
    expect(r.watcher.abuseDeltas).toBeGreaterThan(10);
    expect(r.watcher.maxGapMs).toBeLessThan(2000);
    expect(r.watcher.abuseDeliveryP99Ms).toBeLessThan(1000);
  }, 120_000);
});
