import { describe, expect, it } from 'vitest';
import { stallUnderLoad } from './stall.js';

// Scenario 5: an event-loop stall longer than max.poll.interval.ms.
describe('event-loop stall longer than max.poll.interval.ms (scenario 5)', () => {
  it('the engine rejoins its group and counts exactly', async () => {
    const events = 250_000;
    const r = await stallUnderLoad('stall', { events, rate: 10_000, users: 20_000 }, 10_000, 6_000, (s) => console.log(`[scenario 5] ${s}`));
    console.log(`[scenario 5] ${JSON.stringify({ ...r, reconciled: { ...r.reconciled, mismatches: r.reconciled.mismatches.slice(0, 5) } })}`);
    expect(r.hookLines.some((l) => l.includes('stall of 10000 ms over'))).toBe(true);
    // Left the group (max.poll.interval.ms passed) and was assigned again: at least a revoke and an assign.
    expect(r.rebalancesAfter - r.rebalancesBefore).toBeGreaterThanOrEqual(2);
    expect(r.catchUpAfterStallMs).toBeLessThan(60_000);
    expect(r.stop.code).toBe(0);
    expect(r.acknowledged).toBe(events);
    expect(r.reconciled.mismatches).toEqual([]);
    expect(r.reconciled.committedEvents).toBe(events);
    expect(r.reconciled.ack).toMatchObject({ acknowledgedEvents: events, duplicateSeqs: 0, seqGaps: 0, unaccounted: 0, missingOnBroker: 0, contentMismatches: 0 });
    expect([r.reconciled.lost, r.reconciled.duplicated, r.reconciled.lostPerKey, r.reconciled.duplicatedPerKey]).toEqual([0, 0, 0, 0]);
  }, 240_000);
});
