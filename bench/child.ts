import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

/** Helpers the benches that start an engine process share (freePort also serves the tests' engine harnesses). */

export function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Waits until the engine on `port` answers /readyz. */
export async function waitReady(port: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`engine on port ${port} not ready after ${timeoutMs} ms`);
}

export function exited(p: ChildProcess): Promise<void> {
  return p.exitCode !== null ? Promise.resolve() : new Promise((r) => p.once('exit', () => r()));
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stopChild(p: ChildProcess, graceMs = 30_000): Promise<void> {
  p.kill('SIGTERM');
  await Promise.race([exited(p), new Promise((r) => setTimeout(r, graceMs))]);
  if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
}

/**
 * The production input for a bench: Kafka, fed by loadgen in its own process at a fixed rate, so
 * the engine's main thread does what it does in production (consume and dispatch) instead of
 * generating and encoding events itself (the embedded source). Topics get a fresh prefix and are
 * deleted at the end; the broker is started if nothing answers, and never stopped (it is shared).
 */
export interface KafkaFeed {
  /** Arguments for dist/engine/main.js. */
  engineArgs: string[];
  /** Starts loadgen at `rate` for `seconds` (after the engine is up). */
  start(): void;
  stop(): Promise<void>;
}

export async function prepareKafkaFeed(o: { root: string; run: string; rate: number; users: number; seconds: number; brokers?: string }): Promise<KafkaFeed> {
  const { ensureBroker, deleteTopics } = await import('./e2e.js');
  const brokers = o.brokers ?? '127.0.0.1:9092';
  await ensureBroker(brokers);
  const prefix = `bench-${o.run}-${Date.now()}-`;
  const loadgenJs = path.join(o.root, 'dist/loadgen/loadgen.js');
  const common = ['--bootstrap-server', brokers, '--topic-prefix', prefix, '--users', String(o.users), '--partitions', '8', '--threads', '1'];
  const ref = spawn(process.execPath, [loadgenJs, ...common, '--reference-only'], { stdio: ['ignore', 'ignore', 'inherit'] });
  await exited(ref);
  if (ref.exitCode !== 0) throw new Error(`loadgen --reference-only exited with ${ref.exitCode}`);
  let loadgen: ChildProcess | null = null;
  return {
    engineArgs: ['--source', 'kafka', '--brokers', brokers, '--topic-prefix', prefix, '--group-id', `${prefix}g`],
    start() {
      loadgen = spawn(process.execPath, [loadgenJs, ...common, '--no-reference', '--throughput', String(o.rate), '--duration', `${o.seconds}s`], { stdio: ['ignore', 'ignore', 'inherit'] });
    },
    async stop() {
      if (loadgen) await stopChild(loadgen, 5000);
      await deleteTopics(brokers, prefix, 8).catch(() => undefined);
    },
  };
}
