/**
 * CPU time per thread and per process, from Linux /proc (empty or null elsewhere): where the
 * machine's cores went during a bench's measured part.
 */
import fs from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

function statSeconds(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND; // utime + stime
}

/** CPU seconds and name of each thread of a process (this one by default), by thread id. */
export function threadCpu(pid: number | 'self' = 'self'): Map<string, { name: string; seconds: number }> {
  const out = new Map<string, { name: string; seconds: number }>();
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      out.set(tid, { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), seconds: statSeconds(stat) });
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
export function threadCpuSince(before: Map<string, { name: string; seconds: number }>, after = threadCpu()): Array<{ tid: string; name: string; seconds: number }> {
  return [...after].map(([tid, t]) => ({ tid, name: t.name, seconds: t.seconds - (before.get(tid)?.seconds ?? 0) }));
}
