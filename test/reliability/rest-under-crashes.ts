/**
 * Scenario 9: many concurrent long REST queries while worker threads crash. The engine process
 * (embedded source, accelerated event time so that day-long queries have hours of windows to merge)
 * runs with the test-only fault hook; 60 clients keep asking for distinct day-long analytics while
 * workers exit, run out of memory or throw inside batches. Judged: only 200s and clear 503s
 * (never a 500 or a dropped connection), the LMDB reader table does not fill up (each dead thread
 * could leave a reader slot behind: maxReaders is 126), and the store files stay bounded.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { parseEngineConfig } from '../../engine/index.js';
import { ShardStore, shardPath } from '../../engine/state/shard-store.js';
import { FAULT_HOOK, SHARDS, rssOf, sleep, tempDir, waitHealth, watchEngine, type EngineProcess } from './harness.js';
import { hookCommand, shardFailuresTotal, type WorkerFault } from './worker-faults.js';

const ENGINE = path.resolve('dist/engine/main.js');

function startEmbeddedEngine(dataDir: string, hookFile: string, extra: string[]): EngineProcess {
  return watchEngine(spawn(process.execPath, ['--import', FAULT_HOOK, '--max-old-space-size=512', ENGINE, '--source', 'embedded', '--data-dir', dataDir, '--port', '0', '--partitions', '8',
    '--shards', String(SHARDS), '--workers', '1', '--commit-interval-ms', '500', '--status-interval-ms', '60000', ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RTA_TEST_HOOK_FILE: hookFile } }));
}

function storeBytes(dataDir: string): number {
  let n = 0;
  for (let s = 0; s < SHARDS; s++) {
    const dir = shardPath(dataDir, s);
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) n += fs.statSync(path.join(dir, f)).size;
  }
  return n;
}

/** Reader slots in use per shard environment (LMDB's reader table, as mdb_reader_list prints it). */
function readerSlots(dataDir: string): number[] {
  const config = parseEngineConfig({ dataDir, partitions: 8, shards: SHARDS });
  const out: number[] = [];
  for (let s = 0; s < SHARDS; s++) {
    const store = ShardStore.open(dataDir, s, config.mapSizeBytes, true);
    const list = (store.env as unknown as { readerList(): string }).readerList();
    out.push(list.split('\n').filter((l) => /^\s*\d+\s+\S+\s+\S+/.test(l)).length);
    void store.close();
  }
  return out;
}

export interface RestCrashResult {
  faults: number;
  faultsFired: number;
  shardFailures: number;
  requests: number;
  byStatus: Record<string, number>;
  /** Bodies of non-200 answers (codes), to see that the 503s say why. */
  errorCodes: Record<string, number>;
  latencyMs: { p50: number; p99: number; max: number };
  readerSlots: { before: number[]; afterFaults: number[]; max: number };
  storeMB: { beforeFaults: number; afterFaults: number; end: number };
  rssMB: { beforeFaults: number; max: number; end: number };
  engineAlive: boolean;
  finalStatus: string;
  seconds: number;
}

const ROUTES = ['analytics/funnel', 'analytics/geo', 'analytics/performance', 'metrics/revenue', 'metrics/active-users', 'products/top'];

