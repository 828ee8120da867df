/**
 * The reliability reconciler: how "nothing lost, nothing counted twice" is judged.
 *
 * Inputs: loadgen's ack log (`--ack-log`: every message the broker acknowledged, with its events'
 * key:seq), the input topics as they are on the broker, the messages a test injected itself
 * (poison pills and odd-but-valid events, with what the engine should do with each), and the
 * engine's committed state (its LMDB stores, read after it stopped).
 *
 * The expected numbers are recomputed here in plain code from the acknowledged events, never
 * through the engine's operators: per partition and 1-minute window, events per platform, the exact
 * set of active users (and per platform), user actions per type; per partition and hour, events and
 * users per country (unknown users: UNKNOWN); per user, the events its sessions hold. Each is
 * compared cell by cell with what the engine committed, together with its exactly-once counters
 * (events, dead letters, late drops) and the offsets it committed.
 *
 * Per key, sequence numbers: a key's acknowledged sequence is checked for gaps and duplicates
 * (loadgen + broker); and when the engine ran with `--audit-sequences` (the harness always turns it
 * on), the sequence numbers it committed per user (pipelines/sequence-audit.ts) must be exactly the
 * acknowledged ones: no gap, no duplicate, every acknowledged seq counted, nothing else counted.
 */
import fs from 'node:fs';
import path from 'node:path';
import Kafka from 'node-rdkafka';
import { EventBatchReader, decodeUserProfile, type EventRecord } from '../../engine/codec/index.js';
import { INPUT_TOPICS } from '../../engine/kafka/topics.js';
import { parseEngineConfig } from '../../engine/index.js';
import { ShardStore, type PartitionMeta, type StoreKey } from '../../engine/state/shard-store.js';
import { UNKEYED, type SequenceAudit } from '../../engine/operators/pipelines/sequence-audit.js';
import { OpenSessionsReader, type StoredSession } from '../../engine/operators/pipelines/sessions.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;

/** What the engine should do with a message the test injected (it is not in loadgen's ack log). */
export interface Injected {
  /** Dead letters the message must produce (a whole-message reject is 1; one per bad event). */
  deadLetters: number;
  /** Its events that the engine must count (decoded from the message); default none. */
  counted?: 'all' | 'none';
  /** Counted (in the events total) but dropped from every window as late: timestamps far in the past. */
  late?: boolean;
  /** A label for reports (e.g. the kind of poison). */
  kind: string;
}

export interface Expected {
  /** Events the engine must count (acknowledged + injected valid ones, late ones included). */
  events: number;
  deadLetters: number;
  late: number;
  lateUserActivity: number;
  platformEvents: Map<string, number>;
  activeUsers: Map<string, Set<string>>;
  userActions: Map<string, number>;
  geoEvents: Map<string, number>;
  geoUsers: Map<string, Set<string>>;
  /** Per user: events its sessions must hold. */
  sessionEvents: Map<string, number>;
  /** Per "partition:topicCode": highest offset on the broker (what the engine must have committed). */
  lastOffsets: Map<string, number>;
  /** Per user: the sequence numbers the engine must have counted (acknowledged + injected valid events). */
  seqs: SeqBook;
  /** Counted events without a user or a seq (the sequence audit counts them, per partition). */
  unkeyed: number;
}

export interface AckSummary {
  acknowledgedMessages: number;
  acknowledgedEvents: number;
  keys: number;
  /** key:seq acknowledged more than once (the producer wrote an event twice). */
  duplicateSeqs: number;
  /** Sequence numbers missing below a key's highest acknowledged one (an event never acknowledged). */
  seqGaps: number;
  /** Acknowledged offsets that are not on the broker. */
  missingOnBroker: number;
  /** Messages on the broker that neither loadgen acknowledged nor the test injected. */
  unaccounted: number;
  /** Acknowledged messages whose content differs from the key:seq list loadgen logged. */
  contentMismatches: number;
}

