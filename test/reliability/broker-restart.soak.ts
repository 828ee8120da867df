import { describe, expect, it } from 'vitest';
import { brokerRestartUnderLoad } from './broker-restart.js';

// Scenario 3: broker stopped and restarted during load (a private broker; the shared one is never stopped).
describe('broker stopped and restarted during load (scenario 3)', () => {
  it('keeps serving the dashboard, says DEGRADED while the broker is away, reconnects, lag recovers, counts exact', async () => {
    const events = 300_000;
    const r = await brokerRestartUnderLoad('broker', { events, rate: 8_000, users: 20_000 }, 10_000, (s) => console.log(`[scenario 3] ${s}`));
    console.log(`[scenario 3] ${JSON.stringify({ ...r, reconciled: { ...r.reconciled, mismatches: r.reconciled.mismatches.slice(0, 5) } })}`);
    // Served throughout: every health and REST request answered, quickly.
    expect(r.during.samples).toBeGreaterThan(10);
    expect(r.during.answered).toBe(r.during.samples);
    expect(r.during.restOk).toBe(r.during.samples);
    expect(r.during.maxHealthMs).toBeLessThan(1000);
    // Degraded while the broker is away (after librdkafka noticed: allow the first 3 s).
    expect(r.during.statuses.DEGRADED ?? 0).toBeGreaterThanOrEqual(r.during.samples - 12);
    expect(r.catchUpAfterRestartMs).toBeLessThan(60_000);
    expect(r.stop.code).toBe(0);
    expect(r.reconciled.mismatches).toEqual([]);
    expect(r.reconciled.committedEvents).toBe(r.acknowledged);
    expect(r.reconciled.ack).toMatchObject({ acknowledgedEvents: events, duplicateSeqs: 0, seqGaps: 0, unaccounted: 0, missingOnBroker: 0, contentMismatches: 0 });
    expect([r.reconciled.lost, r.reconciled.duplicated, r.reconciled.lostPerKey, r.reconciled.duplicatedPerKey]).toEqual([0, 0, 0, 0]);
  }, 300_000);
});
