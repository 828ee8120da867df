import { describe, expect, it } from 'vitest';
import { poisonUnderLoad } from './scenarios.js';

// Scenario 6: poison pills at ~0.1 % of messages through the broker.
describe('poison pills under load (scenario 6)', () => {
  it('dead-letters exactly the bad messages with a reason, counts every good event, and stays up', async () => {
    const r = await poisonUnderLoad('poison', { events: 150_000, rate: 10_000, users: 20_000, eventsPerBatch: 10 }, (s) => console.log(`[scenario 6] ${s}`));
    console.log(`[scenario 6] ${JSON.stringify({ ...r, dlq: r.dlq.map((d) => `${d.code} ${d.bytes}B ${d.reason.slice(0, 80)}`), health: r.health.overallStatus, reconciled: { ...r.reconciled, mismatches: r.reconciled.mismatches.slice(0, 5) } })}`);
    expect(r.engineAlive).toBe(true);
    // Every kind at least once.
    expect(r.injected.length).toBeGreaterThanOrEqual(14);
    expect(r.injectedShare).toBeGreaterThan(0.0005);
    expect(r.injectedShare).toBeLessThan(0.002);
    expect(r.dlqMismatches).toEqual([]);
    expect(r.dlq.length).toBe(r.expectedDeadLetters);
    for (const d of r.dlq) expect(d.reason.length).toBeGreaterThan(5);
    expect(r.reconciled.committedDeadLetters).toBe(r.expectedDeadLetters);
    expect(r.reconciled.mismatches).toEqual([]);
    expect([r.reconciled.lost, r.reconciled.duplicated, r.reconciled.lostPerKey, r.reconciled.duplicatedPerKey]).toEqual([0, 0, 0, 0]);
    expect(r.reconciled.committedLate.platform_events).toBeGreaterThan(0);
  }, 180_000);
});
