/**
 * Scenario 2: a worker throws, exits, or runs out of memory in the middle of a batch, in the real
 * engine process reading the broker under load. The faults come from the test-only preload
 * (fault-hook.mjs): they fire inside ShardRuntime.processBatch, after some of the batch's events
 * were applied to the shard's memory and before its commit.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BROKERS, FAULT_HOOK, PARTITIONS, SHARDS, deleteTopics, health, sleep, startEngine, stopEngine, tempDir, uniquePrefix, waitHealth, type EngineProcess, type Health } from './harness.js';
import { reconcile, type ReconcileResult } from './reconcile.js';
import { caughtUp, startAckedLoad, groupSettings, type LoadOptions } from './scenarios.js';

export type WorkerFault = 'throw' | 'exit' | 'oom';

/** Sends a command to the engine's fault hook (see fault-hook.mjs): workers read the file, the main thread is signalled. */
export function hookCommand(engine: EngineProcess, hookFile: string, cmd: { worker: WorkerFault; id: number } | { stall: number }): void {
  fs.writeFileSync(hookFile, JSON.stringify(cmd));
  if ('stall' in cmd) engine.child.kill('SIGUSR2');
}

/** The engine's Prometheus counter of failed (and replayed) shard batches. */
export async function shardFailuresTotal(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const m = /^rta_engine_shard_failures_total (\d+)/m.exec(text);
  if (!m) throw new Error('rta_engine_shard_failures_total is not in /metrics');
  return Number(m[1]);
}

export interface FaultRecord {
  fault: WorkerFault;
  /** The hook's line: where inside the batch it fired. */
  firedAt: string;
  /** The engine's last error once recovered (health stream.lastError). */
  engineError: string | null;
  /** Every per-shard failure health showed between the fault and the recovery (shards[].lastFailure). */
  shardFailuresSeen: string[];
  shardFailuresAdded: number;
  /** From the fault to caught up again. */
  recoveryMs: number;
}

export interface WorkerFaultResult {
  acknowledged: number;
  faults: FaultRecord[];
  /** Every overall status health reported while the faults were handled. */
  statusesSeen: string[];
  /** Health once everything was committed: shards, in-flight slabs, lag. */
  final: Health & { shards: Array<{ inFlight: number; recovering: boolean; failed: boolean; failures: number }> };
  stop: { code: number | null; signal: string | null; ms: number };
  reconciled: ReconcileResult;
  seconds: number;
}

export async function workerFaultsUnderLoad(name: string, load: LoadOptions, faults: WorkerFault[], log: (s: string) => void = () => undefined): Promise<WorkerFaultResult> {
  const t0 = Date.now();
  const prefix = uniquePrefix(name);
  const root = tempDir(name);
  const dataDir = path.join(root, 'state');
  const ackLog = path.join(root, 'acks.tsv');
  const hookFile = path.join(root, 'hook.json');
  let engine: EngineProcess | null = null;
  let polling = true;
  try {
    const lg = await startAckedLoad(prefix, load, ackLog);
    // The worker heap limit (V8's flag applies to every isolate) keeps the OOM quick: ~1 GB, not the machine's default.
    engine = startEngine({ prefix, groupId: `${prefix}engine`, dataDir, extra: groupSettings(`${prefix}engine-1`),
      nodeArgs: ['--import', FAULT_HOOK, '--max-old-space-size=1024'], env: { RTA_TEST_HOOK_FILE: hookFile } });
    const e = engine;
    const url = await e.url;
    const statuses = new Set<string>();
    let failuresSeen = new Set<string>();
    void (async () => {
      while (polling) {
        const h = await health(url) as (Health & { shards: Array<{ lastFailure: string | null }> }) | null;
        if (h) {
          statuses.add(h.overallStatus);
          for (const s of h.shards) if (s.lastFailure) failuresSeen.add(s.lastFailure);
        }
        await sleep(50);
      }
    })();
    const isCaughtUp = caughtUp(load);
    const records: FaultRecord[] = [];
    for (const [i, fault] of faults.entries()) {
      await waitHealth(e, isCaughtUp, 120_000, `caught up before fault ${i + 1}`);
      await sleep(500 + Math.random() * 1500);
      if (lg.finished) throw new Error(`the load ended before fault ${i + 1} (${fault}): make it longer`);
      const before = await shardFailuresTotal(url);
      const linesBefore = e.logs.length;
      failuresSeen = new Set();
      const firedAt = Date.now();
      hookCommand(e, hookFile, { worker: fault, id: i + 1 });
      const deadline = Date.now() + 30_000;
      let line: string | undefined;
      let added = 0;
      while (Date.now() < deadline) {
        line ??= e.logs.slice(linesBefore).find((l) => l.startsWith(`[fault-hook] worker`) && l.includes(` ${fault} inside a batch`));
        added = await shardFailuresTotal(url) - before;
        if (line && added > 0) break;
        await sleep(50);
      }
      if (!line || added === 0) throw new Error(`fault ${fault} did not fire or was not seen as a shard failure (hook line: ${line}, failures added: ${added})`);
      const lastError = (await health(url))?.stream.lastError ?? null;
      const { at } = await waitHealth(e, (h) => isCaughtUp(h) && h.overallStatus === 'UP', 120_000, `caught up after ${fault}`);
      records.push({ fault, firedAt: line.replace(/^\[fault-hook\] /, ''), engineError: lastError, shardFailuresSeen: [...failuresSeen], shardFailuresAdded: added, recoveryMs: at - firedAt });
      log(`${fault}: ${line}; engine error: ${lastError}; caught up after ${at - firedAt} ms`);
    }
    const summary = load.stopWhenDone ? await lg.stop() : await lg.done;
    const final = await waitHealth(e, (h) => h.stream.committedEvents >= summary.records && h.freshness.consumerLagMessages === 0, 180_000, 'every acknowledged event committed');
    polling = false;
    const stop = await stopEngine(e, 'SIGTERM');
    engine = null;
    const reconciled = await reconcile({ brokers: BROKERS, topicPrefix: prefix, partitions: PARTITIONS, shards: SHARDS, dataDir, ackLog });
    return { acknowledged: summary.records, faults: records, statusesSeen: [...statuses], final: final.h as WorkerFaultResult['final'], stop, reconciled, seconds: (Date.now() - t0) / 1000 };
  } finally {
    polling = false;
    if (engine) await stopEngine(engine, 'SIGKILL');
    await deleteTopics(prefix).catch(() => undefined);
    fs.rmSync(root, { recursive: true, force: true });
  }
}
