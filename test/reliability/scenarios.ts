/**
 * Reliability scenarios on the real broker, shared by the quick tests (npm test) and the soak runs
 * (npm run test:soak); only their sizes differ. Each returns its figures; the callers assert.
 */
import fs from 'node:fs';
import path from 'node:path';
import Kafka from 'node-rdkafka';
import { DLQ_TOPIC, INPUT_TOPICS, ensureTopics } from '../../engine/kafka/topics.js';
import { encodeEventBatch, type EventRecord } from '../../engine/codec/index.js';
import { BROKERS, PARTITIONS, SHARDS, createTopic, deleteTopics, percentile, runLoadgen, sleep, startEngine, stopEngine, tempDir, uniquePrefix, waitHealth, type EngineProcess, type Health, type LoadgenRun } from './harness.js';
import { committedState, readTopics, reconcile, type Injected, type ReconcileResult } from './reconcile.js';

export interface LoadOptions {
  /** Events to send; with `stopWhenDone`, only a cap. */
  events: number;
  /**
   * Stop the load once the scenario's faults are done (and the engine caught up after the last),
   * instead of sending every event: a recovery slowed by a busy machine cannot outlast the load.
   */
  stopWhenDone?: boolean;
  /** Events per second offered by loadgen (open loop). */
  rate: number;
  users: number;
  eventsPerBatch?: number;
}

/**
 * The load every scenario runs: topics, the reference tables written first, then loadgen in the
 * background at the scenario's rate, stamping wall-clock event times and logging every
 * acknowledged event (the reconciler's input). `finished` turns true when loadgen has exited;
 * `stop()` ends the load early (loadgen drains what it generated) and resolves with its summary,
 * for scenarios that run until their faults are done rather than for a fixed number of events.
 */
export async function startAckedLoad(prefix: string, load: LoadOptions, ackLog: string, brokers = BROKERS): Promise<LoadgenRun & { readonly finished: boolean; stop(): Promise<Record<string, any>> }> {
  await ensureTopics(brokers, prefix, PARTITIONS);
  await runLoadgen(prefix, ['--reference-only', '--users', String(load.users)], brokers).done;
  const run = runLoadgen(prefix, ['--no-reference', '--threads', '1', '--throughput', String(load.rate), '--num-records', String(load.events), '--users', String(load.users),
    '--events-per-batch', String(load.eventsPerBatch ?? 500), '--timestamps', 'wall', '--ack-log', ackLog], brokers);
  let finished = false;
  run.done.then(() => (finished = true), () => (finished = true));
  // Object.assign would copy the getter's value (false) once: define the getter itself.
  const stop = () => {
    if (!finished) run.child.kill('SIGTERM');
    return run.done;
  };
  return Object.defineProperty(Object.assign(run, { stop }), 'finished', { get: () => finished, enumerable: true }) as LoadgenRun & { readonly finished: boolean; stop(): Promise<Record<string, any>> };
}

/** Librdkafka settings for the engine in these runs (see RELIABILITY.md: why static membership). */
export function groupSettings(instanceId: string): string[] {
  return ['--kafka', `group.instance.id=${instanceId}`];
}

/** Caught up: the newest committed event is less than 3 s old (events carry their send time) and at most ~1 s of messages wait. */
export function caughtUp(load: LoadOptions) {
  const perSecond = Math.max(5, Math.ceil(load.rate / (load.eventsPerBatch ?? 500)) * 2);
  return (h: Health) => (h.freshness.ageOfNewestEventMs ?? Infinity) < 3000 && (h.freshness.consumerLagMessages ?? Infinity) <= perSecond;
}

export interface KillResult {
  prefix: string;
  acknowledged: number;
  kills: Array<{ atMs: number; committedBefore: number }>;
  /** Per restart: ms from spawning the new process to caught up. */
  recoveryMs: number[];
  recoveryP50Ms: number;
  recoveryMaxMs: number;
  /** After the load ended: ms until every acknowledged event was committed. */
  drainMs: number;
  /** The last, graceful stop. */
  stop: { code: number | null; signal: string | null; ms: number };
  reconciled: ReconcileResult;
  seconds: number;
}

