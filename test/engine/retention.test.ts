import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { TEST_GENERATOR, runEmbedded, tempDir } from './harness.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('retention', () => {
  it('deletes windows, closed sessions and funnel hours older than the retention period of event time', async () => {
    const dir = tempDir('retention');
    dirs.push(dir);
    const retentionMs = 40 * 60_000;
    // ~83 minutes of event time with a 40-minute retention.
    const engine = await runEmbedded(dir, TEST_GENERATOR, 100_000, { workers: 2, retentionMs, commitIntervalMs: 50 });
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
    } finally {
      await engine.stop();
    }
  }, 120_000);
});
