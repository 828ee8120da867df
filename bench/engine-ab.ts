/**
 * bench:engine:ab — this build against a base commit, alternated in the same minutes: on a shared
 * machine the same build moves by 15-40 % between runs, so a figure only means something beside a
 * baseline measured in between. The base is checked out into a temporary git worktree and built
 * there; both run this build's bench driver (dist/bench/engine.js, copied over the base's) over
 * their own engine, on the same input bytes (--input-cache). Pairs run in the order ABBA, so a
 * machine that slows down or speeds up during the run does not favour one side.
 *
 *   npm run bench:engine:ab -- --base <commit> [--pairs 4] [--workers 2] [--events 2500000] [--warmup 300000]
 *     [--users N --concurrent-sessions N --zipf S]  (the input shape, as bench:engine)
 *
 * Last line: {"bench":"engine-ab","base":"<sha>","head":"<sha>","pairs":N,"eventsPerSec":{...},"eventsPerWorkerCpuSec":{...},"cpuUsPerEvent":{...}}
 * with the median of each side and the median of the per-pair changes.
 */
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const { values: a } = parseArgs({
  options: {
    base: { type: 'string' },
    pairs: { type: 'string', default: '4' },
    workers: { type: 'string', default: '2' },
    events: { type: 'string', default: '2500000' },
    warmup: { type: 'string', default: '300000' },
    'input-cache': { type: 'string', default: '.cache/bench-input' },
    // The input's shape, passed to bench:engine when given (its defaults otherwise): e.g. the run where a million users pass through.
    users: { type: 'string' },
    'concurrent-sessions': { type: 'string' },
    zipf: { type: 'string' },
  },
});
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
if (!a.base) throw new Error('--base is required: the commit (or branch, tag) to compare this build with');
const pairs = Number(a.pairs);
if (!Number.isInteger(pairs) || pairs < 1) throw new Error('--pairs must be a positive integer');

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
}
const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
const baseSha = git('rev-parse', a.base);
const headSha = git('rev-parse', 'HEAD');
const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';

const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-ab-'));
log(`base ${baseSha.slice(0, 10)} into ${baseDir}; head ${headSha.slice(0, 10)}${dirty ? ' (with uncommitted changes)' : ''}`);
git('worktree', 'add', '--detach', '--force', baseDir, baseSha);
try {
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(baseDir, 'node_modules'));
  log('building the base ...');
  execFileSync(path.join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: baseDir, stdio: 'inherit' });
  // The same driver on both sides (its input cache and summary fields), over each side's engine:
  // this build's bench modules (the driver imports some of them, which an older base may not have).
  for (const f of fs.readdirSync(path.join(root, 'dist', 'bench'))) {
    if (f.endsWith('.js')) fs.copyFileSync(path.join(root, 'dist', 'bench', f), path.join(baseDir, 'dist', 'bench', f));
  }
  const cache = path.resolve(root, a['input-cache']);
  const args = ['--events', a.events, '--warmup', a.warmup, '--workers', a.workers, '--input-cache', cache];
  for (const k of ['users', 'concurrent-sessions', 'zipf'] as const) if (a[k] !== undefined) args.push(`--${k}`, a[k]!);

  type Run = { eventsPerSec: number; eventsPerWorkerCpuSec: number; cpuUsPerEvent: number; commitMsSum: number; workerHeapUsedMB: number; deadLetters: number };
  const run = (dir: string): Run => {
    const out = execFileSync(process.execPath, [path.join(dir, 'dist', 'bench', 'engine.js'), ...args], {
      cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, TMPDIR: process.env.TMPDIR ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir()) },
      maxBuffer: 1 << 24,
    });
    const r = JSON.parse(out.trim().split('\n').pop()!);
    if (r.deadLetters) throw new Error(`${dir} dead-lettered ${r.deadLetters} events of the shared input: the two builds do not read the same wire format`);
    return { eventsPerSec: r.eventsPerSec, eventsPerWorkerCpuSec: r.eventsPerWorkerCpuSec, cpuUsPerEvent: Math.round((r.cpuSeconds * 1e8) / r.events) / 100, commitMsSum: r.commitMsSum, workerHeapUsedMB: r.workerHeapUsedMB, deadLetters: r.deadLetters };
  };
  // Writes the input cache before the first timed run.
  log('preparing the input ...');
  run(root);
  const base: Run[] = [];
  const head: Run[] = [];
  for (let i = 0; i < pairs; i++) {
    const order = i % 2 === 0 ? (['base', 'head'] as const) : (['head', 'base'] as const);
    for (const side of order) {
      const r = run(side === 'base' ? baseDir : root);
      (side === 'base' ? base : head).push(r);
      log(`pair ${i + 1} ${side}: ${r.eventsPerSec} events/s, ${r.eventsPerWorkerCpuSec} per worker CPU-second, ${r.cpuUsPerEvent} us CPU per event, commits ${r.commitMsSum} ms; load ${os.loadavg()[0].toFixed(2)}`);
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((x, y) => x - y);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const round = (x: number) => Math.round(x * 100) / 100;
  const compare = (k: keyof Run) => ({
    base: round(median(base.map((r) => r[k]))),
    head: round(median(head.map((r) => r[k]))),
    baseRuns: base.map((r) => r[k]),
    headRuns: head.map((r) => r[k]),
    /** Median over pairs of head / base - 1, in percent. */
    changePct: Math.round(median(base.map((b, i) => head[i][k] / b[k] - 1)) * 1000) / 10,
  });
  console.log(JSON.stringify({
    bench: 'engine-ab', base: baseSha, head: headSha, headDirty: dirty, pairs, workers: Number(a.workers), events: Number(a.events),
    eventsPerSec: compare('eventsPerSec'), eventsPerWorkerCpuSec: compare('eventsPerWorkerCpuSec'), cpuUsPerEvent: compare('cpuUsPerEvent'),
    commitMsSum: compare('commitMsSum'), workerHeapUsedMB: compare('workerHeapUsedMB'),
    node: process.version, cores: os.availableParallelism(),
  }));
} finally {
  git('worktree', 'remove', '--force', baseDir);
}
