import { describe, expect, it } from 'vitest';
import { brokerRestartUnderLoad, type BrokerRestartResult } from './broker-restart.js';

// 60 s of load: it is still running when the broker is back (a restart takes 5-15 s here).
const EVENTS = 480_000;

function expectServedDegradedRecoveredExact(r: BrokerRestartResult): void {
  console.log(`[scenario 3 ${r.signal}] ${JSON.stringify({ ...r, reconciled: { ...r.reconciled, mismatches: r.reconciled.mismatches.slice(0, 5) } })}`);
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
  expect(r.reconciled.ack).toMatchObject({ acknowledgedEvents: EVENTS, duplicateSeqs: 0, seqGaps: 0, unaccounted: 0, missingOnBroker: 0, contentMismatches: 0 });
  expect([r.reconciled.lost, r.reconciled.duplicated, r.reconciled.lostPerKey, r.reconciled.duplicatedPerKey]).toEqual([0, 0, 0, 0]);
  // Per key, from the engine's sequence audit (--audit-sequences): every acknowledged key:seq counted once.
  expect(r.reconciled.sequences).toMatchObject({ notCounted: 0, duplicates: 0, gaps: 0, unexpected: 0 });
  expect(r.reconciled.sequences!.seqsChecked + r.reconciled.sequences!.expectedUnkeyed).toBe(EVENTS);
}

// Scenario 3: broker stopped and restarted during load (a private broker; the shared one is never stopped).
describe('broker stopped and restarted during load (scenario 3)', () => {
  it('broker SIGTERM: keeps serving the dashboard, says DEGRADED while the broker is away, reconnects, lag recovers, counts exact', async () => {
    expectServedDegradedRecoveredExact(await brokerRestartUnderLoad('broker', { events: EVENTS, rate: 8_000, users: 20_000 }, 10_000, (s) => console.log(`[scenario 3 SIGTERM] ${s}`), 'SIGTERM'));
  }, 300_000);

  // No clean shutdown: the broker's logs are recovered at restart, loadgen's idempotent producer
  // has unacknowledged batches in flight, the group coordinator moves with the restart.
  it('broker SIGKILL: the same', async () => {
    expectServedDegradedRecoveredExact(await brokerRestartUnderLoad('brokerkill', { events: EVENTS, rate: 8_000, users: 20_000 }, 10_000, (s) => console.log(`[scenario 3 SIGKILL] ${s}`), 'SIGKILL'));
  }, 300_000);
});
