import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { ThreadCpuLog, threadCpu } from '../../bench/cpu.js';

describe('ThreadCpuLog (bench:engine worker CPU with replaced threads)', () => {
  it.runIf(process.platform === 'linux')('keeps the CPU of a thread that ended after a sample', async () => {
    const log = new ThreadCpuLog();
    log.start();
    const before = new Set(threadCpu().keys());
    // A thread that burns 600 ms of CPU, then ends, as a replaced worker thread does.
    const w = new Worker('const end = Date.now() + 600; let x = 0; while (Date.now() < end) x++;', { eval: true });
    const sampler = setInterval(() => log.sample(), 20);
    await new Promise((resolve) => w.once('exit', resolve));
    clearInterval(sampler);
    const alive = new Set(threadCpu().keys());
    const ended = log.since().filter((t) => !before.has(t.tid) && !alive.has(t.tid));
    // Its CPU is counted although the thread is gone (a plain before/after reading loses it).
    expect(ended.reduce((s, t) => s + t.seconds, 0)).toBeGreaterThanOrEqual(0.2);
  });
});