export async function restQueriesDuringCrashes(opts: { clients: number; faults: WorkerFault[]; faultEveryMs: number; timeScale: number; rate: number }, log: (s: string) => void = () => undefined): Promise<RestCrashResult> {
  const t0 = Date.now();
  const root = tempDir('restcrash');
  const dataDir = path.join(root, 'state');
  const hookFile = path.join(root, 'hook.json');
  const engine = startEmbeddedEngine(dataDir, hookFile, ['--rate', String(opts.rate), '--time-scale', String(opts.timeScale), '--users', '20000', '--rest-cache-ms', '0']);
  try {
    const url = await engine.url;
    // Let a few hours of event time accumulate so that day-long queries have work.
    await sleep(8000);
    const before = readerSlots(dataDir);
    const storeBefore = storeBytes(dataDir);
    const rssBefore = rssOf(engine.child.pid!);
    let querying = true;
    const byStatus: Record<string, number> = {};
    const errorCodes: Record<string, number> = {};
    const latencies: number[] = [];
    const clients = Array.from({ length: opts.clients }, async (_, i) => {
      let n = 0;
      while (querying) {
        const route = ROUTES[(i + n) % ROUTES.length];
        const hours = 1 + ((i * 7 + n++) % 24);
        const a = Date.now();
        try {
          const r = await fetch(`${url}/api/dashboard/${route}?hours=${hours}`, { signal: AbortSignal.timeout(30_000) });
          const body = await r.text();
          byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
          if (r.status !== 200) {
            let code = 'no code';
            try {
              code = JSON.parse(body).error ?? code;
            } catch { /* not JSON */ }
            errorCodes[`${r.status} ${code}`] = (errorCodes[`${r.status} ${code}`] ?? 0) + 1;
          }
        } catch (e) {
          byStatus[`error: ${(e as Error).name}`] = (byStatus[`error: ${(e as Error).name}`] ?? 0) + 1;
        }
        latencies.push(Date.now() - a);
      }
    });
    let rssMax = rssBefore;
    let readersMax = Math.max(...before);
    let fired = 0;
    const failuresBefore = await shardFailuresTotal(url);
    for (const [i, fault] of opts.faults.entries()) {
      const lines = engine.logs.length;
      hookCommand(engine, hookFile, { worker: fault, id: i + 1 });
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && !engine.logs.slice(lines).some((l) => l.startsWith('[fault-hook] worker') && l.includes(` ${fault} inside a batch`))) await sleep(50);
      if (engine.logs.slice(lines).some((l) => l.startsWith('[fault-hook] worker'))) fired++;
      // Each fault once the shards have recovered and committed: faults faster than that make a
      // shard give up (see RELIABILITY.md, "worker errors lose their code"), which is not what this
      // scenario is about.
      await waitHealth(engine, (x) => x.overallStatus === 'UP', 60_000, `UP after fault ${i + 1}`);
      await sleep(opts.faultEveryMs);
      rssMax = Math.max(rssMax, rssOf(engine.child.pid!));
      readersMax = Math.max(readersMax, ...readerSlots(dataDir));
    }
    // Recovered: every shard UP again.
    const { h } = await waitHealth(engine, (x) => x.overallStatus === 'UP', 60_000, 'UP after the faults');
    const afterFaults = readerSlots(dataDir);
    const storeAfter = storeBytes(dataDir);
    await sleep(3000);
    querying = false;
    await Promise.all(clients);
    const shardFailures = (await shardFailuresTotal(url)) - failuresBefore;
    const sorted = [...latencies].sort((a, b) => a - b);
    const result: RestCrashResult = {
      faults: opts.faults.length, faultsFired: fired, shardFailures, requests: latencies.length, byStatus, errorCodes,
      latencyMs: { p50: sorted[Math.floor(sorted.length / 2)], p99: sorted[Math.floor(sorted.length * 0.99)], max: sorted.at(-1)! },
      readerSlots: { before, afterFaults, max: readersMax },
      storeMB: { beforeFaults: Math.round(storeBefore / 1e5) / 10, afterFaults: Math.round(storeAfter / 1e5) / 10, end: Math.round(storeBytes(dataDir) / 1e5) / 10 },
      rssMB: { beforeFaults: Math.round(rssBefore / 1e5) / 10, max: Math.round(rssMax / 1e5) / 10, end: Math.round(rssOf(engine.child.pid!) / 1e5) / 10 },
      engineAlive: engine.child.exitCode === null && engine.child.signalCode === null, finalStatus: h.overallStatus, seconds: (Date.now() - t0) / 1000,
    };
    log(JSON.stringify(result));
    return result;
  } finally {
    if (engine.child.exitCode === null && engine.child.signalCode === null) engine.child.kill('SIGKILL');
    await engine.exited;
    fs.rmSync(root, { recursive: true, force: true });
  }
}
