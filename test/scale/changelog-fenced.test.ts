import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { ChangelogWriter } from '../../engine/kafka/changelog.js';
import { ensureTopics } from '../../engine/kafka/topics.js';
import { ChangelogBatchBuilder, encodeKey } from '../../engine/state/changelog-codec.js';
import { tempDir } from '../engine/harness.js';
import { BROKERS } from '../kafka/produce.js';
import { deleteTopics } from '../reliability/harness.js';

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<never>((_, j) => setTimeout(() => j(new Error(`${what}: not settled within ${ms} ms`)), ms).unref())]);
}

function commitOf(partition: number, n: number) {
  const b = new ChangelogBatchBuilder();
  b.add(partition, encodeKey(['alert-status', `A:${n}`]), { status: 'ACKNOWLEDGED', at: n });
  b.addMeta(partition, { offsets: { 0: n }, streamTime: n, counters: { events: n, deadLetters: 0, late: {} } });
  return b.build();
}

/**
 * Regression: a changelog producer fenced by the partition's new owner (this process is a zombie
 * for it) resolved its writes as if they were in the changelog, and left the writes queued behind
 * the fenced transaction pending forever. Engine.writeState (alert statuses, global alerts) took
 * the first for "durable": the acknowledgement answered 200 and the global alerts were sent, while
 * the partition's next owner never saw them (a lost status, a global alert raised twice); the
 * second hung revocations and shutdowns, which wait for every pending changelog write.
 */
describe('changelog writer: a fenced producer reports its writes as not written', () => {
  it('writes of a fenced owner settle, naming the partition as not written; the new owner\'s are written', async () => {
    const prefix = `fenced${Date.now()}-`;
    const dirs = [tempDir('fenced-a'), tempDir('fenced-b')];
    const opts = (dataDir: string) => ({ brokers: BROKERS, topicPrefix: prefix, groupId: `${prefix}engine`, kafkaConfig: {}, dataDir });
    const old = new ChangelogWriter(opts(dirs[0]));
    const next = new ChangelogWriter(opts(dirs[1]));
    try {
      await ensureTopics(BROKERS, prefix, 2, {}, { changelog: true });
      await old.openPartitions([0]);
      expect(await within(old.write(commitOf(0, 1)), 30_000, 'the owner\'s write')).toEqual([]);
      // The partition moves: the next owner's initTransactions fences the old one.
      await next.openPartitions([0]);
      const first = old.write(commitOf(0, 2));
      const queued = old.write(commitOf(0, 3)); // behind the first, while its transaction runs
      expect(await within(first, 60_000, 'the zombie\'s write')).toEqual([0]);
      expect(await within(queued, 10_000, 'the write queued behind it')).toEqual([0]);
      expect(await within(old.write(commitOf(0, 4)), 5_000, 'a later write')).toEqual([0]);
      expect(await within(next.write(commitOf(0, 5)), 30_000, 'the new owner\'s write')).toEqual([]);
      expect(old.stats.fenced).toBe(1);
    } finally {
      await Promise.race([Promise.all([old.close(), next.close()]), new Promise((r) => setTimeout(r, 15_000).unref())]);
      await deleteTopics(prefix).catch(() => undefined);
      for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    }
  }, 180_000);
});
