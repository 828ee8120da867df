import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/**
 * Lowers the calling thread's scheduling priority (Linux: niceness is per thread, and setpriority
 * takes a thread id). The main thread runs the Kafka client's callbacks, dispatch and the dashboard
 * server; when the shard workers keep every core busy, a REST request or a live tick must not wait
 * for a worker's time slice to end. Batch work (shards, the query thread's recomputations) yields
 * to it; the workers still get every cycle the main thread does not use, so throughput is the same.
 * Returns whether the priority was changed (never throws: it is an optimisation).
 */
export function lowerThreadPriority(nice: number): boolean {
  if (process.platform !== 'linux' || nice <= 0) return false;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return false;
    setPriority(tid, nice);
    return true;
  } catch {
    return false;
  }
}
