import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import Kafka from 'node-rdkafka';
import { Engine, MemorySink, ReferenceStore } from '../../engine/index.js';
import { CHANGELOG_TOPIC, INPUT_TOPICS } from '../../engine/kafka/topics.js';
import { KafkaSource } from '../../engine/source/kafka.js';
import { ReferenceLoader } from '../../engine/kafka/reference-loader.js';
import { ChangelogRestorer, ChangelogWriter } from '../../engine/kafka/changelog.js';
import { ShardStore } from '../../engine/state/shard-store.js';
import { META_KEY, encodeValue } from '../../engine/state/changelog-codec.js';
import { parseEngineConfig } from '../../engine/config.js';
import { expectCoreNumbers, tempDir } from '../engine/harness.js';
import { BROKERS } from '../kafka/produce.js';
import { produceInput } from './cluster.js';

const N = 20_000;
const PARTITIONS = 8;
const SHARDS = 4;
const GRACE = 30_000;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startEngine(dataDir: string, prefix: string, groupId: string) {
  const store = ReferenceStore.open(dataDir);
  const loader = new ReferenceLoader({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, store, kafkaConfig: {} });
  await loader.bootstrap();
  const kafka = new KafkaSource({ brokers: BROKERS, groupId, topicPrefix: prefix, kafkaConfig: {}, batchSize: 500 });
  const copts = { brokers: BROKERS, topicPrefix: prefix, groupId, kafkaConfig: {}, dataDir };
  const writer = new ChangelogWriter(copts);
  const engine = await Engine.start({ dataDir, partitions: PARTITIONS, shards: SHARDS, workers: 1, graceMs: GRACE, commitIntervalMs: 300, changelog: true }, kafka, new MemorySink(), { writer, restorer: new ChangelogRestorer(copts) });
  const stop = async () => {
    await engine.stop();
    await loader.stop();
    await store.close();
  };
  return { engine, kafka, writer, stop };
}

/** Every key and value of the partitions' state in a data directory (msgpack-equal values). */
async function dump(dataDir: string): Promise<Map<string, unknown>> {
  const cfg = parseEngineConfig({ dataDir, partitions: PARTITIONS, shards: SHARDS });
  const out = new Map<string, unknown>();
  for (let s = 0; s < SHARDS; s++) {
    const store = ShardStore.open(dataDir, s, cfg.mapSizeBytes);
    for (const { key, value } of store.state.getRange({})) out.set(JSON.stringify(key), value);
    await store.close();
  }
  return out;
}

const totalCommitted = (e: Engine) => Object.values(e.committedCounters).reduce((n, c) => n + c.events, 0);