export interface ReconcileResult {
  ack: AckSummary;
  expectedEvents: number;
  committedEvents: number;
  committedDeadLetters: number;
  committedLate: Record<string, number>;
  /** Sum over window cells (partition, minute, platform) of events missing / counted more than once. */
  lost: number;
  duplicated: number;
  /** The same per user (events in the user's sessions). */
  lostPerKey: number;
  duplicatedPerKey: number;
  cellsChecked: number;
  keysChecked: number;
  /**
   * Per-key sequence check against the engine's sequence audit (null when it was not required).
   * notCounted: acknowledged seqs missing from the state; duplicates: seqs the engine counted twice
   * (within a partition, or in two partitions); gaps: seqs missing below a key's highest counted one;
   * unexpected: seqs counted that were never acknowledged.
   */
  sequences: { keys: number; seqsChecked: number; notCounted: number; duplicates: number; gaps: number; unexpected: number; unkeyed: number; expectedUnkeyed: number } | null;
  /** The first differences, human readable; empty when everything reconciles. */
  mismatches: string[];
}

/** Reads the ack log(s) of a loadgen run: `path`, or `path.0`, `path.1`... with --threads > 1. */
export function readAckLog(file: string): Map<string, { n: number; keys: string }> {
  const files = fs.existsSync(file) ? [file] : fs.readdirSync(path.dirname(file)).filter((f) => f.startsWith(path.basename(file) + '.')).map((f) => path.join(path.dirname(file), f));
  const out = new Map<string, { n: number; keys: string }>();
  for (const f of files) {
    for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
      if (!line) continue;
      const [topic, partition, offset, n, keys] = line.split('\t');
      const id = `${topic}:${partition}:${offset}`;
      if (out.has(id)) throw new Error(`ack log ${f}: ${id} acknowledged twice`);
      out.set(id, { n: Number(n), keys });
    }
  }
  return out;
}

/** Every message of the given topics from offset 0 to the high watermark at the time of the call. */
export async function readTopics(brokers: string, topics: string[], partitions: number, onMessage: (m: Kafka.Message) => void): Promise<Map<string, number>> {
  const c = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'group.id': `reconciler-${process.pid}-${Date.now()}`, 'enable.auto.commit': false, 'fetch.max.bytes': 64 * 1024 * 1024 }, {});
  await new Promise<void>((r, j) => c.connect({ timeout: 20_000 }, (e) => (e ? j(e) : r())));
  const high = new Map<string, number>();
  try {
    const remaining = new Map<string, number>();
    for (const topic of topics) {
      for (let p = 0; p < partitions; p++) {
        const w = await new Promise<Kafka.WatermarkOffsets>((r, j) => c.queryWatermarkOffsets(topic, p, 10_000, (e, o) => (e ? j(e) : r(o))));
        high.set(`${topic}:${p}`, w.highOffset);
        if (w.highOffset > 0) remaining.set(`${topic}:${p}`, w.highOffset);
      }
    }
    c.assign(topics.flatMap((topic) => Array.from({ length: partitions }, (_, p) => ({ topic, partition: p, offset: 0 }))));
    c.setDefaultConsumeTimeout(200);
    let idleSince = Date.now();
    while (remaining.size) {
      const msgs = await new Promise<Kafka.Message[]>((r, j) => c.consume(5000, (e, m) => (e ? j(e) : r(m))));
      if (msgs.length) idleSince = Date.now();
      else if (Date.now() - idleSince > 30_000) throw new Error(`reading ${[...remaining.keys()].join(', ')}: nothing arrived for 30 s`);
      for (const m of msgs) {
        const k = `${m.topic}:${m.partition}`;
        const end = remaining.get(k);
        if (end === undefined || m.offset >= end) continue;
        onMessage(m);
        if (m.offset + 1 >= end) remaining.delete(k);
      }
    }
  } finally {
    await new Promise<void>((r) => c.disconnect(() => r()));
  }
  return high;
}

function platformOf(e: EventRecord): string {
  switch (e.source) {
    case 'WEB': return 'WEB';
    case 'MOBILE': return 'MOBILE';
    case 'IOT': return 'IOT';
    case 'TRANSACTION': return e.platform || 'WEB';
    case 'USER_ACTION': return e.platform || 'WEB';
  }
}

function inc(m: Map<string, number>, k: string, by = 1): void {
  m.set(k, (m.get(k) ?? 0) + by);
}

function addTo(m: Map<string, Set<string>>, k: string, v: string): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}

/** Per key, which sequence numbers were acknowledged (a growable bitmap: one byte per seq). */
export class SeqBook {
  private readonly byKey = new Map<string, Uint8Array>();
  private readonly max = new Map<string, number>();
  duplicates = 0;

