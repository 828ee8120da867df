/**
 * Counts the distinct user ids in a benchmark's input, and how many first appear at or after a
 * given message, and the event time it spans (after the warm-up each costs a new intern entry, a profile lookup and a new
 * per-user record). Read from the bytes apart from the engine, in a thread of its own, so the
 * strings it keeps never weigh on the benchmark's heap figures.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { EventBatchReader } from '../engine/codec/index.js';

export interface UserCount {
  distinct: number;
  newInMeasured: number;
  /** Event time the input spans: from its first event to its latest timestamp (ms; late events, stamped early, do not stretch it). */
  eventTimeSpanMs: number;
}

export function countUsers(values: Uint8Array[], measuredFrom: number): Promise<UserCount> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: { values, measuredFrom } });
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`count-users thread exited with code ${code}`)));
  });
}

if (!isMainThread && parentPort) {
  const { values, measuredFrom } = workerData as { values: Uint8Array[]; measuredFrom: number };
  const seen = new Set<string>();
  const reader = new EventBatchReader();
  let newInMeasured = 0;
  let first = NaN;
  let last = -Infinity;
  values.forEach((v, at) => {
    reader.reset(v, 0, v.length);
    for (let i = 0; i < reader.count; i++) {
      if (reader.select(i) === 0) continue;
      const ts = reader.timestamp();
      if (Number.isNaN(first)) first = ts;
      if (ts > last) last = ts;
      if (!reader.userId()) continue;
      const u = reader.strValue();
      if (seen.has(u)) continue;
      seen.add(u);
      if (at >= measuredFrom) newInMeasured++;
    }
  });
  parentPort.postMessage({ distinct: seen.size, newInMeasured, eventTimeSpanMs: last > first ? last - first : 0 } satisfies UserCount);
}
