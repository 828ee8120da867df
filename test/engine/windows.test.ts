import { describe, expect, it } from 'vitest';
import { hoppingStarts, isLate, tumblingStart } from '../../engine/operators/windows.js';

describe('window arithmetic at the boundaries', () => {
  it('tumbling start is floor(ts/size)*size; the end is exclusive', () => {
    expect(tumblingStart(59_999, 60_000)).toBe(0);
    expect(tumblingStart(60_000, 60_000)).toBe(60_000);
    expect(tumblingStart(0, 60_000)).toBe(0);
  });

  it('hopping windows of 5 min advancing 1 min hold ts when start <= ts < start + size', () => {
    const out: number[] = [];
    const M = 60_000;
    // exactly on a boundary: the window starting at ts is included, the one ending at ts is not
    const n = hoppingStarts(10 * M, 5 * M, M, out);
    expect(out.slice(0, n)).toEqual([6 * M, 7 * M, 8 * M, 9 * M, 10 * M]);
    const n2 = hoppingStarts(10 * M - 1, 5 * M, M, out);
    expect(out.slice(0, n2)).toEqual([5 * M, 6 * M, 7 * M, 8 * M, 9 * M]);
    for (let ts = 0; ts < 20 * M; ts += 7_919) {
      const k = hoppingStarts(ts, 5 * M, M, out);
      const brute: number[] = [];
      for (let s = -10 * M; s <= ts; s += M) if (s <= ts && ts < s + 5 * M) brute.push(s);
      expect(out.slice(0, k)).toEqual(brute);
    }
  });

  it('a record is late once stream time reaches window end + grace', () => {
    expect(isLate(60_000, 30_000, 89_999)).toBe(false);
    expect(isLate(60_000, 30_000, 90_000)).toBe(true);
  });
});
