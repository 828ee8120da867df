import { describe, expect, it } from 'vitest';
import { restQueriesDuringCrashes } from './rest-under-crashes.js';
import type { WorkerFault } from './worker-faults.js';

// Scenario 9: many concurrent long REST queries during worker crashes.
describe('concurrent long REST queries during worker crashes (scenario 9)', () => {
  it('only 200s and clear 503s, no reader-slot exhaustion, store growth bounded', async () => {
    const faults: WorkerFault[] = ['exit', 'exit', 'oom', 'throw', 'exit', 'exit', 'oom', 'exit'];
    const r = await restQueriesDuringCrashes({ clients: 60, faults, faultEveryMs: 1200, timeScale: 120, rate: 4000 }, (s) => console.log(`[scenario 9] ${s}`));
    expect(r.engineAlive).toBe(true);
    expect(r.faultsFired).toBe(faults.length);
    expect(r.shardFailures).toBeGreaterThanOrEqual(faults.length);
    expect(r.requests).toBeGreaterThan(500);
    // Only 200 and 503 (with a code), no 500, no dropped or timed-out request.
    expect(Object.keys(r.byStatus).filter((s) => s !== '200' && s !== '503')).toEqual([]);
    expect(Object.keys(r.errorCodes).filter((c) => !/^503 ERR_/.test(c))).toEqual([]);
    // Reader slots: LMDB has 126; dead threads must not leave theirs behind.
    expect(r.readerSlots.max).toBeLessThan(40);
    expect(Math.max(...r.readerSlots.afterFaults)).toBeLessThanOrEqual(Math.max(...r.readerSlots.before) + 4);
    // Store growth bounded: no more than the data written meanwhile would explain (+ 50 %, + 16 MB).
    expect(r.storeMB.end).toBeLessThanOrEqual(r.storeMB.beforeFaults * 1.5 + 16);
    expect(r.finalStatus).toBe('UP');
  }, 240_000);
});
