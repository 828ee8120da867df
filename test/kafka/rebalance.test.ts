import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { Engine, MemorySink, ReferenceStore, type EventSource, type OffsetMap, type SourceHandler } from '../../engine/index.js';
import { ensureTopics } from '../../engine/kafka/topics.js';
import { KafkaSource } from '../../engine/source/kafka.js';
import { ReferenceLoader } from '../../engine/kafka/reference-loader.js';
import { EventGenerator } from '../../engine/source/generator.js';
import { TEST_GENERATOR, tempDir } from '../engine/harness.js';
import { BROKERS, eventMessages, produceAll, producer, profileMessages } from './produce.js';

const N = 40_000;
const PARTITIONS = 8;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

type Offsets = Record<number, Record<string, number>>;
const maxInto = (into: Offsets, p: number, topic: string, off: number) => {
  const t = (into[p] ??= {});
  t[topic] = Math.max(t[topic] ?? -1, off);
};

/**
 * Watches what the Kafka source hands the engine and what the engine commits back, and takes a
 * picture of both the moment a revoke drain completes (before the partitions are given up).
 */
class WatchedSource implements EventSource {
  readonly name = 'watched';
  readonly handed: Offsets = {};
  readonly committed: Offsets = {};
  readonly drains: Array<{ partitions: number[]; handed: Offsets; committed: Offsets }> = [];
  constructor(readonly inner: KafkaSource) {}
  start(handler: SourceHandler, resumeAfter: OffsetMap): Promise<void> {
    return this.inner.start({
      ...handler,
      onMessages: (msgs) => {
        for (const m of msgs) maxInto(this.handed, m.partition, String(m.topic), m.offset);
        handler.onMessages(msgs);
      },
      onPartitionsRevoked: async (partitions) => {
        await handler.onPartitionsRevoked!(partitions);
        this.drains.push({ partitions, handed: structuredClone(this.handed), committed: structuredClone(this.committed) });
      },
    }, resumeAfter);
  }
  pause(): void { this.inner.pause(); }
  resume(): void { this.inner.resume(); }
  commit(o: OffsetMap): void {
    for (const [p, byTopic] of Object.entries(o)) for (const [t, off] of Object.entries(byTopic)) maxInto(this.committed, Number(p), t, off);
    this.inner.commit(o);
  }
  stop(): Promise<void> { return this.inner.stop(); }
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startEngine(prefix: string, groupId: string) {
  const dir = tempDir('rebalance');
  dirs.push(dir);
  const store = ReferenceStore.open(dir);
  const loader = new ReferenceLoader({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, store, kafkaConfig: {} });
  await loader.bootstrap();
  const kafka = new KafkaSource({ brokers: BROKERS, groupId, topicPrefix: prefix, kafkaConfig: {}, batchSize: 200 });
  const source = new WatchedSource(kafka);
  // A long commit interval: at the revoke, processed-but-uncommitted work is certain to exist.
  const engine = await Engine.start({ dataDir: dir, partitions: PARTITIONS, shards: 4, workers: 1, commitIntervalMs: 60_000 }, source, new MemorySink());
  return { engine, source, kafka, loader, store };
}

describe('rebalance: a partition is handed over only after its work is committed', () => {
  it('the old owner drains and commits revoked partitions before giving them up, applies nothing after, and every partition is counted exactly once by its owner', async () => {
    const prefix = `rb${Date.now()}-`;
    const groupId = `${prefix}engine`;
    await ensureTopics(BROKERS, prefix, PARTITIONS);
    const gen = new EventGenerator(TEST_GENERATOR);
    const events = gen.take(N);
    const p = await producer();
    await produceAll(p, profileMessages(prefix, gen.profiles(), PARTITIONS));
    const messages = eventMessages(prefix, events, PARTITIONS, 50);
    await produceAll(p, messages);
    await new Promise<void>((r) => p.disconnect(() => r()));

    const a = await startEngine(prefix, groupId);
    await until(() => a.engine.metrics.messages >= 100 && a.kafka.assigned.size > 0, 60_000, 'the first engine to start consuming');
    const b = await startEngine(prefix, groupId);
    await until(() => a.kafka.stats.revokeDrains > 0 && b.kafka.assigned.size > 0, 60_000, 'a rebalance that moves partitions to the second engine');
    const owned = (s: KafkaSource) => new Set([...s.assigned].map((k) => Number(k.slice(k.lastIndexOf(':') + 1))));
    // Caught up: every partition's current owner has committed as many events as there are (lag
    // from cached watermarks can read 0 before a new owner has fetched anything, so it is not used).
    const ownedTotal = () => {
      let n = 0;
      for (let part = 0; part < PARTITIONS; part++) n += ((owned(a.kafka).has(part) ? a.engine : b.engine).committedCounters[part]?.events ?? 0);
      return n;
    };
    await until(() => owned(a.kafka).size + owned(b.kafka).size === PARTITIONS && ownedTotal() >= N, 120_000, 'both engines to catch up');
    await Promise.all([a.engine.dispatcher.drain(), b.engine.dispatcher.drain()]);
    await new Promise((r) => setTimeout(r, 500)); // anything applied twice would show now

    // 1. At each drain's end, every offset handed over for the revoked partitions was committed.
    expect(a.source.drains.length).toBeGreaterThan(0);
    for (const d of a.source.drains) {
      for (const part of d.partitions) expect(d.committed[part] ?? {}, `partition ${part}`).toEqual(d.handed[part] ?? {});
    }
    expect(a.kafka.stats.commitErrors).toBe(0);
    // 2. Nothing from a revoked partition was applied afterwards.
    const revoked = new Set(a.source.drains.flatMap((d) => d.partitions).filter((x) => !owned(a.kafka).has(x)));
    expect(revoked.size).toBeGreaterThan(0);
    const last = a.source.drains.at(-1)!;
    for (const part of revoked) expect(a.source.handed[part], `partition ${part}`).toEqual(last.handed[part]);
    // 3. Each partition's current owner counted its events exactly once.
    let total = 0;
    for (let part = 0; part < PARTITIONS; part++) {
      const owner = owned(a.kafka).has(part) ? a.engine : b.engine;
      total += owner.committedCounters[part]?.events ?? 0;
    }
    expect(total).toBe(N);

    for (const x of [a, b]) {
      await x.engine.stop();
      await x.loader.stop();
      await x.store.close();
    }
  }, 240_000);
});
