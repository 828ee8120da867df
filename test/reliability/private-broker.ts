/**
 * A private Kafka broker for scenarios that stop and restart the broker (the shared one on
 * 127.0.0.1:9092 is used by other tests and people and is never touched). It is kafka/kafka.mjs
 * with its own cache dir (data, logs, config, pid file) and free ports, reading the shared jars.
 * Stopped by its own pid only.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from '../../bench/child.js';

const SCRIPT = path.resolve('kafka/kafka.mjs');
const SHARED_CACHE = path.resolve(process.env.KAFKA_CACHE_DIR || '.cache/kafka');

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class PrivateBroker {
  private constructor(readonly dir: string, readonly port: number, readonly controllerPort: number) {}

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async create(dir: string): Promise<PrivateBroker> {
    fs.mkdirSync(dir, { recursive: true });
    const port = await freePort();
    let controllerPort = await freePort();
    while (controllerPort === port) controllerPort = await freePort();
    return new PrivateBroker(dir, port, controllerPort);
  }

  private script(cmd: 'start' | 'stop' | 'status'): Promise<{ code: number | null; out: string }> {
    const child = spawn(process.execPath, [SCRIPT, cmd], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KAFKA_CACHE_DIR: this.dir, KAFKA_PORT: String(this.port), KAFKA_CONTROLLER_PORT: String(this.controllerPort), KAFKA_LIBS_DIR: path.join(SHARED_CACHE, 'libs') },
    });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out })));
  }

  /** Starts (or restarts on the same data) and waits until it answers; returns the ms it took. */
  async start(): Promise<number> {
    const t0 = Date.now();
    const r = await this.script('start');
    if (r.code !== 0) throw new Error(`private broker did not start: ${r.out}`);
    return Date.now() - t0;
  }

  /** The broker's pid, from its own pid file (never the shared broker's). */
  pid(): number | null {
    try {
      const pid = Number(fs.readFileSync(path.join(this.dir, 'kafka.pid'), 'utf8').trim());
      if (!(pid > 0) || !isAlive(pid)) return null;
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmd.includes('kafka.Kafka') && cmd.includes(this.dir) ? pid : null;
    } catch {
      return null;
    }
  }

  /** Stops it by its pid (SIGTERM: a clean broker shutdown, or SIGKILL); returns the ms it took. */
  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<number> {
    const t0 = Date.now();
    const pid = this.pid();
    if (pid === null) return 0;
    process.kill(pid, signal);
    const deadline = Date.now() + 30_000;
    while (isAlive(pid)) {
      if (Date.now() > deadline) process.kill(pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 100));
    }
    fs.rmSync(path.join(this.dir, 'kafka.pid'), { force: true });
    return Date.now() - t0;
  }

  /** Stops it and deletes its data. */
  async destroy(): Promise<void> {
    await this.stop('SIGKILL').catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
