import { describe, expect, it } from 'vitest';
import Kafka from 'node-rdkafka';
import { LivePartials } from '../../engine/kafka/live-partials.js';
import { ensureTopics } from '../../engine/kafka/topics.js';
import { META_KEY, encodeValue } from '../../engine/state/changelog-codec.js';
import { BROKERS, produceAll, producer } from '../kafka/produce.js';
import { deleteTopics } from '../reliability/harness.js';

/**
 * Regression: the dashboard-partials reader decoded a commit's progress record outside its
 * per-record error handling, so one it could not read threw out of the whole fetched batch: every
 * later record of that batch (other commits, other partitions) was dropped without a trace, and
 * those views missed their changes for good. An unreadable record must cost that record only.
 */
describe('live partials reader: an unreadable record costs that record only', () => {
  it('the commit\'s records are applied, the later commits and partitions are all there, the record is counted', async () => {
    const prefix = `unreadable${Date.now()}-`;
    const topic = `${prefix}dashboard-partials`;
    const live = new LivePartials({ brokers: BROKERS, topicPrefix: prefix, partitions: 2, instanceId: `${prefix}reader`, kafkaConfig: {} });
    try {
      await ensureTopics(BROKERS, prefix, 2, {}, { changelog: true });
      const revenue = (usd: number) => Buffer.from(encodeValue({ usd, count: 1, byCurrency: { USD: usd }, byTier: {} }));
      const meta = (streamTime: number) => Buffer.from(encodeValue({ streamTime, counters: { events: streamTime, deadLetters: 0, late: {} } }));
      const rec = (partition: number, key: string, value: Buffer) => ({ topic, partition, key: Buffer.from(key), value });
      const p: Kafka.Producer = await producer();
      await produceAll(p, [
        rec(0, '["revenue",60000]', revenue(1)), rec(0, META_KEY, Buffer.from([0xd9, 0x10, 0x41])), // a commit whose progress record is unreadable
        rec(0, '["revenue",120000]', revenue(2)), rec(0, '["revenue",180000]', Buffer.from([0xc7])), rec(0, META_KEY, meta(200_000)),
        rec(1, '["revenue",60000]', revenue(3)), rec(1, META_KEY, meta(100_000)),
      ] as never);
      await new Promise<void>((r) => p.disconnect(() => r()));
      await live.start();
      await Promise.race([live.whenReady(), new Promise((_, j) => setTimeout(() => j(new Error('not ready in 30 s')), 30_000).unref())]);
      const usd = (partition: number, ws: number) => (live.views[partition].state.get([partition, 'revenue', ws]) as { usd: number } | undefined)?.usd;
      expect([usd(0, 60_000), usd(0, 120_000), usd(0, 180_000), usd(1, 60_000)]).toEqual([1, 2, undefined, 3]);
      expect(live.views.map((v) => v.meta?.streamTime)).toEqual([200_000, 100_000]);
      expect(live.stats.unreadable).toBe(2);
      expect(live.stats.lastError).toContain('offset 3');
    } finally {
      await live.stop();
      await deleteTopics(prefix).catch(() => undefined);
    }
  }, 90_000);
});
