import fs from 'node:fs';

/** CPU and memory of processes from /proc (Linux): what `top` shows, sampled by the benches. */
const TICKS_PER_SEC = 100; // USER_HZ: 100 on every Linux the project runs on (getconf CLK_TCK)

export interface ProcSample {
  pid: number;
  /** user + system CPU seconds since the process started. */
  cpuSeconds: number;
  rssMB: number;
}

export function procSample(pid: number): ProcSample | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuSeconds = (Number(f[11]) + Number(f[12])) / TICKS_PER_SEC; // utime, stime
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+) kB/.exec(status);
    return { pid, cpuSeconds, rssMB: rss ? Math.round(Number(rss[1]) / 1024) : 0 };
  } catch {
    return null; // exited
  }
}

/** Direct children of `pid` (scans /proc: kernels without /proc/<pid>/task/<pid>/children). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

/** A process group to watch (e.g. loadgen and its forked threads): CPU % and RSS per interval. */
export class ProcWatch {
  private last = new Map<number, { t: number; cpu: number }>();
  peakRssMB = 0;
  cpuSecondsTotal = 0;
  private firstCpu = new Map<number, number>();

  constructor(readonly name: string, private readonly pids: () => number[]) {}

  /** CPU % (100 = one core) since the previous sample, and current RSS, summed over the pids. */
  sample(now = performance.now()): { cpuPct: number; rssMB: number } {
    let cpuPct = 0;
    let rssMB = 0;
    for (const pid of this.pids()) {
      const s = procSample(pid);
      if (!s) continue;
      rssMB += s.rssMB;
      const prev = this.last.get(pid);
      if (!this.firstCpu.has(pid)) this.firstCpu.set(pid, s.cpuSeconds);
      if (prev && now > prev.t) cpuPct += ((s.cpuSeconds - prev.cpu) / ((now - prev.t) / 1000)) * 100;
      this.last.set(pid, { t: now, cpu: s.cpuSeconds });
    }
    this.peakRssMB = Math.max(this.peakRssMB, rssMB);
    this.cpuSecondsTotal = [...this.last].reduce((a, [pid, v]) => a + v.cpu - (this.firstCpu.get(pid) ?? v.cpu), 0);
    return { cpuPct: Math.round(cpuPct), rssMB };
  }
}
