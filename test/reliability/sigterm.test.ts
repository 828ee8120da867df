import { describe, expect, it } from 'vitest';
import { sigtermUnderLoad } from './scenarios.js';

// Scenario 4: SIGTERM under load.
describe('SIGTERM under load (scenario 4)', () => {
  it('exits 0 within 30 s with state and Kafka offsets committed; the restart counts only the rest', async () => {
    const r = await sigtermUnderLoad('term', { events: 200_000, rate: 15_000, users: 20_000 }, (s) => console.log(`[scenario 4] ${s}`));
    console.log(`[scenario 4] ${JSON.stringify({ ...r, reconciled: { ...r.reconciled, mismatches: r.reconciled.mismatches.slice(0, 5) } })}`);
    expect(r.stop.code).toBe(0);
    expect(r.stop.ms).toBeLessThan(30_000);
    expect(r.committedAtStop).toBeGreaterThan(0);
    expect(r.committedAtStop).toBeLessThan(200_000);
    expect(r.partitionsChecked).toBeGreaterThan(20); // topic-partitions that had events before the SIGTERM
    expect(r.offsetMismatches).toEqual([]);
    // Nothing the first process committed was processed again.
    expect(r.processedAfterRestart).toBe(r.acknowledged - r.committedAtStop);
    expect(r.reconciled.mismatches).toEqual([]);
    expect(r.reconciled.committedEvents).toBe(200_000);
    expect([r.reconciled.lost, r.reconciled.duplicated, r.reconciled.lostPerKey, r.reconciled.duplicatedPerKey]).toEqual([0, 0, 0, 0]);
  }, 180_000);
});
