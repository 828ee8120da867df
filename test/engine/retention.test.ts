import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { MemorySink, partitionOf } from '../../engine/index.js';
import { TEST_GENERATOR, runEmbedded, tempDir } from './harness.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('retention', () => {
  it('deletes windows, closed sessions, funnel hours and alerts older than the retention period of event time', async () => {
    const dir = tempDir('retention');
    dirs.push(dir);
    const retentionMs = 40 * 60_000;
    // ~83 minutes of event time with a 40-minute retention.
    const sink = new MemorySink();
    const engine = await runEmbedded(dir, TEST_GENERATOR, 100_000, { workers: 2, retentionMs, commitIntervalMs: 50 }, sink);
    try {
      const progress = engine.query.progress();
      for (const { partition, streamTime } of progress) {
        // Retention runs whenever stream time has moved a minute: nothing older than a minute
        // past the cutoff may remain.
        const cutoff = streamTime - retentionMs - 60_000;
        for (const name of ['active_users', 'platform_events', 'revenue', 'performance', 'account_sharing']) {
          const old = [...engine.query.windows(name, { from: 0, to: cutoff })].filter((w) => w.partition === partition);
          expect(old).toEqual([]);
        }
      }
      // Recent state is still there, so the deletion is not simply "everything".
      const newest = Math.max(...progress.map((p) => p.streamTime));
      expect(engine.query.activeUsers({ from: newest - retentionMs, to: newest + 1 }).length).toBeGreaterThan(30);
      const someUser = engine.query.user('user-1');
      for (const s of someUser.sessions as Array<{ end: number }>) expect(s.end).toBeGreaterThanOrEqual(newest - retentionMs - 60_000 * 2);

      // Alerts: a user's alerts live in the user's partition and go with its retention; global
      // ones (the alert store) go by the slowest partition's stream time, pruned asynchronously.
      const streamTime = new Map(progress.map((p) => [p.partition, p.streamTime]));
      const slowest = Math.min(...progress.map((p) => p.streamTime).filter((t) => t > 0));
      const ageOf = (a: { windowStart: number; timestamp: number }) => Math.max(a.windowStart, a.timestamp);
      const cutoffOf = (a: { userId: string }) => (a.userId ? streamTime.get(partitionOf(a.userId, 8))! : slowest) - retentionMs - 60_000;
      const raisedOld = [...sink.alertsById.values()].filter((a) => ageOf(a) < cutoffOf(a));
      expect(raisedOld.length).toBeGreaterThan(0); // there was something to delete
      let stale: unknown[] = [];
      for (let i = 0; i < 50; i++) {
        stale = engine.query.alerts({ limit: 1_000_000 }).alerts.filter((a) => ageOf(a) < cutoffOf(a));
        if (stale.length === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(stale).toEqual([]);
      expect(engine.query.alerts({ since: newest - retentionMs / 2 }).total).toBeGreaterThan(0);
    } finally {
      await engine.stop();
    }
  }, 120_000);
});
