import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Engine } from '../../engine/index.js';
import { TEST_GENERATOR, expectCoreNumbers, generateEvents, referenceFor, startEmbedded, tempDir, withCommittedState } from './harness.js';

const N = 60_000;
const model = referenceFor(generateEvents(TEST_GENERATOR, N));
const ALL = { from: 0, to: Number.MAX_SAFE_INTEGER };
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** Reads the committed state of a data directory and checks it against the reference model. */
function expectReferenceNumbers(dataDir: string): Promise<void> {
  return withCommittedState(dataDir, (q) => {
    expect(q.progress().map((p) => p.streamTime)).toEqual(model.streamTime);
    expectCoreNumbers(q, model);
    q.revenue(ALL).forEach((r, i) => expect(Math.abs(r.usd - model.revenue[i].usd)).toBeLessThan(0.011));
    const types = new Set(['IOT_THRESHOLD', 'REPEATED_LOGIN_FAILURE', 'MULTIPLE_LOCATIONS', 'MULTIPLE_PLATFORMS', 'TRANSACTION_ANOMALY']);
    const got = q.alerts({ limit: 1e9 }).alerts.map((a) => a.alertId).filter((id) => types.has(id.split(':')[0]));
    expect(got.sort()).toEqual([...model.alerts].sort());
  });
}

function startEngine(dataDir: string, rate: number): Promise<Engine> {
  return startEmbedded(dataDir, TEST_GENERATOR, N, { rate, eventsPerMessage: 200 }, { partitions: 8, shards: 4, workers: 2, commitIntervalMs: 200 });
}

describe('restart and crash safety', () => {
  it('a graceful stop mid-run and a restart over the same state count every event exactly once', async () => {
    const dir = tempDir('restart');
    dirs.push(dir);
    const first = await startEngine(dir, 40_000);
    await new Promise((r) => setTimeout(r, 700));
    await first.stop();
    const seen = first.metrics.events;
    expect(seen).toBeGreaterThan(0);
    expect(seen).toBeLessThan(N);
    const second = await startEngine(dir, Infinity);
    await second.finished();
    // The second run skipped exactly what the first had committed.
    expect(second.metrics.events).toBe(N - seen);
    expect(second.committedTotals().events).toBe(N);
    expect(second.committedTotals().late).toEqual(model.late);
    await second.stop();
    await expectReferenceNumbers(dir);
  }, 120_000);

  it('SIGKILL at several points, then restart, reaches exactly the reference numbers', async () => {
    const dir = tempDir('sigkill');
    dirs.push(dir);
    const script = path.resolve('dist/test/engine/fixtures/run-embedded.js');
    // The kill lands a chosen time after the child first reports processed events (not after
    // spawn: on a loaded machine start-up alone can take longer than the delay).
    const run = (killAfterMs: number | null) => new Promise<{ killed: boolean; events: number }>((resolve, reject) => {
      const child = spawn(process.execPath, [script, dir, String(N), '30000', '2', JSON.stringify(TEST_GENERATOR)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      let timer: NodeJS.Timeout | null = null;
      child.stdout.on('data', (d) => {
        out += d;
        if (killAfterMs !== null && timer === null && /"events":[1-9]/.test(out)) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      });
      child.stderr.on('data', (d) => (err += d));
      child.on('exit', (code, signal) => {
        if (timer) clearTimeout(timer);
        const lines = out.trim().split('\n').filter((l) => l.startsWith('{'));
        const events = lines.length ? JSON.parse(lines[lines.length - 1]).events : 0;
        if (signal === 'SIGKILL') resolve({ killed: true, events });
        else if (code === 0 && out.includes('DONE')) resolve({ killed: false, events });
        else reject(new Error(`child exited ${code} ${signal}: ${err}`));
      });
    });
    let killedMidway = 0;
    for (const at of [0, 500, 200]) {
      const r = await run(at);
      if (r.killed && r.events > 0) killedMidway++;
    }
    expect(killedMidway).toBeGreaterThan(0);
    const last = await run(null);
    expect(last.killed).toBe(false);
    await expectReferenceNumbers(dir);
  }, 180_000);
});
