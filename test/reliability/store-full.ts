/**
 * Scenario 7: the state's disk fills up under load, then a shard store goes missing or corrupt.
 *
 * The data directory is a small tmpfs (root: `mount -t tmpfs`). Once the engine has caught up with
 * the load, a ballast file fills the tmpfs to the last byte: every LMDB commit that needs a new
 * page fails with ENOSPC (StoreError ERR_STORE_FULL, retriable). Sampled while it is full: health,
 * the lag, the group's committed offsets in Kafka against the offsets in LMDB (read read-only from
 * this process, with handles opened before the disk filled so no lock-file page is needed later).
 * Then the ballast is deleted, the load drains and the state reconciles exactly. Afterwards shard 1's
 * directory is deleted and shard 2's data.mdb cut in half: the restart must refuse with a clear
 * error naming shard 2; with shard 2's directory deleted too, the restart rebuilds both shards from
 * the beginning of the topics and the state reconciles exactly again.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { INPUT_TOPICS } from '../../engine/kafka/topics.js';
import { ShardStore, shardPath } from '../../engine/state/shard-store.js';
import { BROKERS, PARTITIONS, SHARDS, deleteTopics, health, sleep, startEngine, stopEngine, tempDir, uniquePrefix, waitHealth, type EngineProcess } from './harness.js';
import { caughtUp, startAckedLoad, committedKafkaOffsets, groupSettings, type LoadOptions } from './scenarios.js';
import { reconcile, type ReconcileResult } from './reconcile.js';
import { fillDisk } from '../fill-disk.js';

export interface FullSample {
  atMs: number;
  status: string;
  lag: number | null;
  committedEvents: number;
  shardFailures: number;
  lastFailures: string[];
  /** Topic-partitions whose Kafka committed offset is past LMDB's (should be none). */
  kafkaAhead: string[];
}

export interface StoreFullResult {
  tmpfsBytes: number;
  acknowledged: number;
  fullForMs: number;
  samples: FullSample[];
  statusesWhileFull: string[];
  storeFullSeen: boolean;
  /** Committed events / Kafka offsets at the first and last sample while full. */
  committedWhileFull: [number, number];
  kafkaOffsetSumWhileFull: [number, number];
  lagWhileFull: [number, number];
  /** Shard failures (retries) while full: bounded by the dispatcher's backoff, not a busy loop. */
  failuresWhileFull: number;
  /** From deleting the ballast until the newest committed event is fresh again. */
  resumeMs: number;
  engineAliveThroughout: boolean;
  stop: { code: number | null; signal: string | null; ms: number };
  reconciled: ReconcileResult;
  corrupt: { exitCode: number | null; error: string };
  rebuild: { caughtUpMs: number; processed: number; reconciled: ReconcileResult };
}

function mount(dir: string, bytes: number): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]);
}
function umount(dir: string): void {
  for (let i = 0; i < 20; i++) {
    try {
      execFileSync('umount', [dir], { stdio: 'ignore' });
      return;
    } catch {
      execFileSync('sleep', ['0.2']);
    }
  }
  throw new Error(`could not unmount ${dir}`);
}