  add(key: string, seq: number): void {
    let b = this.byKey.get(key);
    if (!b || b.length <= seq) {
      const grown = new Uint8Array(Math.max(16, (seq + 1) * 2));
      if (b) grown.set(b);
      this.byKey.set(key, (b = grown));
    }
    if (b[seq]) this.duplicates++;
    b[seq] = 1;
    if (seq > (this.max.get(key) ?? 0)) this.max.set(key, seq);
  }

  get keys(): number {
    return this.byKey.size;
  }

  keyList(): IterableIterator<string> {
    return this.byKey.keys();
  }

  has(key: string, seq: number): boolean {
    return (this.byKey.get(key)?.[seq] ?? 0) === 1;
  }

  maxOf(key: string): number {
    return this.max.get(key) ?? 0;
  }

  gaps(): number {
    let n = 0;
    for (const [key, b] of this.byKey) {
      const max = this.max.get(key) ?? 0;
      for (let s = 1; s <= max; s++) if (!b[s]) n++;
    }
    return n;
  }
}

/**
 * Recomputes what the engine must have committed from the acknowledged events (read back from the
 * broker, checked against the ack log) and the injected messages.
 */
export async function expectedFromBroker(opts: {
  brokers: string;
  topicPrefix: string;
  partitions: number;
  ackLog: string;
  /** Injected messages by "topic:partition:offset". */
  injected?: Map<string, Injected>;
}): Promise<{ expected: Expected; ack: AckSummary }> {
  const acks = readAckLog(opts.ackLog);
  const injected = opts.injected ?? new Map<string, Injected>();
  // Known users, for the LEFT join (unknown users are counted under UNKNOWN).
  const country = new Map<string, string>();
  await readTopics(opts.brokers, [`${opts.topicPrefix}user-profiles`], opts.partitions, (m) => {
    if (!m.value || !m.key) return;
    const p = decodeUserProfile(m.value);
    country.set(p.userId, p.country || 'UNKNOWN');
  });
  const x: Expected = {
    events: 0, deadLetters: 0, late: 0, lateUserActivity: 0, platformEvents: new Map(), activeUsers: new Map(), userActions: new Map(),
    geoEvents: new Map(), geoUsers: new Map(), sessionEvents: new Map(), lastOffsets: new Map(), seqs: new SeqBook(), unkeyed: 0,
  };
  const ack: AckSummary = { acknowledgedMessages: acks.size, acknowledgedEvents: 0, keys: 0, duplicateSeqs: 0, seqGaps: 0, missingOnBroker: 0, unaccounted: 0, contentMismatches: 0 };
  const seqs = new SeqBook();
  const reader = new EventBatchReader();
  const seen = new Set<string>();
  const topicCode = new Map(INPUT_TOPICS.map((t, i) => [opts.topicPrefix + t, i + 1]));

  const count = (e: EventRecord, p: number, late: boolean) => {
    x.events++;
    if (e.userId !== '' && (e.seq ?? 0) > 0) x.seqs.add(e.userId, e.seq!);
    else x.unkeyed++;
    const activity = e.userId !== '' && e.source !== 'IOT';
    if (late) {
      x.late++;
      if (activity) x.lateUserActivity++;
      return;
    }
    const minute = Math.floor(e.timestamp / MINUTE) * MINUTE;
    const platform = platformOf(e);
    inc(x.platformEvents, `${p}|${minute}|${platform}`);
    if (e.source === 'USER_ACTION') inc(x.userActions, `${p}|${minute}|${e.action}`);
    if (activity) {
      addTo(x.activeUsers, `${p}|${minute}|*`, e.userId);
      addTo(x.activeUsers, `${p}|${minute}|${platform}`, e.userId);
      inc(x.sessionEvents, e.userId);
      const hour = Math.floor(e.timestamp / HOUR) * HOUR;
      const c = country.get(e.userId) ?? 'UNKNOWN';
      inc(x.geoEvents, `${p}|${hour}|${c}`);
      addTo(x.geoUsers, `${p}|${hour}|${c}`, e.userId);
    }
  };
  const decode = (m: Kafka.Message): EventRecord[] => {
    reader.reset(m.value!, 0, m.value!.length);
    const out: EventRecord[] = [];
    for (let i = 0; i < reader.count; i++) {
      reader.select(i);
      out.push(reader.toRecord());
    }
    return out;
  };

  const high = await readTopics(opts.brokers, [...topicCode.keys()], opts.partitions, (m) => {
    const id = `${m.topic}:${m.partition}:${m.offset}`;
    const a = acks.get(id);
    const inj = injected.get(id);
    if (a) {
      seen.add(id);
      const events = decode(m);
      const logged = a.keys.split(',');
      if (events.length !== a.n || logged.length !== a.n) ack.contentMismatches++;
      events.forEach((e, i) => {
        const [key, seq] = [logged[i]?.slice(0, logged[i].lastIndexOf(':')), Number(logged[i]?.slice(logged[i].lastIndexOf(':') + 1))];
        if ((e.userId ? key !== e.userId : !key?.startsWith('~')) || seq !== (e.seq ?? 0)) ack.contentMismatches++;
        seqs.add(key ?? '?', seq);
        ack.acknowledgedEvents++;
        count(e, m.partition, false);
      });
    } else if (inj) {
      seen.add(id);
      x.deadLetters += inj.deadLetters;
      if (inj.counted === 'all') for (const e of decode(m)) count(e, m.partition, inj.late === true);
    } else {
      ack.unaccounted++;
    }
  });
  for (const [tp, h] of high) {
    if (h <= 0) continue;
    const i = tp.lastIndexOf(':');
    x.lastOffsets.set(`${tp.slice(i + 1)}:${topicCode.get(tp.slice(0, i))}`, h - 1);
  }
  for (const id of acks.keys()) if (!seen.has(id)) ack.missingOnBroker++;
  for (const id of injected.keys()) if (!seen.has(id)) ack.missingOnBroker++;
  ack.keys = seqs.keys;
  ack.duplicateSeqs = seqs.duplicates;
  ack.seqGaps = seqs.gaps();
  return { expected: x, ack };
}

