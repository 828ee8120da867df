/**
 * Scenario 3: the broker is stopped (SIGTERM, a clean shutdown) or killed (SIGKILL: no shutdown,
 * its logs recovered at the next start) and restarted while loadgen writes. Runs on a private broker
 * (private-broker.ts): the shared one on 9092 is never stopped. While the broker is away the
 * engine must keep serving the dashboard and say it is degraded; after the restart it reconnects,
 * the lag recovers, and the state reconciles exactly.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PARTITIONS, SHARDS, health, sleep, startEngine, stopEngine, tempDir, uniquePrefix, waitHealth, type EngineProcess, type Health } from './harness.js';
import { PrivateBroker } from './private-broker.js';
import { reconcile, type ReconcileResult } from './reconcile.js';
import { caughtUp, startAckedLoad, groupSettings, type LoadOptions } from './scenarios.js';

interface Sample { t: number; healthStatus: number | null; overallStatus: string | null; lag: number | null; healthMs: number; restStatus: number | null; restMs: number; sourceError: string | null }

async function sample(url: string, t0: number): Promise<Sample> {
  const a = Date.now();
  let healthStatus: number | null = null;
  let h = null as (Health & { stream: { sourceStats?: { lastError?: string; brokersDownSince?: number } } }) | null;
  try {
    const r = await fetch(`${url}/api/dashboard/health`, { signal: AbortSignal.timeout(5000) });
    healthStatus = r.status;
    h = (await r.json()) as NonNullable<typeof h>;
  } catch { /* counted as no answer */ }
  const b = Date.now();
  let restStatus: number | null = null;
  try {
    const r = await fetch(`${url}/api/dashboard/metrics/active-users`, { signal: AbortSignal.timeout(5000) });
    restStatus = r.status;
    await r.arrayBuffer();
  } catch { /* no answer */ }
  return { t: a - t0, healthStatus, overallStatus: h?.overallStatus ?? null, lag: h?.freshness.consumerLagMessages ?? null, healthMs: b - a, restStatus, restMs: Date.now() - b, sourceError: h?.stream.sourceStats?.lastError ?? null };
}

export interface BrokerRestartResult {
  signal: 'SIGTERM' | 'SIGKILL';
  brokerStartMs: number;
  outageMs: number;
  brokerStopMs: number;
  brokerRestartMs: number;
  /** Samples of health and a REST route while the broker was away. */
  during: { samples: number; answered: number; restOk: number; statuses: Record<string, number>; maxHealthMs: number; maxRestMs: number; sourceErrors: string[] };
  /** From the broker answering again to the engine caught up (lag back to normal). */
  catchUpAfterRestartMs: number;
  /** Whether loadgen was still writing when the engine had caught up (else the catch-up is the drain of the backlog). */
  loadRunningAtCatchUp: boolean;
  maxLagAfterRestart: number;
  acknowledged: number;
  loadgenErrors: number;
  /** The engine's Kafka source at the end (consumerReplacements: fatal consumer errors survived). */
  sourceStats: Record<string, unknown> | null;
  stop: { code: number | null; signal: string | null; ms: number };
  reconciled: ReconcileResult;
  seconds: number;
}

export async function brokerRestartUnderLoad(name: string, load: LoadOptions, outageMs: number, log: (s: string) => void = () => undefined, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<BrokerRestartResult> {
  const t0 = Date.now();
  const prefix = uniquePrefix(name);
  const root = tempDir(name);
  const dataDir = path.join(root, 'state');
  const ackLog = path.join(root, 'acks.tsv');
  const broker = await PrivateBroker.create(path.join(root, 'kafka'));
  let engine: EngineProcess | null = null;
  try {
    const brokerStartMs = await broker.start();
    log(`private broker on ${broker.brokers} (pid ${broker.pid()}) ready in ${brokerStartMs} ms`);
    const brokers = broker.brokers;
    const lg = await startAckedLoad(prefix, load, ackLog, brokers);
    engine = startEngine({ prefix, groupId: `${prefix}engine`, dataDir, brokers, extra: groupSettings(`${prefix}engine-1`) });
    const e = engine;
    let acked = Infinity;
    lg.done.then((sum) => (acked = sum.records), () => undefined);
    const url = await e.url;
    const isCaughtUp = caughtUp(load);
    await waitHealth(e, isCaughtUp, 120_000, 'caught up before the broker stops');
    await sleep(2000);
    if (lg.finished) throw new Error('the load ended before the broker stopped: make it longer');
    const brokerStopMs = await broker.stop(signal);
    log(`broker stopped (${signal}) in ${brokerStopMs} ms`);
    const samples: Sample[] = [];
    const outageEnd = Date.now() + outageMs;
    while (Date.now() < outageEnd) {
      samples.push(await sample(url, t0));
      await sleep(250);
    }
    const restartAt = Date.now();
    const brokerRestartMs = await broker.start();
    log(`broker restarted in ${brokerRestartMs} ms after an outage of ${restartAt - (outageEnd - outageMs)} ms`);
    const up = Date.now();
    let maxLag = 0;
    // Caught up: with the load still running, its newest events are committed within 3 s; once it
    // has ended (a slow broker restart), nothing waits any more.
    const { at } = await waitHealth(e, (h) => {
      maxLag = Math.max(maxLag, h.freshness.consumerLagMessages ?? 0);
      return (isCaughtUp(h) || (h.stream.committedEvents >= acked && h.freshness.consumerLagMessages === 0)) && h.overallStatus === 'UP';
    }, 180_000, 'caught up after the broker restart');
    const loadRunningAtCatchUp = !lg.finished;
    log(`caught up ${at - up} ms after the broker answered again (max lag seen ${maxLag} messages)`);
    const summary = await lg.done;
    await waitHealth(e, (h) => h.stream.committedEvents >= summary.records && h.freshness.consumerLagMessages === 0, 180_000, 'every acknowledged event committed');
    const sourceStats = ((await health(url)) as unknown as { stream: { sourceStats: Record<string, unknown> } } | null)?.stream.sourceStats ?? null;
    const stop = await stopEngine(e, 'SIGTERM');
    engine = null;
    const reconciled = await reconcile({ brokers, topicPrefix: prefix, partitions: PARTITIONS, shards: SHARDS, dataDir, ackLog });
    const statuses: Record<string, number> = {};
    for (const s of samples) statuses[s.overallStatus ?? 'no answer'] = (statuses[s.overallStatus ?? 'no answer'] ?? 0) + 1;
    return {
      signal, brokerStartMs, outageMs: restartAt - (outageEnd - outageMs) + brokerRestartMs, brokerStopMs, brokerRestartMs,
      during: {
        samples: samples.length, answered: samples.filter((s) => s.healthStatus === 200).length, restOk: samples.filter((s) => s.restStatus === 200).length, statuses,
        maxHealthMs: Math.max(...samples.map((s) => s.healthMs)), maxRestMs: Math.max(...samples.map((s) => s.restMs)), sourceErrors: [...new Set(samples.map((s) => s.sourceError).filter((x): x is string => !!x))],
      },
      catchUpAfterRestartMs: at - up, loadRunningAtCatchUp, maxLagAfterRestart: maxLag, acknowledged: summary.records, loadgenErrors: summary.errors ?? 0, sourceStats, stop, reconciled, seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    if (engine) await stopEngine(engine, 'SIGKILL');
    await broker.destroy();
    fs.rmSync(root, { recursive: true, force: true });
  }
}