export async function storeFullUnderLoad(name: string, load: LoadOptions, fullMs: number, tmpfsBytes: number, log: (s: string) => void = () => undefined): Promise<StoreFullResult> {
  const prefix = uniquePrefix(name);
  const root = tempDir(name);
  const dataDir = path.join(root, 'state');
  const ackLog = path.join(root, 'acks.tsv');
  const groupId = `${prefix}engine`;
  const engineArgs = { prefix, groupId, dataDir, extra: groupSettings(`${prefix}engine-1`) };
  fs.mkdirSync(dataDir);
  mount(dataDir, tmpfsBytes);
  let engine: EngineProcess | null = null;
  const readers: ShardStore[] = [];
  try {
    const lg = await startAckedLoad(prefix, load, ackLog);
    engine = startEngine(engineArgs);
    await waitHealth(engine, caughtUp(load), 120_000, 'the engine to catch up with the load');
    for (let s = 0; s < SHARDS; s++) readers.push(ShardStore.open(dataDir, s, 256 * 1024 * 1024, true));
    const lmdbOffsets = () => {
      const m = new Map<string, number>();
      for (let p = 0; p < PARTITIONS; p++) {
        const st = readers[p % SHARDS];
        st.env.resetReadTxn();
        for (const [code, off] of Object.entries(st.readMeta(p)?.offsets ?? {})) m.set(`${prefix}${INPUT_TOPICS[Number(code) - 1]}:${p}`, off);
      }
      return m;
    };
    await sleep(1000);
    if (lg.finished) throw new Error('the load ended before the disk filled: make it longer');
    const ballast = path.join(dataDir, 'ballast');
    const t0 = Date.now();
    const ballastBytes = fillDisk(ballast);
    log(`disk full: ballast ${ballastBytes} bytes`);
    const samples: FullSample[] = [];
    const e = engine;
    while (Date.now() - t0 < fullMs) {
      const kafka = await committedKafkaOffsets(groupId, prefix);
      const lmdb = lmdbOffsets();
      const h = (await health(await e.url)) as any;
      const kafkaAhead: string[] = [];
      for (const [k, off] of kafka) if (off > (lmdb.get(k) ?? -1) + 1) kafkaAhead.push(`${k}: Kafka ${off}, LMDB ${lmdb.get(k)}`);
      samples.push({
        atMs: Date.now() - t0, status: h?.overallStatus ?? 'no answer', lag: h?.freshness?.consumerLagMessages ?? null, committedEvents: h?.stream?.committedEvents ?? -1,
        shardFailures: (h?.shards ?? []).reduce((a: number, s: any) => a + s.failures, 0), lastFailures: (h?.shards ?? []).map((s: any) => s.lastFailure).filter(Boolean), kafkaAhead,
      });
      (samples.at(-1) as any).kafkaSum = [...kafka.values()].reduce((a, b) => a + b, 0);
      await sleep(500);
    }
    const first = samples[0];
    const last = samples.at(-1)!;
    fs.rmSync(ballast);
    const freedAt = Date.now();
    log(`space returned after ${freedAt - t0} ms`);
    const engineAliveWhileFull = e.child.exitCode === null && e.child.signalCode === null;
    const resumed = await waitHealth(e, (h) => (h.freshness.ageOfNewestEventMs ?? Infinity) < 3000 && (h.freshness.consumerLagMessages ?? Infinity) < 1000, 120_000, 'consumption to resume after space returned');
    const summary = await lg.done;
    await waitHealth(e, (x) => x.stream.committedEvents >= summary.records && x.freshness.consumerLagMessages === 0, 180_000, 'every acknowledged event committed');
    await Promise.all(readers.splice(0).map((r) => r.close()));
    const engineAliveThroughout = engineAliveWhileFull && e.child.exitCode === null && e.child.signalCode === null;
    const stop = await stopEngine(e, 'SIGTERM');
    engine = null;
    const reconciled = await reconcile({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, shards: SHARDS, dataDir, ackLog });

    // A missing shard directory and a corrupt one.
    fs.rmSync(shardPath(dataDir, 1), { recursive: true });
    const broken = path.join(shardPath(dataDir, 2), 'data.mdb');
    fs.truncateSync(broken, Math.floor(fs.statSync(broken).size / 2));
    const bad = startEngine(engineArgs);
    const badExit = await bad.exited;
    const error = bad.logs.find((l) => /ERR_STORE_CORRUPT|corrupt/.test(l)) ?? bad.logs.slice(-5).join('\n');
    log(`corrupt store: exit ${badExit.code ?? badExit.signal}: ${error.slice(0, 300)}`);
    fs.rmSync(shardPath(dataDir, 2), { recursive: true });
    engine = startEngine(engineArgs);
    const re = await waitHealth(engine, (x) => x.stream.committedEvents >= summary.records && x.freshness.consumerLagMessages === 0, 180_000, 'the rebuilt shards to replay');
    const caughtUpMs = re.at - engine.startedAt;
    await stopEngine(engine, 'SIGTERM');
    engine = null;
    const rebuilt = await reconcile({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, shards: SHARDS, dataDir, ackLog });
    return {
      tmpfsBytes, acknowledged: summary.records, fullForMs: freedAt - t0, samples, statusesWhileFull: [...new Set(samples.map((s) => s.status))],
      storeFullSeen: samples.some((s) => s.lastFailures.some((f) => f.includes('ERR_STORE_FULL'))),
      committedWhileFull: [first.committedEvents, last.committedEvents], kafkaOffsetSumWhileFull: [(first as any).kafkaSum, (last as any).kafkaSum],
      lagWhileFull: [first.lag ?? -1, last.lag ?? -1], failuresWhileFull: last.shardFailures,
      resumeMs: resumed.at - freedAt, engineAliveThroughout, stop, reconciled,
      corrupt: { exitCode: badExit.code, error },
      rebuild: { caughtUpMs, processed: re.h.stream.eventsProcessed, reconciled: rebuilt },
    };
  } finally {
    await Promise.all(readers.map((r) => r.close().catch(() => undefined)));
    if (engine) await stopEngine(engine, 'SIGKILL');
    await deleteTopics(prefix).catch(() => undefined);
    umount(dataDir);
    fs.rmSync(root, { recursive: true, force: true });
  }
}
