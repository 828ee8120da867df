import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import Kafka from 'node-rdkafka';
import { Engine, ReferenceStore, type EventSource, type OffsetMap, type SourceHandler } from '../../engine/index.js';
import { ensureTopics } from '../../engine/kafka/topics.js';
import { KafkaSource } from '../../engine/source/kafka.js';
import { KafkaSink } from '../../engine/sink/kafka-sink.js';
import { ReferenceLoader } from '../../engine/kafka/reference-loader.js';
import { EventGenerator } from '../../engine/source/generator.js';
import { TEST_GENERATOR, expectCoreNumbers, referenceFor, tempDir } from '../engine/harness.js';
import { BROKERS, eventMessages, mergedEventOrder, produceAll, producer, profileMessages, type ProducedRecord } from './produce.js';
import { encodeEventBatch, type EventRecord } from '../../engine/codec/index.js';

/** The source application's JSON for an event: the record without our `source` discriminator and `seq`. */
function toSourceJson(e: EventRecord): string {
  const { source: _s, seq: _q, ...rest } = e;
  return JSON.stringify(rest);
}

const N = 30_000;
const PARTITIONS = 8;
// The normal grace period: the five topics of a partition are merged by message timestamp, so
// late drops are deterministic and the reference model replays the same merged order.
const GRACE = 30_000;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function readTopic(topic: string): Promise<Kafka.Message[]> {
  const c = new Kafka.KafkaConsumer({ 'metadata.broker.list': BROKERS, 'group.id': `reader-${Date.now()}-${Math.random()}`, 'enable.auto.commit': false }, {});
  await new Promise<void>((r, j) => c.connect({ timeout: 20_000 }, (e) => (e ? j(e) : r())));
  const out: Kafka.Message[] = [];
  try {
    const targets = new Map<number, number>();
    for (let p = 0; p < PARTITIONS; p++) {
      const w = await new Promise<Kafka.WatermarkOffsets>((r, j) => c.queryWatermarkOffsets(topic, p, 10_000, (e, o) => (e ? j(e) : r(o))));
      if (w.highOffset > 0) targets.set(p, w.highOffset);
    }
    c.assign(Array.from({ length: PARTITIONS }, (_, p) => ({ topic, partition: p, offset: 0 })));
    c.setDefaultConsumeTimeout(200);
    const deadline = Date.now() + 30_000;
    while (targets.size && Date.now() < deadline) {
      const msgs = await new Promise<Kafka.Message[]>((r, j) => c.consume(1000, (e, m) => (e ? j(e) : r(m))));
      for (const m of msgs) {
        out.push(m);
        if (m.offset + 1 >= (targets.get(m.partition) ?? 0)) targets.delete(m.partition);
      }
    }
  } finally {
    await new Promise<void>((r) => c.disconnect(() => r()));
  }
  return out;
}

/**
 * Hands the engine only the first `limit` messages the real source releases, as if the engine had
 * stopped there; the rest is never seen, so its offsets are not committed and a restart re-reads it.
 */
class PrefixSource implements EventSource {
  readonly name = 'prefix';
  constructor(private readonly inner: EventSource, private left: number) {}
  start(handler: SourceHandler, resumeAfter: OffsetMap): Promise<void> {
    return this.inner.start({
      ...handler,
      onMessages: (msgs) => {
        const take = msgs.slice(0, Math.max(0, this.left));
        this.left -= take.length;
        if (take.length) handler.onMessages(take);
      },
    }, resumeAfter);
  }
  pause(): void { this.inner.pause(); }
  resume(): void { this.inner.resume(); }
  commit(o: OffsetMap): void { this.inner.commit(o); }
  stop(): Promise<void> { return this.inner.stop(); }
}

