/**
 * CPU time per thread and per process, from Linux /proc (empty or null elsewhere): where the
 * machine's cores went during a bench's measured part.
 */
import fs from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
}

function statSeconds(stat: string): number {
  const f = statFields(stat);
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND; // utime + stime
}

export interface ThreadCpu {
  name: string;
  seconds: number;
  /** The thread's nice value (the engine's worker threads run at --worker-nice). */
  nice: number;
}

/** CPU seconds, name and nice value of each thread of a process (this one by default), by thread id. */
export function threadCpu(pid: number | 'self' = 'self'): Map<string, ThreadCpu> {
  const out = new Map<string, ThreadCpu>();
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      out.set(tid, { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), seconds: statSeconds(stat), nice: Number(statFields(stat)[16]) });
    }
  } catch {
    // not Linux, or the process is gone: no per-thread figure
  }
  return out;
}

/** CPU seconds a process has used (all its threads), or null when it cannot be read. */
export function processCpuSeconds(pid: number): number | null {
  try {
    return statSeconds(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** Per thread, the CPU seconds used between two samples of `threadCpu` (threads that ended count as of the first). */
export function threadCpuSince(before: Map<string, ThreadCpu>, after = threadCpu()): Array<{ tid: string; name: string; seconds: number; nice: number }> {
  return [...after].map(([tid, t]) => ({ tid, name: t.name, seconds: t.seconds - (before.get(tid)?.seconds ?? 0), nice: t.nice }));
}

/**
 * Every thread seen by `sample` since `start`, with its last reading: a thread that ends between
 * samples (a worker thread replaced by the engine) keeps the CPU it had used at its last sample.
 */
export class ThreadCpuLog {
  private readonly seen = new Map<string, ThreadCpu>();
  private before = new Map<string, ThreadCpu>();

  start(): void {
    this.seen.clear();
    this.before = threadCpu();
    for (const [tid, t] of this.before) this.seen.set(tid, t);
  }

  sample(): void {
    for (const [tid, t] of threadCpu()) this.seen.set(tid, t);
  }

  /** Per thread seen since `start`, the CPU seconds it used since then (up to its last sample). */
  since(): Array<{ tid: string; name: string; seconds: number; nice: number }> {
    this.sample();
    return threadCpuSince(this.before, this.seen);
  }
}