describe('changelog: a partition restored on another machine', () => {
  it('a new instance restores every partition from the changelog (nothing reprocessed), its store equals the old owner\'s and the reference; the old store, when current, is kept without a restore; with the input deleted, a restore is exact and the control without one is not', async () => {
    const prefix = `cl${Date.now()}-`;
    const groupId = `${prefix}engine`;
    const input = await produceInput(prefix, N, { graceMs: GRACE });
    await input.close();
    const { model } = input;

    const dirA = tempDir('changelog-a');
    const dirB = tempDir('changelog-b');
    dirs.push(dirA, dirB);
    const a = await startEngine(dirA, prefix, groupId);
    await until(() => totalCommitted(a.engine) === N, 120_000, 'instance A to commit every event');
    expect(a.engine.restores.map((r) => r.mode)).toEqual(new Array(PARTITIONS).fill('full'));
    expect(a.engine.restores.every((r) => r.records === 0)).toBe(true);
    await a.stop();
    expect(a.writer.stats.transactions).toBeGreaterThan(0);

    // B: another machine (empty data directory) in the same group.
    const b = await startEngine(dirB, prefix, groupId);
    await until(() => b.engine.ownedPartitions().length === PARTITIONS && totalCommitted(b.engine) === N, 120_000, 'instance B to restore every partition');
    await new Promise((r) => setTimeout(r, 1000));
    expect(b.engine.metrics.events).toBe(0); // restored, not reprocessed
    expect(b.engine.restores.map((r) => r.mode)).toEqual(new Array(PARTITIONS).fill('full'));
    expect(b.engine.restores.reduce((n, r) => n + r.records, 0)).toBeGreaterThan(PARTITIONS);
    expectCoreNumbers(b.engine.query, model);
    expect(b.engine.committedTotals().late).toEqual(model.late);
    await b.stop();
    const [stateA, stateB] = [await dump(dirA), await dump(dirB)];
    expect(stateB.size).toBe(stateA.size);
    expect(stateB).toEqual(stateA);

    // A again, on its own store: nothing changed since it stopped, so its store is current.
    const a2 = await startEngine(dirA, prefix, groupId);
    await until(() => a2.engine.ownedPartitions().length === PARTITIONS, 60_000, 'A to take every partition back');
    expect(a2.engine.restores.map((r) => r.mode)).toEqual(new Array(PARTITIONS).fill('current'));
    expect(totalCommitted(a2.engine)).toBe(N);
    expect(a2.engine.metrics.events).toBe(0);
    await a2.stop();

    // The input's records are deleted (retention): state can come only from the changelog.
    await truncateInput(prefix);
    const dirC = tempDir('changelog-c');
    dirs.push(dirC);
    const c = await startEngine(dirC, prefix, groupId);
    await until(() => c.engine.ownedPartitions().length === PARTITIONS && totalCommitted(c.engine) === N, 120_000, 'instance C to restore every partition with the input gone');
    expectCoreNumbers(c.engine.query, model);
    await c.stop();
    // Control: the same take-over without the restore loses everything the input no longer holds.
    const dirD = tempDir('changelog-d');
    dirs.push(dirD);
    process.env.RTA_TEST_SKIP_RESTORE = '1';
    try {
      const d = await startEngine(dirD, prefix, groupId);
      await until(() => d.engine.ownedPartitions().length === PARTITIONS, 60_000, 'instance D to own every partition');
      await new Promise((r) => setTimeout(r, 2000));
      expect(totalCommitted(d.engine)).toBe(0);
      expect(() => expectCoreNumbers(d.engine.query, model)).toThrow();
      await d.stop();
    } finally {
      delete process.env.RTA_TEST_SKIP_RESTORE;
    }

  }, 300_000);

  it('a torn commit (a transaction left open by a killed owner) is never applied by a restore, though it is on the log', async () => {
    const prefix = `clt${Date.now()}-`;
    const groupId = `${prefix}engine`;
    const input = await produceInput(prefix, N / 4, { graceMs: GRACE });
    await input.close();
    const { model } = input;

    const dirA = tempDir('changelog-torn-a');
    dirs.push(dirA);
    const a = await startEngine(dirA, prefix, groupId);
    // Timed out once in six runs on 2026-11-30 (a fork crash in CI once too), cause not found: say where A stood.
    await until(() => totalCommitted(a.engine) === N / 4, 120_000, 'instance A to commit every event').catch((e: Error) => {
      throw new Error(`${e.message}: committed ${totalCommitted(a.engine)} of ${N / 4}, lastError ${a.engine.lastError?.message ?? 'none'}, shards ${JSON.stringify(a.engine.dispatcher.channelInfo())}, source ${JSON.stringify(a.engine.source.stats ?? {})}`, { cause: e });
    });
    await a.stop();

    // A "killed" owner of partition 0: its transaction holds an overwrite of every platform_events
    // window of the partition and a meta claiming far more events; it is never committed.
    const topic = prefix + CHANGELOG_TOPIC;
    const torn = new Kafka.Producer({ 'metadata.broker.list': BROKERS, 'transactional.id': `${groupId}-changelog-0`, dr_cb: true });
    torn.setPollInterval(10);
    await new Promise<void>((r, j) => torn.connect({ timeout: 20_000 }, (e) => (e ? j(e) : r())));
    await new Promise<void>((r, j) => torn.initTransactions(20_000, (e) => (e ? j(e) : r())));
    await new Promise<void>((r, j) => torn.beginTransaction((e) => (e ? j(e) : r())));
    const cfg = parseEngineConfig({ dataDir: dirA, partitions: PARTITIONS, shards: SHARDS });
    const s0 = ShardStore.open(dirA, 0, cfg.mapSizeBytes);
    const windows = [...s0.scan(0, 'platform_events')];
    const meta0 = s0.readMeta(0)!;
    await s0.close();
    expect(windows.length).toBeGreaterThan(0);
    for (const [k, v] of windows) torn.produce(topic, 0, Buffer.from(encodeValue({ ...(v as object), n: 1_000_000 })), JSON.stringify(['platform_events', ...k]));
    torn.produce(topic, 0, Buffer.from(encodeValue({ ...meta0, counters: { ...meta0.counters!, events: 9_999_999 } })), META_KEY);
    torn.flush(10_000, () => undefined);
    await new Promise((r) => setTimeout(r, 1000));
    // The torn records are on the log (a read_uncommitted reader sees them)...
    const uncommitted = await countTorn(topic, 'read_uncommitted');
    expect(uncommitted).toBeGreaterThanOrEqual(windows.length + 1);
    expect(await countTorn(topic, 'read_committed')).toBe(0);
    // ...and the owner is SIGKILLed: the process vanishes without aborting (the client is just dropped).

    // B, an empty machine, takes over: fences the open transaction and restores what was committed.
    const dirB = tempDir('changelog-torn-b');
    dirs.push(dirB);
    const b = await startEngine(dirB, prefix, groupId);
    await until(() => b.engine.ownedPartitions().length === PARTITIONS && totalCommitted(b.engine) === N / 4, 120_000, 'instance B to restore');
    expect(b.engine.metrics.events).toBe(0);
    expect(b.engine.committedCounters[0].events).toBe(meta0.counters!.events);
    expectCoreNumbers(b.engine.query, model);
    await b.stop();
    torn.disconnect();
  }, 300_000);
});

