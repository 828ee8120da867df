import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import Kafka from 'node-rdkafka';
import { INPUT_TOPICS } from '../../engine/kafka/topics.js';
import { BROKERS, PARTITIONS, SHARDS, deleteTopics, health, sleep, startEngine, stopEngine, tempDir, uniquePrefix, waitHealth, type EngineProcess } from './harness.js';
import { reconcile } from './reconcile.js';
import { caughtUp, groupSettings, startAckedLoad } from './scenarios.js';

interface SourceStats { consumerFailedSince: number; consumerReplacements: number; lastError: string }

/**
 * Regression test for the fatal consumer error found by scenario 3 (broker SIGKILLed and
 * restarted): librdkafka fences a static member "by another consumer with the same
 * group.instance.id" (after a coordinator restart it does so to itself) and its consumer is then
 * unusable. The engine used to keep serving with no partition, a lag of 0 and health UP,
 * consuming nothing until restarted. Here the fence is made deterministic: a second consumer
 * joins the group with the engine's group.instance.id, which takes the member over.
 */
describe('Kafka consumer fenced (fatal consumer error)', () => {
  it('replaces its consumer, says DEGRADED meanwhile, resumes from the stored offsets, counts exactly', async () => {
    const name = 'fenced';
    const load = { events: 200_000, rate: 8_000, users: 20_000 };
    const prefix = uniquePrefix(name);
    const root = tempDir(name);
    const dataDir = path.join(root, 'state');
    const ackLog = path.join(root, 'acks.tsv');
    const groupId = `${prefix}engine`;
    const instance = `${prefix}engine-1`;
    let engine: EngineProcess | null = null;
    let intruder: Kafka.KafkaConsumer | null = null;
    try {
      const lg = await startAckedLoad(prefix, load, ackLog);
      engine = startEngine({ prefix, groupId, dataDir, extra: groupSettings(instance) });
      const url = await engine.url;
      await waitHealth(engine, caughtUp(load), 120_000, 'caught up before the fence');
      // The intruder: same group, same group.instance.id.
      let intruderAssigned = 0;
      const c = new Kafka.KafkaConsumer({
        'metadata.broker.list': BROKERS, 'group.id': groupId, 'group.instance.id': instance, 'enable.auto.commit': false, 'partition.assignment.strategy': 'range',
        rebalance_cb: (err: Kafka.LibrdKafkaError, a: Kafka.Assignment[]) => {
          try {
            if (err.code === Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS) {
              c.assign(a);
              intruderAssigned += a.length;
            } else c.unassign();
          } catch { /* fenced in turn */ }
        },
      }, {});
      intruder = c;
      c.on('event.error', () => undefined);
      await new Promise<void>((r, j) => c.connect({ timeout: 20_000 }, (e) => (e ? j(e) : r())));
      c.subscribe(INPUT_TOPICS.map((t) => prefix + t));
      c.setDefaultConsumeTimeout(100);
      const fencedAt = Date.now();
      // Poll the intruder (its group work needs the consumer to be polled) until the engine notices.
      const statuses: string[] = [];
      let stats: SourceStats | null = null;
      while (Date.now() - fencedAt < 60_000) {
        await new Promise<void>((r) => c.consume(100, () => r()));
        const h = (await health(url)) as unknown as { overallStatus: string; stream: { sourceStats: SourceStats } } | null;
        if (h) {
          statuses.push(h.overallStatus);
          stats = h.stream.sourceStats;
          if (stats.consumerFailedSince > 0 || stats.consumerReplacements > 0) break;
        }
        await sleep(200);
      }
      console.log(`[fenced] intruder assigned ${intruderAssigned} partitions; engine source ${JSON.stringify(stats)} after ${Date.now() - fencedAt} ms`);
      await new Promise<void>((r) => c.disconnect(() => r()));
      intruder = null;
      expect(stats!.consumerFailedSince > 0 || stats!.consumerReplacements > 0).toBe(true);
      expect(stats!.lastError).toMatch(/fenced|fatal/i);
      // DEGRADED until the replacement has its partitions, then UP and caught up.
      const degraded = await waitHealth(engine, (h) => h.overallStatus === 'DEGRADED' || (h as unknown as { stream: { sourceStats: SourceStats } }).stream.sourceStats.consumerReplacements > 0, 30_000, 'DEGRADED or replaced');
      const back = await waitHealth(engine, (h) => h.overallStatus === 'UP' && (h as unknown as { stream: { sourceStats: SourceStats } }).stream.sourceStats.consumerReplacements >= 1 && (lg.finished || caughtUp(load)(h)), 120_000, 'the replaced consumer to catch up');
      console.log(`[fenced] replaced and caught up ${back.at - fencedAt} ms after the intruder joined (seen DEGRADED: ${degraded.h.overallStatus})`);
      const summary = await lg.done;
      await waitHealth(engine, (h) => h.stream.committedEvents >= summary.records && h.freshness.consumerLagMessages === 0, 120_000, 'every acknowledged event committed');
      const stop = await stopEngine(engine, 'SIGTERM');
      engine = null;
      expect(stop.code).toBe(0);
      const r = await reconcile({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, shards: SHARDS, dataDir, ackLog });
      console.log(`[fenced] ${JSON.stringify({ ...r, mismatches: r.mismatches.slice(0, 5) })}`);
      expect(r.mismatches).toEqual([]);
      expect(r.committedEvents).toBe(load.events);
      expect(r.sequences).toMatchObject({ notCounted: 0, duplicates: 0, gaps: 0, unexpected: 0 });
    } finally {
      if (intruder) await new Promise<void>((r) => intruder!.disconnect(() => r()));
      if (engine) await stopEngine(engine, 'SIGKILL');
      await deleteTopics(prefix).catch(() => undefined);
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 240_000);
});
