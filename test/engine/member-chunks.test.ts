import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import type { Engine } from '../../engine/index.js';
import { MemberLog } from '../../engine/operators/api.js';
import { TEST_GENERATOR, generateEvents, referenceFor, startEmbedded, tempDir, withCommittedState } from './harness.js';

/**
 * Exact user sets (active users per minute, users per country and hour) are stored as member
 * chunks: a commit writes the users added since the last one, every memberChunkMerge-th chunk (3 here, 16 by default) the whole set again.
 * With a commit every 10 ms the windows pass that point many times; a stop and restart in the middle reads
 * the chunks back. Users counted twice or lost show against the reference model.
 */
const N = 60_000;
const model = referenceFor(generateEvents(TEST_GENERATOR, N));
const ALL = { from: 0, to: Number.MAX_SAFE_INTEGER };
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function startEngine(dataDir: string, rate: number): Promise<Engine> {
  return startEmbedded(dataDir, TEST_GENERATOR, N, { rate, eventsPerMessage: 5 }, { partitions: 8, shards: 4, workers: 2, commitIntervalMs: 10, memberChunkMerge: 3 });
}

describe('member chunks of exact user sets', () => {
  it('a log writes each commit\'s members as a chunk, the whole set every mergeAt-th, and continues numbering after a restore', () => {
    const log = new MemberLog(3);
    const members = new Set<number>();
    const writes: Array<[unknown[], unknown]> = [];
    const commit = () => {
      log.write((k, v) => writes.push([k, v]), 60_000, '', (fresh) => [...fresh], () => [...members].sort((a, b) => a - b));
      log.committed();
    };
    const add = (m: number) => {
      members.add(m);
      log.add(m);
    };
    commit();
    expect(writes).toEqual([]); // nothing added: nothing written
    for (const m of [1, 2, 3]) {
      add(m);
      commit();
    }
    add(4);
    add(5);
    commit();
    expect(writes).toEqual([
      [[60_000, '', 1], [1]], [[60_000, '', 2], [2]], [[60_000, '', 3], [3]],
      [[60_000, '', 0], [1, 2, 3, 4, 5]], [[60_000, '', 1], undefined], [[60_000, '', 2], undefined], [[60_000, '', 3], undefined],
    ]);
    writes.length = 0;
    // Read back at startup with chunks 0 and 1 stored: the next chunk is 2.
    const restored = new MemberLog(3);
    restored.restored(0);
    restored.restored(1);
    restored.add(6);
    restored.write((k, v) => writes.push([k, v]), 0, 'x', (f) => f, () => 'full');
    expect(writes).toEqual([[[0, 'x', 2], [6]]]);
    writes.length = 0;
    // A set read from a value stored before member chunks goes to chunk 0 at the next write, new members or not.
    const upgraded = new MemberLog(3);
    upgraded.needsFull = true;
    upgraded.write((k, v) => writes.push([k, v]), 0, 'x', (f) => f, () => 'full');
    expect(writes).toEqual([[[0, 'x', 0], 'full']]);
  });

  it('merged every third chunk and read back on restart: active users and users per country stay exact', async () => {
    const dir = tempDir('members');
    dirs.push(dir);
    const first = await startEngine(dir, 5_000);
    await new Promise((r) => setTimeout(r, 1500));
    await first.stop();
    expect(first.metrics.events).toBeLessThan(N);
    const second = await startEngine(dir, 40_000);
    await second.finished();
    expect(second.committedTotals().events).toBe(N);
    await second.stop();

    await withCommittedState(dir, (q) => {
      // The merge happened (a chunk 0 exists) and deltas were written after it.
      for (const name of ['active_users', 'geo']) {
        const chunks = [...q.windows(name, ALL, true)].map((w) => w.chunk).filter((c) => c !== undefined);
        expect(chunks, name).toContain(0);
        expect(Math.max(...(chunks as number[])), name).toBeGreaterThan(1);
      }
      const rows = q.activeUsers(ALL);
      expect(rows.map((r) => ({ windowStart: r.windowStart, users: r.users }))).toEqual(model.activeUsers);
      const byPlatform: Record<string, number> = {};
      for (const r of rows) for (const [p, n] of Object.entries(r.byPlatform)) byPlatform[`${r.windowStart}|${p}`] = n;
      expect(byPlatform).toEqual(model.activeByPlatform);
      const geo = Object.fromEntries(q.geo(ALL).map((g) => [g.country, g.users]));
      expect(Object.keys(model.geo).length).toBeGreaterThan(3);
      for (const [c, m] of Object.entries(model.geo)) expect(geo[c], c).toBe(m.users);
    });
  }, 120_000);
});