/** What the engine committed, read from its shard stores (the engine must be stopped, or its state quiet). */
export async function committedState(dataDir: string, partitions: number, shards: number,
  /** Scaled out: the data directory of each partition's owner (default: dataDir for all). */
  dataDirOf: (partition: number) => string = () => dataDir) {
  const config = parseEngineConfig({ dataDir, partitions, shards });
  const opened = new Map<string, ShardStore>();
  const storeOf = (p: number) => {
    const key = `${dataDirOf(p)}|${p % shards}`;
    let s = opened.get(key);
    if (!s) opened.set(key, (s = ShardStore.open(dataDirOf(p), p % shards, config.mapSizeBytes, false)));
    return s;
  };
  const got = {
    events: 0, deadLetters: 0, late: {} as Record<string, number>,
    platformEvents: new Map<string, number>(), activeUsers: new Map<string, Set<string>>(), userActions: new Map<string, number>(),
    geoEvents: new Map<string, number>(), geoUsers: new Map<string, Set<string>>(), sessionEvents: new Map<string, number>(),
    offsets: new Map<string, number>(),
    /** Per user, the sequence ranges committed by the sequence audit (each partition's list separately). */
    seqAudit: new Map<string, SequenceAudit[]>(),
    seqAuditUnkeyed: 0,
    audited: false,
  };
  try {
    for (let p = 0; p < partitions; p++) {
      const s = storeOf(p);
      const meta = s.readMeta(p) as PartitionMeta | undefined;
      if (meta) {
        got.events += meta.counters?.events ?? 0;
        got.deadLetters += meta.counters?.deadLetters ?? 0;
        for (const [k, v] of Object.entries(meta.counters?.late ?? {})) got.late[k] = (got.late[k] ?? 0) + v;
        for (const [code, off] of Object.entries(meta.offsets)) got.offsets.set(`${p}:${code}`, off);
      }
      for (const [k, v] of s.scan(p, 'platform_events')) inc(got.platformEvents, `${p}|${k[0]}|${k[1]}`, (v as { n: number }).n);
      for (const [k, v] of s.scan(p, 'user_actions')) inc(got.userActions, `${p}|${k[0]}|${k[1]}`, (v as { n: number }).n);
      // The user sets are in member chunks, [windowStart, key, n] (engine/operators/api.ts MemberLog); the values hold counts.
      for (const [k, v] of s.scan(p, 'active_users')) {
        if (k.length < 3) continue;
        const a = v as { u: string[]; p: Record<string, string[]> };
        for (const u of a.u) addTo(got.activeUsers, `${p}|${k[0]}|*`, u);
        for (const [pl, list] of Object.entries(a.p)) for (const u of list) addTo(got.activeUsers, `${p}|${k[0]}|${pl}`, u);
      }
      for (const [k, v] of s.scan(p, 'geo')) {
        if (k.length < 3) inc(got.geoEvents, `${p}|${k[0]}|${k[1]}`, (v as { events: number }).events);
        else for (const u of v as string[]) addTo(got.geoUsers, `${p}|${k[0]}|${k[1]}`, u);
      }
      for (const [k, v] of s.scan(p, 'sequence_audit')) {
        got.audited = true;
        const key = k[0] as string;
        if (key === UNKEYED) got.seqAuditUnkeyed += v as number;
        else {
          const list = got.seqAudit.get(key) ?? [];
          list.push(v as SequenceAudit);
          got.seqAudit.set(key, list);
        }
      }
      // Open sessions: own keys, group deltas and groups, the newest form of each user winning (engine/operators/pipelines/sessions.ts).
      const open = new OpenSessionsReader();
      for (const [k, v] of s.scan(p, 'sessions')) {
        const key = k as StoreKey;
        open.add(key, v);
        if (key[0] === 'closed') inc(got.sessionEvents, key[1] as string, (v as StoredSession).events);
      }
      for (const [userId, sessions] of open.users) for (const x of sessions) inc(got.sessionEvents, userId, x.events);
    }
  } finally {
    await Promise.all([...opened.values()].map((s) => s.close()));
  }
  return got;
}

