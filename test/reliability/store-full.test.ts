import { describe, expect, it } from 'vitest';
import { storeFullUnderLoad } from './store-full.js';

// Scenario 7: disk full under load (a tmpfs data directory; needs root to mount), then a missing and a corrupt shard store.
describe('LMDB disk full, missing and corrupt state (scenario 7)', () => {
  it('pauses without committing past the failed write, resumes with nothing lost; a corrupt store gives a clear error; deleted shards rebuild from Kafka', async () => {
    const events = 160_000;
    const r = await storeFullUnderLoad('storefull', { events, rate: 8_000, users: 20_000 }, 8_000, 64 * 1024 * 1024, (s) => console.log(`[scenario 7] ${s}`));
    const brief = (x: typeof r.reconciled) => ({ ...x, mismatches: x.mismatches.slice(0, 5) });
    console.log(`[scenario 7] ${JSON.stringify({ ...r, samples: r.samples.map((s) => ({ ...s, lastFailures: s.lastFailures.slice(0, 1).map((f) => f.slice(0, 160)) })), reconciled: brief(r.reconciled), rebuild: { ...r.rebuild, reconciled: brief(r.rebuild.reconciled) } })}`);
    // While full: a store-full failure seen, health DEGRADED (never UP, never given up), the engine alive,
    // consumption paused (lag grows) and Kafka never ahead of LMDB.
    expect(r.storeFullSeen).toBe(true);
    expect(r.statusesWhileFull).not.toContain('DOWN');
    expect(r.samples.slice(2).every((s) => s.status === 'DEGRADED')).toBe(true);
    expect(r.samples.flatMap((s) => s.kafkaAhead)).toEqual([]);
    expect(r.lagWhileFull[1]).toBeGreaterThan(r.lagWhileFull[0] + 20);
    expect(r.failuresWhileFull).toBeLessThan(40);
    expect(r.engineAliveThroughout).toBe(true);
    // After the space returned: resumed, exact.
    expect(r.resumeMs).toBeLessThan(60_000);
    expect(r.stop.code).toBe(0);
    expect(r.acknowledged).toBe(events);
    expect(r.reconciled.mismatches).toEqual([]);
    expect(r.reconciled.committedEvents).toBe(events);
    expect([r.reconciled.lost, r.reconciled.duplicated, r.reconciled.lostPerKey, r.reconciled.duplicatedPerKey]).toEqual([0, 0, 0, 0]);
    // A corrupt store: the engine refuses to start, naming the shard and the rebuild path.
    expect(r.corrupt.exitCode).toBe(1);
    expect(r.corrupt.error).toMatch(/ERR_STORE_CORRUPT.*shard-2.*delete .*shard-2 and restart/s);
    // Shards 1 and 2 deleted: rebuilt from the beginning of the topics, exact again.
    expect(r.rebuild.processed).toBeGreaterThan(events * 0.4);
    expect(r.rebuild.reconciled.mismatches).toEqual([]);
    expect(r.rebuild.reconciled.committedEvents).toBe(events);
    expect([r.rebuild.reconciled.lost, r.rebuild.reconciled.duplicated, r.rebuild.reconciled.lostPerKey, r.rebuild.reconciled.duplicatedPerKey]).toEqual([0, 0, 0, 0]);
  }, 240_000);
});
