import { describe, expect, it } from 'vitest';
import { websocketAbuse } from './websocket.js';

// Scenario 10, full: 10,000 connections churned, 200 readers paused for 2 minutes.
describe('WebSocket abuse (scenario 10, soak)', () => {
  it('10,000 churned connections and 200 stalled readers: memory bounded, offenders closed, deltas keep flowing', async () => {
    const r = await websocketAbuse({ churn: 10_000, churnParallel: 100, slowReaders: 200, slowMs: 120_000 }, (s) => console.log(`[scenario 10 soak] ${s}`));
    console.log(`[scenario 10 soak] ${JSON.stringify(r)}`);
    expect(r.churned).toBe(10_000);
    expect(r.clientsAfterChurn).toBe(1);
    expect(r.oversizedClose).toBe(1009);
    expect(r.floodClose).toBe(1008);
    expect(r.rssPeakMb - r.rssBeforeMb).toBeLessThan(300);
    expect(r.watcher.maxGapMs).toBeLessThan(3000);
  });
});