/** Compares the engine's committed state with the expectation, cell by cell. */
export async function reconcile(opts: {
  brokers: string; topicPrefix: string; partitions: number; shards: number; dataDir: string; ackLog: string; injected?: Map<string, Injected>; dataDirOf?: (partition: number) => string;
  /** Require the engine's sequence audit (--audit-sequences) and check every key's sequence against it; default true. */
  sequences?: boolean;
}): Promise<ReconcileResult> {
  const { expected: x, ack } = await expectedFromBroker(opts);
  const got = await committedState(opts.dataDir, opts.partitions, opts.shards, opts.dataDirOf);
  return compare(x, ack, got, opts.sequences ?? true);
}

/** The per-key sequence check: the engine's committed ranges per user against the expected seqs. */
export function checkSequences(x: Expected, got: Awaited<ReturnType<typeof committedState>>): NonNullable<ReconcileResult['sequences']> {
  const r = { keys: 0, seqsChecked: 0, notCounted: 0, duplicates: 0, gaps: 0, unexpected: 0, unkeyed: got.seqAuditUnkeyed, expectedUnkeyed: x.unkeyed };
  const keys = new Set<string>([...x.seqs.keyList(), ...got.seqAudit.keys()]);
  for (const key of keys) {
    r.keys++;
    // Expand the engine's ranges (all partitions that hold the key) into counts per seq.
    const counted = new Map<number, number>();
    let top = 0;
    for (const a of got.seqAudit.get(key) ?? []) {
      r.duplicates += a.d;
      for (let i = 0; i < a.r.length; i += 2) for (let s = a.r[i]; s <= a.r[i + 1]; s++) counted.set(s, (counted.get(s) ?? 0) + 1);
      if (a.r.length) top = Math.max(top, a.r[a.r.length - 1]);
    }
    for (const n of counted.values()) if (n > 1) r.duplicates += n - 1;
    for (let s = 1; s <= top; s++) if (!counted.has(s)) r.gaps++;
    const want = x.seqs.maxOf(key);
    for (let s = 1; s <= want; s++) {
      if (!x.seqs.has(key, s)) continue;
      r.seqsChecked++;
      if (!counted.has(s)) r.notCounted++;
    }
    for (const s of counted.keys()) if (!x.seqs.has(key, s)) r.unexpected++;
  }
  return r;
}

