/**
 * Several engine processes on this machine, each with its own data directory (as separate machines
 * would have), in one consumer group with the changelog on. Run `npm run build` first.
 */
import path from 'node:path';
import Kafka from 'node-rdkafka';
import { ensureTopics } from '../../engine/kafka/topics.js';
import { EventGenerator } from '../../engine/source/generator.js';
import type { EventRecord } from '../../engine/codec/types.js';
import { TEST_GENERATOR, referenceFor } from '../engine/harness.js';
import { BROKERS, eventMessages, mergedEventOrder, produceAll, producer, profileMessages } from '../kafka/produce.js';
import { PARTITIONS, health, sleep, startEngine, stopEngine, type EngineProcess } from '../reliability/harness.js';

/** Short session timeout: a SIGKILLed member is noticed in ~6 s instead of 45 s (the broker's minimum is 6 s). */
export const SCALE_ARGS = ['--changelog', '--kafka', 'session.timeout.ms=6000', '--kafka', 'heartbeat.interval.ms=1000'];

export interface ScaleHealth {
  ownedPartitions: number[];
  restoring: number;
  restores: { count: number; byMode: Record<string, number>; records: number; bytes: number; ms: number; last: Array<{ partition: number; mode: string; records: number; ms: number }> };
  changelog: { transactions: number; records: number; bytes: number; retries: number; fenced: number; lastError: string };
}

export interface Instance {
  name: string;
  dataDir: string;
  proc: EngineProcess;
  url: string;
}

export async function startInstance(root: string, name: string, opts: { prefix: string; groupId: string; extra?: string[]; env?: Record<string, string> }): Promise<Instance> {
  const dataDir = path.join(root, name);
  const proc = startEngine({ prefix: opts.prefix, groupId: opts.groupId, dataDir, extra: [...SCALE_ARGS, ...(opts.extra ?? [])], env: opts.env });
  const url = await proc.url;
  return { name, dataDir, proc, url };
}

export async function scaleHealth(i: Instance): Promise<{ committedEvents: number; lag: number | null; scale: ScaleHealth } | null> {
  const h = (await health(i.url)) as (Awaited<ReturnType<typeof health>> & { scale?: ScaleHealth }) | null;
  if (!h || !h.scale) return null;
  return { committedEvents: h.stream.committedEvents, lag: h.freshness.consumerLagMessages, scale: h.scale };
}

export const alive = (i: Instance) => i.proc.child.exitCode === null && i.proc.child.signalCode === null;

/** Which live instance owns each partition; null when a partition has no owner or two claim it. */
export async function ownership(instances: Instance[], partitions: number): Promise<Map<number, Instance> | null> {
  const owners = new Map<number, Instance>();
  for (const i of instances.filter(alive)) {
    const h = await scaleHealth(i);
    if (!h || h.scale.restoring > 0) return null;
    for (const p of h.scale.ownedPartitions) {
      if (owners.has(p)) return null;
      owners.set(p, i);
    }
  }
  return owners.size === partitions ? owners : null;
}

export async function untilOwned(instances: Instance[], partitions: number, cond: (owners: Map<number, Instance>) => boolean, timeoutMs: number, what: string): Promise<Map<number, Instance>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const o = await ownership(instances, partitions);
    if (o && cond(o)) return o;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    for (const i of instances) if (!alive(i) && (i as { expectedDead?: boolean }).expectedDead !== true) throw new Error(`${i.name} ${await i.proc.exitReport()}`);
    await sleep(200);
  }
}

export async function stopAll(instances: Instance[], signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  await Promise.all(instances.filter(alive).map((i) => stopEngine(i.proc, signal)));
}

/**
 * The input of a scale test: the topics (changelog ones included), the user profiles and events of
 * TEST_GENERATOR written as loadgen writes them, and the independent reference model of what was
 * written so far. `more(n)` appends the generator's next n events (a second phase: call it once
 * the engines have consumed the first, as the model applies phases one after the other); the model
 * then covers everything written.
 */
export interface ScaleInput {
  events: EventRecord[];
  model: ReturnType<typeof referenceFor>;
  more(n: number): Promise<void>;
  close(): Promise<void>;
}

