import { describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import Kafka from 'node-rdkafka';
import { EventBatchReader, type EventRecord } from '../../engine/codec/index.js';
import { INPUT_TOPICS, topicSpecs } from '../../engine/kafka/topics.js';
import { createdBefore } from '../../bench/e2e-latency.js';
import { BROKERS } from './produce.js';

const run = promisify(execFile);

/** Every event on the input topics of `prefix`, read from the beginning until `expected` arrived (or 30 s). */
async function readEvents(prefix: string, expected: number): Promise<EventRecord[]> {
  const consumer = new Kafka.KafkaConsumer({ 'metadata.broker.list': BROKERS, 'group.id': `${prefix}check`, 'enable.auto.commit': false }, { 'auto.offset.reset': 'earliest' });
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 20_000 }, (err) => (err ? reject(err) : resolve())));
  consumer.assign(INPUT_TOPICS.flatMap((t) => Array.from({ length: 8 }, (_, p) => ({ topic: prefix + t, partition: p, offset: 0 }))));
  const reader = new EventBatchReader();
  const out: EventRecord[] = [];
  const deadline = Date.now() + 30_000;
  try {
    while (out.length < expected && Date.now() < deadline) {
      const batch = await new Promise<Kafka.Message[]>((resolve, reject) => consumer.consume(1000, (err, m) => (err ? reject(err) : resolve(m))));
      for (const m of batch) {
        reader.reset(m.value!, 0, m.value!.length);
        for (let i = 0; i < reader.count; i++) {
          reader.select(i);
          out.push(reader.toRecord());
        }
      }
    }
    // Nothing more than expected: wait a moment for stragglers.
    const extra = await new Promise<Kafka.Message[]>((resolve, reject) => consumer.consume(100, (err, m) => (err ? reject(err) : resolve(m))));
    for (const m of extra) out.push(...Array.from({ length: reader.reset(m.value!, 0, m.value!.length).count }, () => ({}) as EventRecord));
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
  return out;
}

async function deleteTopics(prefix: string): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': BROKERS });
  for (const s of topicSpecs(prefix, 8)) await new Promise<void>((resolve) => admin.deleteTopic(s.name, 10_000, () => resolve()));
  admin.disconnect();
}

describe('loadgen --threads 2', () => {
  it('sends exactly --num-records events, each thread its own users, stamped with their scheduled wall-clock time', async () => {
    const prefix = `lgt${Date.now()}-`;
    try {
      await check(prefix);
    } finally {
      await deleteTopics(prefix);
    }
  }, 90_000);

  // Ctrl-C in a terminal signals every process of the group; a supervisor's SIGTERM only loadgen.
  for (const [threads, signal, group] of [[2, 'SIGTERM', false], [2, 'SIGINT', true], [1, 'SIGINT', false]] as const) {
    it(`stops on ${signal}${group ? ' to its process group' : ''} with --threads ${threads}: sends what it generated, waits for its delivery reports, reports it, exits 0`, async () => {
      const prefix = `lgs${Date.now()}-`;
      try {
        await checkStop(prefix, threads, signal, group);
      } finally {
        await deleteTopics(prefix);
      }
    }, 90_000);
  }
});

async function checkStop(prefix: string, threads: number, signal: NodeJS.Signals, group: boolean): Promise<void> {
  const child = spawn(process.execPath, [path.resolve('dist/loadgen/loadgen.js'), '--bootstrap-server', BROKERS, '--threads', String(threads), '--throughput', '20000',
    '--num-records', '10000000', '--users', '2000', '--events-per-batch', '200', '--topic-prefix', prefix, '--reporting-interval', '500'], { stdio: ['ignore', 'pipe', 'pipe'], detached: group });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // Two progress lines: the schedule runs and events are being acknowledged.
  const deadline = Date.now() + 40_000;
  while ((err.match(/records acked/g) ?? []).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(err).toMatch(/records acked/);
  const stoppedAt = Date.now();
  if (group) process.kill(-child.pid!, signal);
  else child.kill(signal);
  const code = await exited;
  expect(code, `stderr: ${err.slice(-1000)}`).toBe(0);
  expect(Date.now() - stoppedAt).toBeLessThan(15_000);
  expect(err).toMatch(new RegExp(`loadgen: ${signal}: stopping`));
  const summary = JSON.parse(out.trim().split('\n').at(-1)!);
  expect(summary).toMatchObject({ bench: 'loadgen', errors: 0, threads, stopped: true });
  expect(summary.records).toBeGreaterThan(0);
  expect(summary.records).toBeLessThan(10_000_000);
  for (const t of summary.perThread) expect(t.acked).toBe(t.sent);
  // What the summary counts is exactly what reached the broker: nothing generated was dropped.
  const events = await readEvents(prefix, summary.records);
  expect(events.length).toBe(summary.records);
}

/** Runs loadgen --threads 2 into topics of `prefix` and checks what reached the broker. */
async function check(prefix: string): Promise<void> {
  const { stdout } = await run(process.execPath, [path.resolve('dist/loadgen/loadgen.js'), '--bootstrap-server', BROKERS, '--threads', '2', '--throughput', '40000',
    '--num-records', '20001', '--users', '2000', '--events-per-batch', '200', '--topic-prefix', prefix, '--timestamps', 'wall', '--reporting-interval', '200'], { timeout: 60_000 });
  const summary = JSON.parse(stdout.trim().split('\n').at(-1)!);
  expect(summary).toMatchObject({ bench: 'loadgen', records: 20001, errors: 0, threads: 2 });
  expect(summary.perThread).toEqual([{ sent: 10001, acked: 10001, errors: 0 }, { sent: 10000, acked: 10000, errors: 0 }]);

  const events = await readEvents(prefix, 20001);
  expect(events.length).toBe(20001);
  const ids = new Set(events.map((e) => ('eventId' in e ? e.eventId : e.transactionId)));
  expect(ids.size).toBe(20001);
  const users = events.map((e) => e.userId).filter(Boolean).map((u) => Number(u.slice('user-'.length)));
  expect(Math.max(...users)).toBeLessThan(2000);
  expect(users.some((u) => u % 2 === 0) && users.some((u) => u % 2 === 1)).toBe(true);
  // Wall-clock stamps follow the schedule bench:e2e relies on: count events stamped before a few instants.
  const schedule = { startAt: summary.startAt, rate: 40_000, threads: 2, perThread: [10001, 10000] };
  for (const dt of [0, 1, 100, 250.5, 499, 501]) {
    const t = Math.floor(summary.startAt + dt);
    expect(events.filter((e) => e.timestamp < t).length, `events stamped before startAt + ${dt} ms`).toBe(createdBefore(schedule, t));
  }
  expect(Math.max(...events.map((e) => e.timestamp))).toBeLessThan(summary.startAt + 501);
}