function compare(x: Expected, ack: AckSummary, got: Awaited<ReturnType<typeof committedState>>, sequences: boolean): ReconcileResult {
  const mismatches: string[] = [];
  const note = (s: string) => {
    if (mismatches.length < 30) mismatches.push(s);
  };
  const r: ReconcileResult = {
    ack, expectedEvents: x.events, committedEvents: got.events, committedDeadLetters: got.deadLetters, committedLate: got.late,
    lost: 0, duplicated: 0, lostPerKey: 0, duplicatedPerKey: 0, cellsChecked: 0, keysChecked: 0, mismatches, sequences: null,
  };
  if (sequences) {
    if (!got.audited) note('the state holds no sequence audit: run the engine with --audit-sequences');
    const q = (r.sequences = checkSequences(x, got));
    if (q.notCounted) note(`sequence audit: ${q.notCounted} acknowledged key:seq not counted by the engine`);
    if (q.duplicates) note(`sequence audit: ${q.duplicates} key:seq counted more than once`);
    if (q.gaps) note(`sequence audit: ${q.gaps} gaps in the counted sequences`);
    if (q.unexpected) note(`sequence audit: ${q.unexpected} counted key:seq never acknowledged`);
    if (q.unkeyed !== q.expectedUnkeyed) note(`sequence audit: ${q.unkeyed} events counted without a key or seq, expected ${q.expectedUnkeyed}`);
  }
  if (ack.contentMismatches) note(`${ack.contentMismatches} acknowledged events differ from what is on the broker`);
  if (ack.duplicateSeqs) note(`${ack.duplicateSeqs} key:seq acknowledged twice`);
  if (ack.missingOnBroker) note(`${ack.missingOnBroker} acknowledged or injected messages are not on the broker`);
  if (ack.unaccounted) note(`${ack.unaccounted} messages on the broker were neither acknowledged nor injected`);
  if (got.events !== x.events) note(`committed events ${got.events}, expected ${x.events}`);
  if (got.deadLetters !== x.deadLetters) note(`committed dead letters ${got.deadLetters}, expected ${x.deadLetters}`);
  for (const pipeline of ['platform_events', 'active_users', 'sessions']) {
    const want = pipeline === 'sessions' ? x.lateUserActivity : pipeline === 'active_users' ? x.lateUserActivity : x.late;
    if ((got.late[pipeline] ?? 0) !== want) note(`late drops in ${pipeline}: ${got.late[pipeline] ?? 0}, expected ${want}`);
  }
  const countCells = (name: string, want: Map<string, number>, have: Map<string, number>, perKey = false) => {
    for (const k of new Set([...want.keys(), ...have.keys()])) {
      const a = want.get(k) ?? 0;
      const b = have.get(k) ?? 0;
      if (perKey) r.keysChecked++;
      else r.cellsChecked++;
      if (a === b) continue;
      note(`${name} ${k}: engine ${b}, acknowledged ${a}`);
      if (name === 'platform_events') {
        r.lost += Math.max(0, a - b);
        r.duplicated += Math.max(0, b - a);
      } else if (perKey) {
        r.lostPerKey += Math.max(0, a - b);
        r.duplicatedPerKey += Math.max(0, b - a);
      }
    }
  };
  const setCells = (name: string, want: Map<string, Set<string>>, have: Map<string, Set<string>>) => {
    for (const k of new Set([...want.keys(), ...have.keys()])) {
      r.cellsChecked++;
      const a = want.get(k) ?? new Set<string>();
      const b = have.get(k) ?? new Set<string>();
      const missing = [...a].filter((u) => !b.has(u));
      const extra = [...b].filter((u) => !a.has(u));
      if (missing.length || extra.length) note(`${name} ${k}: ${missing.length} users missing (${missing.slice(0, 3).join(' ')}), ${extra.length} extra (${extra.slice(0, 3).join(' ')})`);
    }
  };
  countCells('platform_events', x.platformEvents, got.platformEvents);
  countCells('user_actions', x.userActions, got.userActions);
  countCells('geo events', x.geoEvents, got.geoEvents);
  setCells('active_users', x.activeUsers, got.activeUsers);
  setCells('geo users', x.geoUsers, got.geoUsers);
  countCells('session events of user', x.sessionEvents, got.sessionEvents, true);
  for (const [k, off] of x.lastOffsets) {
    if (got.offsets.get(k) !== off) note(`partition:topic ${k}: committed offset ${got.offsets.get(k)}, last on the broker ${off}`);
  }
  return r;
}