async function startEngine(dataDir: string, prefix: string, groupId: string, limit = Infinity): Promise<{ engine: Engine; loader: ReferenceLoader; sink: KafkaSink; store: ReferenceStore }> {
  const store = ReferenceStore.open(dataDir);
  const loader = new ReferenceLoader({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, store, kafkaConfig: {} });
  await loader.bootstrap();
  const sink = new KafkaSink({ brokers: BROKERS, topicPrefix: prefix, kafkaConfig: {}, maxAttempts: 5 });
  await sink.connected();
  const kafka = new KafkaSource({ brokers: BROKERS, groupId, topicPrefix: prefix, kafkaConfig: {}, batchSize: 500 });
  const source = Number.isFinite(limit) ? new PrefixSource(kafka, limit) : kafka;
  const engine = await Engine.start({ dataDir, partitions: PARTITIONS, shards: 4, workers: 2, graceMs: GRACE, commitIntervalMs: 300 }, source, sink);
  return { engine, loader, sink, store };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the engine on a real Kafka broker', () => {
  it('consumes in a group, resumes from its LMDB offsets after a restart, produces outputs and dead letters', async () => {
    const prefix = `t${Date.now()}-`;
    const groupId = `${prefix}engine`;
    const dir = tempDir('kafka');
    dirs.push(dir);
    await ensureTopics(BROKERS, prefix, PARTITIONS);
    const gen = new EventGenerator(TEST_GENERATOR);
    const events = gen.take(N);
    const p = await producer();
    await produceAll(p, profileMessages(prefix, gen.profiles(), PARTITIONS));
    // The known event set in every accepted form: FlatBuffers batches, single events (a batch of
    // one), and JSON in the source application's shapes, one event per message. Split messages
    // keep their batch's timestamp, so the merged order (and the reference) is the same.
    const messages: ProducedRecord[] = [];
    eventMessages(prefix, events, PARTITIONS).forEach((m, i) => {
      if (i % 7 === 3) for (const e of m.events!) messages.push({ ...m, value: Buffer.from(toSourceJson(e)), events: [e] });
      else if (i % 11 === 5) for (const e of m.events!) messages.push({ ...m, value: Buffer.from(encodeEventBatch([e])), events: [e] });
      else messages.push(m);
    });
    expect(messages.length).toBeGreaterThan(eventMessages(prefix, events, PARTITIONS).length + 1000);
    await produceAll(p, messages);
    await produceAll(p, [{ topic: `${prefix}web-events`, partition: 3, key: 'poison', value: Buffer.from('not an event at all') }]);
    await new Promise<void>((r) => p.disconnect(() => r()));

    // First run: stop part-way (graceful), then a second run over the same state and group.
    // The first run sees only the first 60 messages the source releases.
    let run = await startEngine(dir, prefix, groupId, 60);
    expect(run.loader.stats.profiles).toBe(TEST_GENERATOR.users);
    await until(() => run.engine.metrics.messages >= 60, 60_000, 'the first 60 messages');
    await run.engine.stop();
    await run.loader.stop();
    await run.store.close();
    const firstRun = run.engine.committedTotals().events;
    expect(firstRun).toBeGreaterThan(0);
    expect(firstRun).toBeLessThan(N);

    run = await startEngine(dir, prefix, groupId);
    await until(() => run.engine.committedTotals().events === N && run.engine.committedTotals().deadLetters === 1, 90_000, 'all events');
    const model = referenceFor(mergedEventOrder(prefix, messages, PARTITIONS), { partitions: PARTITIONS, graceMs: GRACE });
    const ALL = { from: 0, to: Number.MAX_SAFE_INTEGER };
    const q = run.engine.query;
    expect((run.engine.source as KafkaSource).lag()).toBe(0);
    // The second run counted only what the first had not committed.
    expect(run.engine.metrics.events).toBe(N - firstRun);
    expect(model.late.active_users).toBeGreaterThan(0);
    expect(run.engine.committedTotals().late).toEqual(model.late);
    expectCoreNumbers(q, model);
    expect(Object.fromEntries(q.geo(ALL).map((g) => [g.country, g.users]))).toEqual(Object.fromEntries(Object.entries(model.geo).map(([c, g]) => [c, g.users])));
    const alertIds = q.alerts({ limit: 1e9 }).alerts.map((a) => a.alertId).filter((id) => !id.startsWith('LOW_REVENUE') && !id.startsWith('HIGH_ERROR_RATE'));
    expect(alertIds.sort()).toEqual([...model.alerts].sort());
    await run.engine.stop();
    await run.loader.stop();
    await run.store.close();


    const dlq = await readTopic(`${prefix}rta-engine-dlq`);
    expect(dlq.length).toBe(1);
    const headers = Object.assign({}, ...(dlq[0].headers ?? []).map((h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.toString()]))));
    expect(headers).toMatchObject({ code: 'ERR_CODEC_UNKNOWN_FORMAT', 'source-topic': `${prefix}web-events`, 'source-partition': '3' });
    expect(dlq[0].value!.toString()).toBe('not an event at all');
    expect(run.sink.stats.failed).toBe(0);
    expect(run.sink.stats.delivered).toBe(run.sink.stats.produced);
    const alertTopic = await readTopic(`${prefix}dashboard-alerts`);
    const topicIds = new Set(alertTopic.map((m) => m.key!.toString()));
    // Every per-event alert reached the topic (replays re-send the same keys: upserts)...
    expect([...topicIds].filter((id) => !id.startsWith('LOW_REVENUE') && !id.startsWith('HIGH_ERROR_RATE')).sort()).toEqual([...model.alerts].sort());

    // Regression: a rebuilt shard (state directory deleted) replays its partitions from the
    // beginning, not from the group's committed offsets.
    const rebuilt = tempDir('kafka-rebuilt');
    dirs.push(rebuilt);
    run = await startEngine(rebuilt, prefix, groupId);
    await until(() => run.engine.committedTotals().events === N, 90_000, 'all events again after a rebuild');
    await run.engine.stop();
    await run.loader.stop();
    await run.store.close();
  }, 240_000);
});
