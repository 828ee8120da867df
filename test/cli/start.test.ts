import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../engine/harness.js';

/** What `npm start` runs (after the build): the engine on the embedded source with the server. */
function start(dataDir: string, extra: string[] = []) {
  const child = spawn(process.execPath, [path.resolve('dist/engine/main.js'), '--data-dir', dataDir, '--port', '0', '--rate', '20000', '--status-interval-ms', '500', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const url = new Promise<string>((resolve, reject) => {
    const t = setInterval(() => {
      const m = /Dashboard API: (http:\/\/[\d.]+:\d+)/.exec(err);
      if (m) {
        clearInterval(t);
        resolve(m[1]);
      }
    }, 20);
    child.once('exit', (code) => {
      clearInterval(t);
      reject(new Error(`exited ${code} before listening: ${err.slice(-500)}`));
    });
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, url, exit, out: () => out };
}

describe('npm start (engine + server on the embedded source)', () => {
  it('serves the dashboard API, and SIGTERM drains, commits and exits 0; a restart continues from the state', async () => {
    const dir = tempDir('cli');
    try {
      const first = start(dir);
      const url = await first.url;
      let health: { overallStatus: string; stream: { committedEvents: number } } | null = null;
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        health = (await (await fetch(`${url}/api/dashboard/health`)).json()) as typeof health;
        if (health!.stream.committedEvents > 0) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(health!.overallStatus).toBe('UP');
      expect(health!.stream.committedEvents).toBeGreaterThan(0);
      const t0 = Date.now();
      first.child.kill('SIGTERM');
      expect(await first.exit).toBe(0);
      expect(Date.now() - t0).toBeLessThan(30_000);
      expect(first.out()).toMatch(/"msg":"stopped"/);
      const stopped = first.out().trim().split('\n').map((l) => JSON.parse(l)).find((l) => l.msg === 'stopped');

      // The restart regenerates the same stream (same seed) and skips what the state counted.
      const second = start(dir, ['--events', String(stopped.events + 5000)]);
      await second.url;
      expect(await second.exit).toBe(0);
      const last = second.out().trim().split('\n').map((l) => JSON.parse(l)).find((l) => l.msg === 'stopped');
      expect(last.events).toBe(5000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