export async function produceInput(prefix: string, n: number, opts: { graceMs?: number; perMessage?: number } = {}): Promise<ScaleInput> {
  await ensureTopics(BROKERS, prefix, PARTITIONS, {}, { changelog: true });
  const gen = new EventGenerator(TEST_GENERATOR);
  const p: Kafka.Producer = await producer();
  await produceAll(p, profileMessages(prefix, gen.profiles(), PARTITIONS));
  // Later phases are written in one Kafka transaction: the engines (read_committed) see a phase's
  // five topics all at once, so each partition merges them by timestamp as the model does, instead
  // of in whatever order concurrent writes and reads happen to interleave (the generator's late
  // and out-of-order events make that order matter).
  let txn: Kafka.Producer | null = null;
  const transactional = async () => {
    if (txn) return txn;
    const t = new Kafka.Producer({ 'metadata.broker.list': BROKERS, dr_cb: true, 'linger.ms': 5, 'transactional.id': `${prefix}test-input` });
    t.setPollInterval(20);
    await new Promise<void>((r, j) => t.connect({ timeout: 20_000 }, (e) => (e ? j(e) : r())));
    await new Promise<void>((r, j) => t.initTransactions(30_000, (e) => (e ? j(e) : r())));
    return (txn = t);
  };
  // Per phase: the engine reads a phase after the previous one (the tests wait for it), so a partition
  // applies its phase-1 events (its five topics merged by timestamp) before any of phase 2.
  const phases: EventRecord[][] = [];
  const input: ScaleInput = {
    events: [],
    model: null as unknown as ScaleInput['model'],
    more: async (count: number) => {
      const batch = gen.take(count);
      const m = eventMessages(prefix, batch, PARTITIONS, opts.perMessage ?? 100);
      if (phases.length === 0) await produceAll(p, m);
      else {
        const t = await transactional();
        await new Promise<void>((r, j) => t.beginTransaction((e) => (e ? j(e) : r())));
        await produceAll(t, m);
        await new Promise<void>((r, j) => t.commitTransaction(30_000, (e) => (e ? j(e) : r())));
      }
      phases.push(mergedEventOrder(prefix, m, PARTITIONS));
      input.events.push(...batch);
      input.model = referenceFor(phases.flat(), { partitions: PARTITIONS, graceMs: opts.graceMs ?? 30_000 });
    },
    close: async () => {
      await new Promise<void>((r) => p.disconnect(() => r()));
      if (txn) await new Promise<void>((r) => txn!.disconnect(() => r()));
    },
  };
  await input.more(n);
  return input;
}

const MIN = 60_000;

/** Global alert ids the model expects: the engine's rules applied to the model's windows up to the watermark (the oldest partition's stream time). */
export function expectedGlobalAlerts(model: ScaleInput['model'], graceMs = 30_000): string[] {
  const wm = Math.min(...model.streamTime);
  const out: string[] = [];
  const revenue = new Map(model.revenue.map((r) => [r.windowStart, r.usd]));
  for (let ws = Math.floor(model.revenue[0].windowStart / MIN) * MIN; ws + 5 * MIN + graceMs <= wm; ws += MIN) {
    if ((revenue.get(ws) ?? 0) < 1000) out.push(`LOW_REVENUE:global:${ws}`);
  }
  const errorStarts = Object.keys(model.errorWindows).map(Number);
  for (let ws = Math.min(...errorStarts); ws + 5 * MIN + graceMs <= wm; ws += 5 * MIN) {
    const w = model.errorWindows[ws];
    if (w && w.n >= 100 && w.errors / w.n > 0.05) out.push(`HIGH_ERROR_RATE:global:${ws}`);
  }
  return out.sort();
}

/** Global alert records on the dashboard-alerts output topic: id -> how many records. */
export async function globalAlertRecords(prefix: string): Promise<Map<string, number>> {
  const c = new Kafka.KafkaConsumer({ 'metadata.broker.list': BROKERS, 'group.id': `${prefix}alerts-reader-${Date.now()}`, 'enable.auto.commit': false, 'enable.partition.eof': true }, { 'auto.offset.reset': 'earliest' });
  await new Promise<void>((r, j) => c.connect({ timeout: 15_000 }, (e) => (e ? j(e) : r())));
  c.assign(Array.from({ length: PARTITIONS }, (_, partition) => ({ topic: `${prefix}dashboard-alerts`, partition, offset: -2 })));
  const counts = new Map<string, number>();
  const eof = new Set<number>();
  c.on('partition.eof', (e) => eof.add(e.partition));
  const deadline = Date.now() + 30_000;
  while (eof.size < PARTITIONS && Date.now() < deadline) {
    const msgs = await new Promise<Kafka.Message[]>((r) => c.consume(1000, (e, m) => r(e ? [] : m)));
    for (const m of msgs) {
      const id = m.key?.toString() ?? '';
      if (id.includes(':global:')) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
  }
  await new Promise<void>((r) => c.disconnect(() => r()));
  return counts;
}

