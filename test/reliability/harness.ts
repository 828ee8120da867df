/**
 * Reliability harness: the engine (dist/engine/main.js) and loadgen (dist/loadgen/loadgen.js) as
 * child processes on the real broker, with unique topics and consumer groups per run. Run
 * `npm run build` first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Kafka from 'node-rdkafka';
import { topicSpecs } from '../../engine/kafka/topics.js';

export const BROKERS = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';
export const PARTITIONS = 8;
export const SHARDS = 4;
const ENGINE = path.resolve('dist/engine/main.js');
const LOADGEN = path.resolve('dist/loadgen/loadgen.js');

export function tempDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `rta-rel-${name}-`));
}

export function uniquePrefix(name: string): string {
  return `rel-${name}-${Date.now()}-${process.pid}-`;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface EngineProcess {
  child: ChildProcess;
  /** Resolves with the server's base URL once the engine logged that it started. */
  url: Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  startedAt: number;
  /** Every log line (pino JSON on stdout, and stderr). */
  logs: string[];
  /**
   * After the process exited: how (code or signal) and its last log lines. It waits for the output
   * pipes to close first: 'exit' can come before the last lines are read, and those say why.
   */
  exitReport(): Promise<string>;
}

/** The test-only preload (fault-hook.mjs): worker faults inside a batch and main-thread stalls, on SIGUSR2. */
export const FAULT_HOOK = path.resolve('test/reliability/fault-hook.mjs');

export function startEngine(opts: {
  prefix: string; groupId: string; dataDir: string; workers?: number; extra?: string[];
  /** Node options before the script (e.g. ['--import', FAULT_HOOK, '--max-old-space-size=1024']). */
  nodeArgs?: string[]; env?: Record<string, string>;
  /** Another broker than BROKERS (scenario 3 runs its own). */
  brokers?: string;
  /** --audit-sequences (the reconciler's per-key sequence check needs it); default on. */
  audit?: boolean;
}): EngineProcess {
  const args = [...(opts.nodeArgs ?? []), ENGINE, '--source', 'kafka', '--brokers', opts.brokers ?? BROKERS, '--topic-prefix', opts.prefix, '--group-id', opts.groupId, '--data-dir', opts.dataDir,
    '--port', '0', '--partitions', String(PARTITIONS), '--shards', String(SHARDS), '--workers', String(opts.workers ?? 1), '--commit-interval-ms', '500',
    '--status-interval-ms', '60000', ...(opts.audit === false ? [] : ['--audit-sequences']), ...(opts.extra ?? [])];
  return watchEngine(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } }));
}

/** Follows an engine process spawned with piped stdout and stderr: its log lines, URL and exit. */
export function watchEngine(child: ChildProcess): EngineProcess {
  const logs: string[] = [];
  let resolveUrl: (u: string) => void = () => undefined;
  let rejectUrl: (e: Error) => void = () => undefined;
  const url = new Promise<string>((r, j) => ((resolveUrl = r), (rejectUrl = j)));
  url.catch(() => undefined);
  const onLine = (line: string) => {
    if (!line) return;
    if (logs.length < 5000) logs.push(line);
    if (line.startsWith('{') && line.includes('"url"')) {
      try {
        const u = JSON.parse(line).url;
        if (typeof u === 'string') resolveUrl(u);
      } catch { /* not ours */ }
    }
  };
  let outBuf = '';
  child.stdout!.on('data', (d: Buffer) => {
    outBuf += d.toString();
    const lines = outBuf.split('\n');
    outBuf = lines.pop()!;
    lines.forEach(onLine);
  });
  child.stderr!.on('data', (d: Buffer) => d.toString().split('\n').forEach(onLine));
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const exitReport = async () => {
    await Promise.race([closed, sleep(3000)]);
    if (outBuf) onLine(outBuf);
    outBuf = '';
    return `exited (code ${child.exitCode}, signal ${child.signalCode}); last lines:\n${logs.slice(-30).join('\n')}`;
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => {
    void exitReport().then((report) => rejectUrl(new Error(`engine ${report} (before it started)`)));
    resolve({ code, signal });
  }));
  return { child, url, exited, startedAt: Date.now(), logs, exitReport };
}