/**
 * Scenario 1: loadgen writes `events` at `rate` while the engine is killed with SIGKILL `kills`
 * times, each at a random moment 0.5-3 s after it caught up with the load (and the first one at a
 * random moment of its start-up or load); each time it is restarted at once on the same state and
 * consumer group. Then it drains, stops gracefully, and its state is reconciled.
 */
export async function killUnderLoad(name: string, load: LoadOptions, kills: number, log: (s: string) => void = () => undefined,
  /** Runs on the stopped engine's state before it is deleted (e.g. to show that the reconciler can fail). */
  inspect?: (run: { dataDir: string; ackLog: string; prefix: string }) => Promise<void>): Promise<KillResult> {
  const t0 = Date.now();
  const prefix = uniquePrefix(name);
  const root = tempDir(name);
  const dataDir = path.join(root, 'state');
  const ackLog = path.join(root, 'acks.tsv');
  const groupId = `${prefix}engine`;
  const engineArgs = { prefix, groupId, dataDir, extra: groupSettings(`${prefix}engine-1`) };
  let engine: EngineProcess | null = null;
  try {
    // Profiles first (in startAckedLoad), so that every event's user is known when the engine sees it.
    const lg = await startAckedLoad(prefix, load, ackLog);
    const isCaughtUp = caughtUp(load);
    const result: Omit<KillResult, 'reconciled' | 'stop' | 'drainMs' | 'seconds' | 'recoveryP50Ms' | 'recoveryMaxMs'> = { prefix, acknowledged: 0, kills: [], recoveryMs: [] };
    engine = startEngine(engineArgs);
    for (let k = 0; k < kills; k++) {
      if (k === 0) {
        await engine.url;
        await sleep(500 + Math.random() * 2500);
      } else {
        const { at } = await waitHealth(engine, (h) => lg.finished || isCaughtUp(h), 120_000, `restart ${k} to catch up`);
        if (lg.finished) throw new Error(`the load ended before kill ${k + 1} of ${kills}: make it longer`);
        result.recoveryMs.push(at - engine.startedAt);
        log(`restart ${k}: caught up after ${at - engine.startedAt} ms`);
        await sleep(500 + Math.random() * 2500);
      }
      if (lg.finished) throw new Error(`the load ended before kill ${k + 1} of ${kills}: make it longer`);
      const h = await waitHealth(engine, () => true, 10_000, 'health');
      result.kills.push({ atMs: Date.now() - t0, committedBefore: h.h.stream.committedEvents });
      await stopEngine(engine, 'SIGKILL');
      log(`kill ${k + 1} at ${Date.now() - t0} ms (${h.h.stream.committedEvents} events committed so far)`);
      engine = startEngine(engineArgs);
    }
    const { at } = await waitHealth(engine, (h) => lg.finished || isCaughtUp(h), 120_000, `restart ${kills} to catch up`);
    if (!lg.finished) result.recoveryMs.push(at - engine.startedAt);
    const summary = load.stopWhenDone ? await lg.stop() : await lg.done;
    result.acknowledged = summary.records;
    const loadEnd = Date.now();
    await waitHealth(engine, (h) => h.stream.committedEvents >= summary.records && h.freshness.consumerLagMessages === 0, 300_000, 'every acknowledged event committed');
    const drainMs = Date.now() - loadEnd;
    const stop = await stopEngine(engine, 'SIGTERM');
    engine = null;
    const reconciled = await reconcile({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, shards: SHARDS, dataDir, ackLog });
    if (inspect) await inspect({ dataDir, ackLog, prefix });
    return { ...result, recoveryP50Ms: percentile(result.recoveryMs, 50), recoveryMaxMs: Math.max(...result.recoveryMs), drainMs, stop, reconciled, seconds: (Date.now() - t0) / 1000 };
  } finally {
    if (engine) await stopEngine(engine, 'SIGKILL');
    await deleteTopics(prefix).catch(() => undefined);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

export interface TermResult {
  acknowledged: number;
  stop: { code: number | null; signal: string | null; ms: number };
  /** Events the first process had committed when it exited. */
  committedAtStop: number;
  /** Partitions whose Kafka committed offset is not LMDB offset + 1 after the stop (should be none). */
  offsetMismatches: string[];
  partitionsChecked: number;
  /** Events the restarted process processed: exactly the ones the first had not committed. */
  processedAfterRestart: number;
  restartCaughtUpMs: number;
  reconciled: ReconcileResult;
}

/**
 * Scenario 4: SIGTERM while the load runs. The engine must exit 0 within 30 s with its state and
 * Kafka offsets committed (the group's offsets equal the LMDB ones + 1); a restart in the same group
 * processes exactly the rest, and the state reconciles.
 */
export async function sigtermUnderLoad(name: string, load: LoadOptions, log: (s: string) => void = () => undefined): Promise<TermResult> {
  const prefix = uniquePrefix(name);
  const root = tempDir(name);
  const dataDir = path.join(root, 'state');
  const ackLog = path.join(root, 'acks.tsv');
  const groupId = `${prefix}engine`;
  const engineArgs = { prefix, groupId, dataDir, extra: groupSettings(`${prefix}engine-1`) };
  let engine: EngineProcess | null = null;
  try {
    const lg = await startAckedLoad(prefix, load, ackLog);
    engine = startEngine(engineArgs);
    await waitHealth(engine, caughtUp(load), 120_000, 'the engine to catch up with the load');
    await sleep(1000 + Math.random() * 2000);
    if (lg.finished) throw new Error('the load ended before the SIGTERM: make it longer');
    const stop = await stopEngine(engine, 'SIGTERM');
    engine = null;
    log(`SIGTERM: exit ${stop.code ?? stop.signal} after ${stop.ms} ms`);
    const first = await committedState(dataDir, PARTITIONS, SHARDS);
    const kafkaOffsets = await committedKafkaOffsets(groupId, prefix);
    const offsetMismatches: string[] = [];
    for (const [k, off] of first.offsets) {
      const [p, code] = k.split(':');
      const topic = prefix + INPUT_TOPICS[Number(code) - 1];
      const got = kafkaOffsets.get(`${topic}:${p}`);
      if (got !== off + 1) offsetMismatches.push(`${topic}:${p}: Kafka ${got}, LMDB ${off} + 1`);
    }
    engine = startEngine(engineArgs);
    const restarted = engine.startedAt;
    const t = await waitHealth(engine, (h) => lg.finished || caughtUp(load)(h), 120_000, 'the restart to catch up');
    const summary = await lg.done;
    const h = await waitHealth(engine, (x) => x.stream.committedEvents >= summary.records && x.freshness.consumerLagMessages === 0, 300_000, 'every acknowledged event committed');
    const processedAfterRestart = h.h.stream.eventsProcessed;
    await stopEngine(engine, 'SIGTERM');
    engine = null;
    const reconciled = await reconcile({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, shards: SHARDS, dataDir, ackLog });
    return { acknowledged: summary.records, stop, committedAtStop: first.events, offsetMismatches, partitionsChecked: first.offsets.size, processedAfterRestart, restartCaughtUpMs: t.at - restarted, reconciled };
  } finally {
    if (engine) await stopEngine(engine, 'SIGKILL');
    await deleteTopics(prefix).catch(() => undefined);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** The consumer group's committed offsets per "topic:partition" (read without joining the group). */
export async function committedKafkaOffsets(groupId: string, prefix: string): Promise<Map<string, number>> {
  const c = new Kafka.KafkaConsumer({ 'metadata.broker.list': BROKERS, 'group.id': groupId, 'enable.auto.commit': false }, {});
  await new Promise<void>((r, j) => c.connect({ timeout: 20_000 }, (e) => (e ? j(e) : r())));
  try {
    const toppars = INPUT_TOPICS.flatMap((t) => Array.from({ length: PARTITIONS }, (_, p) => ({ topic: prefix + t, partition: p })));
    const got = await new Promise<Kafka.TopicPartitionOffset[]>((r, j) => c.committed(toppars, 10_000, (e, tp) => (e ? j(e) : r(tp))));
    return new Map(got.filter((x) => x.offset >= 0).map((x) => [`${x.topic}:${x.partition}`, x.offset]));
  } finally {
    await new Promise<void>((r) => c.disconnect(() => r()));
  }
}

/** One poison pill (or odd-but-valid message): its bytes and what the engine must do with it. */
export interface Pill extends Injected {
  topic: string;
  value: Buffer;
  /** Dead-letter code the engine must give (whole-message rejects and per-event ones). */
  code?: RegExp;
}

const DAY = 86_400_000;

function webEvent(i: number, over: Partial<EventRecord> = {}): EventRecord {
  return {
    source: 'WEB', eventId: `poison-${i}`, userId: 'user-1', sessionId: `poison-session-${i}`, timestamp: Date.now(), action: 'PAGE_VIEW', page: '/',
    referrer: '', userAgent: 'reliability', ipAddress: '', customData: { loadTimeMs: '120' }, ...over,
  } as EventRecord;
}

/** Sets the length of the EventBatch's two union vectors (types and bodies) to `length`. */
export function withVectorLength(batch: Uint8Array, length: number): Buffer {
  const b = Buffer.from(batch);
  const table = b.readUInt32LE(0);
  const vtable = table - b.readInt32LE(table);
  for (const field of [0, 1]) {
    const at = b.readUInt16LE(vtable + 4 + 2 * field);
    if (at === 0) continue;
    const vec = table + at + b.readUInt32LE(table + at);
    b.writeUInt32LE(length, vec);
  }
  return b;
}

/** The kinds of bad (and odd but valid) input of scenario 6, the n-th one of a run. */
export function pill(n: number, prefix: string): Pill {
  const web = `${prefix}web-events`;
  const good = encodeEventBatch([webEvent(n), webEvent(n + 1)]);
  const json = (o: unknown) => Buffer.from(JSON.stringify(o));
  const kinds: Array<() => Pill> = [
    () => ({ kind: 'truncated FlatBuffers', topic: web, value: Buffer.from(good.slice(0, good.length - 9)), deadLetters: 1, code: /^ERR_CODEC_/ }),
    () => {
      const v = Buffer.from(good);
      v.writeUInt32LE(0xfffff000, 0); // root offset far outside the buffer
      return { kind: 'garbled FlatBuffers (root offset)', topic: web, value: v, deadLetters: 1, code: /^ERR_CODEC_/ };
    },
    () => {
      const v = Buffer.from(good);
      for (let i = 12; i < v.length; i += 3) v[i] = (v[i] * 31 + 7) & 0xff; // garbled body, identifier intact
      return { kind: 'garbled FlatBuffers (body)', topic: web, value: v, deadLetters: 1, code: /^ERR_CODEC_/ };
    },
    () => {
      const v = Buffer.from(good);
      v.write('XXXX', 4, 'latin1');
      return { kind: 'wrong identifier', topic: web, value: v, deadLetters: 1, code: /^ERR_CODEC_UNKNOWN_FORMAT$/ };
    },
    () => ({ kind: 'huge declared vector length', topic: web, value: withVectorLength(good, 0x7ffffff0), deadLetters: 1, code: /^ERR_CODEC_/ }),
    () => ({ kind: 'empty payload', topic: web, value: Buffer.alloc(0), deadLetters: 1, code: /^ERR_CODEC_UNKNOWN_FORMAT$/ }),
    () => ({ kind: '10 MB payload', topic: web, value: Buffer.alloc(10 * 1024 * 1024, 7), deadLetters: 1, code: /^ERR_CODEC_TOO_LARGE$/ }),
    () => ({ kind: 'JSON with wrong types', topic: web, value: json({ eventId: `j${n}`, userId: 'user-1', sessionId: 's', timestamp: 'yesterday', action: 'CLICK', page: '/' }), deadLetters: 1, code: /^ERR_CODEC_JSON/ }),
    () => ({ kind: 'JSON array', topic: `${prefix}transaction-events`, value: json([1, 2, 3]), deadLetters: 1, code: /^ERR_CODEC_/ }),
    () => ({ kind: 'timestamp far in the future', topic: web, value: Buffer.from(encodeEventBatch([webEvent(n, { timestamp: Date.now() + 10 * DAY })])), deadLetters: 1, code: /^ERR_EVENT_INVALID$/ }),
    () => ({ kind: 'event without a user', topic: web, value: Buffer.from(encodeEventBatch([webEvent(n, { userId: '' })])), deadLetters: 1, code: /^ERR_EVENT_INVALID$/ }),
    // Valid, counted (not dead letters):
    () => ({ kind: 'timestamp far in the past (late: counted, dropped from windows)', topic: web, value: Buffer.from(encodeEventBatch([webEvent(n, { timestamp: Date.now() - 10 * DAY })])), deadLetters: 0, counted: 'all', late: true }),
    () => ({ kind: 'unknown user (LEFT join: UNKNOWN)', topic: web, value: Buffer.from(encodeEventBatch([webEvent(n, { userId: `user-unknown-${n}` })])), deadLetters: 0, counted: 'all' }),
    () => ({
      kind: 'unknown product', topic: `${prefix}transaction-events`, deadLetters: 0, counted: 'all',
      value: Buffer.from(encodeEventBatch([{ source: 'TRANSACTION', transactionId: `t${n}`, userId: 'user-2', sessionId: 's', timestamp: Date.now(), type: 'COMPLETED', platform: 'WEB', amount: 12.5, currency: 'USD', merchantId: 'm', paymentMethod: 'CARD', productId: 'product-does-not-exist', quantity: 1, metadata: {} } as EventRecord])),
    }),
  ];
  return kinds[n % kinds.length]();
}

export interface PoisonResult {
  acknowledgedMessages: number;
  injected: Array<{ kind: string; offset: string }>;
  injectedShare: number;
  expectedDeadLetters: number;
  dlq: Array<{ code: string; reason: string; sourceOffset: string; bytes: number }>;
  /** Injected messages whose dead letter has the wrong code, or none/more than expected. */
  dlqMismatches: string[];
  engineAlive: boolean;
  health: Health;
  reconciled: ReconcileResult;
}

/**
 * Scenario 6: while loadgen writes small batches, one message in ~1,000 is a poison pill (cycling
 * through every kind); the engine must stay up, dead-letter exactly the bad ones with a reason,
 * and count every good event.
 */
export async function poisonUnderLoad(name: string, load: LoadOptions, log: (s: string) => void = () => undefined): Promise<PoisonResult> {
  const prefix = uniquePrefix(name);
  const root = tempDir(name);
  const dataDir = path.join(root, 'state');
  const ackLog = path.join(root, 'acks.tsv');
  const groupId = `${prefix}engine`;
  // 10 MB payloads: the input topics and the dead-letter topic accept messages up to 12 MB (the
  // broker's default is ~1 MB), and the engine's clients are told so.
  const big = String(12 * 1024 * 1024);
  const engineArgs = { prefix, groupId, dataDir, extra: [...groupSettings(`${prefix}engine-1`), '--kafka', `message.max.bytes=${big}`] };
  let engine: EngineProcess | null = null;
  let producer: Kafka.Producer | null = null;
  try {
    for (const t of ['web-events', 'transaction-events', DLQ_TOPIC]) await createTopic(prefix + t, { 'max.message.bytes': big });
    await ensureTopics(BROKERS, prefix, PARTITIONS);
    await runLoadgen(prefix, ['--reference-only', '--users', String(load.users)]).done;
    engine = startEngine(engineArgs);
    await engine.url;
    producer = new Kafka.Producer({ 'metadata.broker.list': BROKERS, dr_cb: true, 'message.max.bytes': Number(big), 'enable.idempotence': true });
    const p = producer;
    p.setPollInterval(20);
    await new Promise<void>((r, j) => p.connect({ timeout: 20_000 }, (e) => (e ? j(e) : r())));
    const injected = new Map<string, Injected>();
    const list: Array<{ kind: string; offset: string; code?: RegExp }> = [];
    p.on('delivery-report', (err, report) => {
      const pl = report.opaque as Pill;
      if (err) throw new Error(`poison pill ${pl.kind} was not delivered: ${err.message}`);
      const id = `${report.topic}:${report.partition}:${report.offset}`;
      injected.set(id, pl);
      list.push({ kind: pl.kind, offset: id, code: pl.code });
    });
    const perMessage = load.eventsPerBatch ?? 10;
    const lg = runLoadgen(prefix, ['--no-reference', '--threads', '1', '--throughput', String(load.rate), '--num-records', String(load.events), '--users', String(load.users),
      '--events-per-batch', String(perMessage), '--timestamps', 'wall', '--ack-log', ackLog]);
    let loadDone = false;
    lg.done.then(() => (loadDone = true), () => (loadDone = true));
    // Poison starts once every partition has seen events (a far-past event is then late), and
    // comes at one message in 1,000 of loadgen's: rate / perMessage / 1000 per second.
    await sleep(2000);
    const every = 1000 / (load.rate / perMessage / 1000);
    let n = 0;
    while (!loadDone) {
      const pl = pill(n, prefix);
      p.produce(pl.topic, n % PARTITIONS, pl.value, `poison-${n}`, Date.now(), pl);
      n++;
      await sleep(every);
    }
    await new Promise<void>((r) => p.flush(30_000, () => r()));
    await sleep(500);
    const summary = await lg.done;
    if (list.length !== n) throw new Error(`${n - list.length} poison pills have no delivery report`);
    const expectedDeadLetters = [...injected.values()].reduce((a, b) => a + b.deadLetters, 0);
    const expectedEvents = summary.records + [...injected.values()].filter((x) => x.counted === 'all').length;
    const h = await waitHealth(engine, (x) => x.stream.committedEvents >= expectedEvents && x.freshness.consumerLagMessages === 0, 180_000, 'every good event committed');
    // Dead letters reach their topic asynchronously: wait for them.
    let dlq: PoisonResult['dlq'] = [];
    for (let i = 0; i < 100; i++) {
      dlq = [];
      await readTopics(BROKERS, [prefix + DLQ_TOPIC], PARTITIONS, (m) => {
        const hd = Object.assign({}, ...(m.headers ?? []).map((x) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v.toString()])))) as Record<string, string>;
        dlq.push({ code: hd.code, reason: hd.reason, sourceOffset: `${hd['source-topic']}:${hd['source-partition']}:${hd['source-offset']}`, bytes: m.value?.length ?? 0 });
      });
      if (dlq.length >= expectedDeadLetters) break;
      await sleep(300);
    }
    const dlqMismatches: string[] = [];
    for (const x of list) {
      const letters = dlq.filter((d) => d.sourceOffset === x.offset);
      const want = injected.get(x.offset)!.deadLetters;
      if (letters.length !== want) dlqMismatches.push(`${x.kind} at ${x.offset}: ${letters.length} dead letters, expected ${want}`);
      for (const d of letters) if (x.code && !x.code.test(d.code)) dlqMismatches.push(`${x.kind} at ${x.offset}: code ${d.code}`);
    }
    const engineAlive = engine.child.exitCode === null && engine.child.signalCode === null;
    await stopEngine(engine, 'SIGTERM');
    engine = null;
    const reconciled = await reconcile({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, shards: SHARDS, dataDir, ackLog, injected });
    log(`${n} pills over ${reconciled.ack.acknowledgedMessages} loadgen messages`);
    return {
      acknowledgedMessages: reconciled.ack.acknowledgedMessages, injected: list.map(({ kind, offset }) => ({ kind, offset })), injectedShare: n / reconciled.ack.acknowledgedMessages,
      expectedDeadLetters, dlq, dlqMismatches, engineAlive, health: h.h, reconciled,
    };
  } finally {
    if (producer) await new Promise<void>((r) => producer!.disconnect(() => r()));
    if (engine) await stopEngine(engine, 'SIGKILL');
    await deleteTopics(prefix).catch(() => undefined);
    fs.rmSync(root, { recursive: true, force: true });
  }
}