/**
 * Deletes every record of the input topics (as their retention would, in time): from then on a
 * partition's state can only come from the changelog.
 */
async function truncateInput(prefix: string): Promise<void> {
  const c = new Kafka.KafkaConsumer({ 'metadata.broker.list': BROKERS, 'group.id': `trunc-${Date.now()}` }, {});
  await new Promise<void>((r, j) => c.connect({ timeout: 20_000 }, (e) => (e ? j(e) : r())));
  const args: string[] = [];
  for (const t of INPUT_TOPICS) {
    for (let p = 0; p < PARTITIONS; p++) {
      const w = await new Promise<Kafka.WatermarkOffsets>((r, j) => c.queryWatermarkOffsets(prefix + t, p, 10_000, (e, o) => (e ? j(e) : r(o))));
      if (w.highOffset > 0) args.push(`${prefix}${t}:${p}:${w.highOffset}`);
    }
  }
  await new Promise<void>((r) => c.disconnect(() => r()));
  // The broker's jars: this checkout's cache has them only if it started the broker itself (another
  // checkout's broker may be the one answering), so fetch them first (a no-op when present).
  execFileSync(process.execPath, ['kafka/kafka.mjs', 'fetch'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const libs = path.resolve(process.env.KAFKA_CACHE_DIR ?? '.cache/kafka', 'libs');
  execFileSync('java', ['-cp', `${libs}/*`, path.resolve('test/scale/DeleteRecords.java'), BROKERS, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Records on the changelog whose value claims 1,000,000 events in a window or 9,999,999 in a partition. */
async function countTorn(topic: string, isolation: 'read_committed' | 'read_uncommitted'): Promise<number> {
  const c = new Kafka.KafkaConsumer({ 'metadata.broker.list': BROKERS, 'group.id': `torn-${Date.now()}-${Math.random()}`, 'enable.auto.commit': false, 'isolation.level': isolation, 'enable.partition.eof': true }, {});
  await new Promise<void>((r, j) => c.connect({ timeout: 20_000 }, (e) => (e ? j(e) : r())));
  let eof = false;
  c.on('partition.eof', () => (eof = true));
  c.assign([{ topic, partition: 0, offset: 0 }]);
  c.setDefaultConsumeTimeout(200);
  let n = 0;
  const deadline = Date.now() + 20_000;
  const { decodeValue } = await import('../../engine/state/changelog-codec.js');
  while (!eof && Date.now() < deadline) {
    const msgs = await new Promise<Kafka.Message[]>((r, j) => c.consume(1000, (e, m) => (e ? j(e) : r(m))));
    for (const m of msgs) {
      if (!m.value) continue;
      const v = decodeValue(m.value) as { n?: number; counters?: { events: number } };
      if (v.n === 1_000_000 || v.counters?.events === 9_999_999) n++;
    }
  }
  await new Promise<void>((r) => c.disconnect(() => r()));
  return n;
}