export interface Health {
  overallStatus: string;
  stream: { committedEvents: number; eventsProcessed: number; lastError: string | null };
  freshness: { ageOfNewestEventMs: number | null; consumerLagMessages: number | null; slabsInFlight?: number };
}

export async function health(url: string): Promise<Health | null> {
  try {
    const r = await fetch(`${url}/api/dashboard/health`, { signal: AbortSignal.timeout(5000) });
    return (await r.json()) as Health;
  } catch {
    return null;
  }
}

/** Polls health until `cond` holds; returns the moment it did (ms since epoch). */
export async function waitHealth(e: EngineProcess, cond: (h: Health) => boolean, timeoutMs: number, what: string): Promise<{ at: number; h: Health }> {
  const url = await e.url;
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  let last: Health | null = null;
  // For the timeout's message: about one sample a second of what "caught up" conditions look at.
  const trail: string[] = [];
  let nextTrail = t0;
  for (;;) {
    const h = await health(url);
    if (h) last = h;
    if (h && cond(h)) return { at: Date.now(), h };
    if (Date.now() >= nextTrail) {
      nextTrail += 1000;
      trail.push(h ? `+${((Date.now() - t0) / 1000).toFixed(0)}s ${h.overallStatus} age=${h.freshness.ageOfNewestEventMs} lag=${h.freshness.consumerLagMessages} committed=${h.stream.committedEvents}` : `+${((Date.now() - t0) / 1000).toFixed(0)}s no health`);
      if (trail.length > 40) trail.splice(0, trail.length - 40);
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; last health: ${JSON.stringify(last)}\nhealth over the wait (last 40 s):\n${trail.join('\n')}\nthe engine's last log lines:\n${e.logs.slice(-20).join('\n')}`);
    }
    if (e.child.exitCode !== null || e.child.signalCode !== null) throw new Error(`engine exited while waiting for ${what}: ${await e.exitReport()}`);
    await sleep(100);
  }
}

export async function stopEngine(e: EngineProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const t0 = Date.now();
  if (e.child.exitCode === null && e.child.signalCode === null) e.child.kill(signal);
  const r = await e.exited;
  return { ...r, ms: Date.now() - t0 };
}

export interface LoadgenRun {
  child: ChildProcess;
  done: Promise<Record<string, any>>;
}

/** Runs loadgen into the topics of `prefix`; `done` resolves with its JSON summary (rejects on a non-zero exit). */
export function runLoadgen(prefix: string, args: string[], brokers = BROKERS): LoadgenRun {
  const child = spawn(process.execPath, [LOADGEN, '--bootstrap-server', brokers, '--topic-prefix', prefix, '--partitions', String(PARTITIONS), '--reporting-interval', '5000', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const done = new Promise<Record<string, any>>((resolve, reject) => child.on('exit', (code) => {
    const last = out.trim().split('\n').at(-1) ?? '';
    if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last));
    else reject(new Error(`loadgen exited ${code}: ${err.slice(-2000)} ${out.slice(-1000)}`));
  }));
  return { child, done };
}

export async function deleteTopics(prefix: string, brokers = BROKERS): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': brokers });
  try {
    for (const s of topicSpecs(prefix, PARTITIONS, { changelog: true })) await new Promise<void>((resolve) => admin.deleteTopic(s.name, 10_000, () => resolve()));
  } finally {
    admin.disconnect();
  }
}

/** Creates a topic with settings (e.g. max.message.bytes) before ensureTopics would create it with defaults. */
export async function createTopic(name: string, config: Record<string, string>): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': BROKERS });
  try {
    await new Promise<void>((resolve, reject) => admin.createTopic({ topic: name, num_partitions: PARTITIONS, replication_factor: 1, config }, 15_000, (err) => (err ? reject(err) : resolve())));
  } finally {
    admin.disconnect();
  }
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Resident set size of a process (bytes), from /proc. */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}
