/**
 * Event-time window arithmetic (Kafka Streams semantics).
 * Tumbling: start = floor(ts/size)*size. Hopping (size S, advance A): every start that is a
 * multiple of A with start <= ts < start + S. A record is late for a window when stream time
 * (max timestamp seen in its partition) has reached window end + grace.
 */
export function tumblingStart(ts: number, size: number): number {
  return Math.floor(ts / size) * size;
}

/** Starts of the hopping windows containing ts, oldest first, written into `out`; returns the count. */
export function hoppingStarts(ts: number, size: number, advance: number, out: number[]): number {
  const last = Math.floor(ts / advance) * advance;
  let n = 0;
  for (let s = last - size + advance; s <= last; s += advance) {
    if (s > ts - size) out[n++] = s;
  }
  return n;
}

export function isLate(windowEnd: number, graceMs: number, streamTime: number): boolean {
  return windowEnd + graceMs <= streamTime;
}

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
