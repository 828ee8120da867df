import { describe, expect, it } from 'vitest';
import { killUnderLoad } from './scenarios.js';

const EVENTS = Number(process.env.SOAK_EVENTS ?? 3_000_000);
const RATE = Number(process.env.SOAK_RATE ?? 25_000);

// Scenario 1, full: 10 SIGKILLs at random moments during a multi-million-event load.
describe('SIGKILL during load (scenario 1, soak)', () => {
  it(`10 kills during ${EVENTS} events: every acknowledged event counted exactly once`, async () => {
    const r = await killUnderLoad('kill-soak', { events: EVENTS, rate: RATE, users: 100_000 }, 10, (s) => console.log(`[scenario 1 soak] ${s}`));
    console.log(`[scenario 1 soak] ${JSON.stringify({ acknowledged: r.acknowledged, kills: r.kills, recoveryMs: r.recoveryMs, recoveryP50Ms: r.recoveryP50Ms, recoveryMaxMs: r.recoveryMaxMs, drainMs: r.drainMs, stop: r.stop, seconds: r.seconds, reconciled: { ...r.reconciled, mismatches: r.reconciled.mismatches.slice(0, 5) } })}`);
    expect(r.kills.length).toBe(10);
    expect(r.acknowledged).toBe(EVENTS);
    expect(r.reconciled.mismatches).toEqual([]);
    expect(r.reconciled.committedEvents).toBe(EVENTS);
    expect(r.reconciled.ack).toMatchObject({ acknowledgedEvents: EVENTS, duplicateSeqs: 0, seqGaps: 0, unaccounted: 0, missingOnBroker: 0, contentMismatches: 0 });
    expect(r.stop).toMatchObject({ code: 0 });
  });
});
