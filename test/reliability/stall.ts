/**
 * Scenario 5: the engine's event loop stalls for longer than max.poll.interval.ms while loadgen
 * writes. The stall is a busy-wait in the main thread (fault-hook.mjs on SIGUSR2): no Kafka polls,
 * timers or HTTP meanwhile, while librdkafka's own threads see the poll interval pass and take the
 * member out of the group. After the stall the engine must rejoin and count exactly.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BROKERS, FAULT_HOOK, PARTITIONS, SHARDS, deleteTopics, health, sleep, startEngine, stopEngine, tempDir, uniquePrefix, waitHealth, type EngineProcess } from './harness.js';
import { reconcile, type ReconcileResult } from './reconcile.js';
import { caughtUp, startAckedLoad, type LoadOptions } from './scenarios.js';
import { hookCommand } from './worker-faults.js';

export interface StallResult {
  maxPollIntervalMs: number;
  stallMs: number;
  /** The hook's lines: the stall began and ended. */
  hookLines: string[];
  rebalancesBefore: number;
  rebalancesAfter: number;
  /** What the source reported (stats.lastError) after the stall. */
  sourceErrors: string[];
  /** From the end of the stall to caught up again. */
  catchUpAfterStallMs: number;
  acknowledged: number;
  stop: { code: number | null; signal: string | null; ms: number };
  reconciled: ReconcileResult;
  seconds: number;
}

type SourceStats = { rebalances: number; lastError: string };

export async function stallUnderLoad(name: string, load: LoadOptions, stallMs: number, maxPollIntervalMs: number, log: (s: string) => void = () => undefined): Promise<StallResult> {
  const t0 = Date.now();
  const prefix = uniquePrefix(name);
  const root = tempDir(name);
  const dataDir = path.join(root, 'state');
  const ackLog = path.join(root, 'acks.tsv');
  const hookFile = path.join(root, 'hook.json');
  let engine: EngineProcess | null = null;
  try {
    const lg = await startAckedLoad(prefix, load, ackLog);
    // librdkafka wants max.poll.interval.ms >= session.timeout.ms; the broker's minimum session is 6 s.
    // A dynamic member (no group.instance.id): the ordinary case, where the member is removed and rejoins.
    engine = startEngine({ prefix, groupId: `${prefix}engine`, dataDir,
      extra: ['--kafka', `max.poll.interval.ms=${maxPollIntervalMs}`, '--kafka', `session.timeout.ms=${Math.min(maxPollIntervalMs, 6000)}`, '--kafka', 'heartbeat.interval.ms=1000'],
      nodeArgs: ['--import', FAULT_HOOK], env: { RTA_TEST_HOOK_FILE: hookFile } });
    const e = engine;
    const url = await e.url;
    const isCaughtUp = caughtUp(load);
    await waitHealth(e, isCaughtUp, 120_000, 'caught up before the stall');
    await sleep(1000);
    if (lg.finished) throw new Error('the load ended before the stall: make it longer');
    const before = (await health(url))!.stream as unknown as { sourceStats: SourceStats };
    const linesBefore = e.logs.length;
    hookCommand(e, hookFile, { stall: stallMs });
    // The engine answers nothing while it stalls: wait for the hook to say the stall is over.
    const deadline = Date.now() + stallMs + 30_000;
    while (!e.logs.slice(linesBefore).some((l) => l.includes(`stall of ${stallMs} ms over`))) {
      if (Date.now() > deadline) throw new Error('the stall did not end');
      await sleep(20);
    }
    const stallEnd = Date.now();
    const first = await health(url);
    const hookLines = e.logs.slice(linesBefore).filter((l) => l.startsWith('[fault-hook] main thread'));
    log(`stall over (${hookLines.join(' / ')}); first health after it: ${first?.overallStatus}`);
    const { at, h } = await waitHealth(e, (x) => isCaughtUp(x) && (x.stream as unknown as { sourceStats: SourceStats }).sourceStats.rebalances > before.sourceStats.rebalances, 120_000, 'rejoined and caught up after the stall');
    const after = (h.stream as unknown as { sourceStats: SourceStats }).sourceStats;
    log(`rejoined and caught up ${at - stallEnd} ms after the stall; rebalances ${before.sourceStats.rebalances} -> ${after.rebalances}; source error: ${after.lastError}`);
    const summary = await lg.done;
    await waitHealth(e, (x) => x.stream.committedEvents >= summary.records && x.freshness.consumerLagMessages === 0, 180_000, 'every acknowledged event committed');
    const stop = await stopEngine(e, 'SIGTERM');
    engine = null;
    const reconciled = await reconcile({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, shards: SHARDS, dataDir, ackLog });
    return {
      maxPollIntervalMs, stallMs, hookLines, rebalancesBefore: before.sourceStats.rebalances, rebalancesAfter: after.rebalances, sourceErrors: [after.lastError].filter(Boolean),
      catchUpAfterStallMs: at - stallEnd, acknowledged: summary.records, stop, reconciled, seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    if (engine) await stopEngine(engine, 'SIGKILL');
    await deleteTopics(prefix).catch(() => undefined);
    fs.rmSync(root, { recursive: true, force: true });
  }
}
