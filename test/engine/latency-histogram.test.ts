import { describe, expect, it } from 'vitest';
import * as hdr from 'hdr-histogram-js';
import { newLatencyHistogram, recordLatency } from '../../engine/operators/pipelines/performance.js';

/** The library's own recordValue is the reference: the fast path must leave the same histogram. */
function both(values: Iterable<number>): [hdr.JsHistogram, hdr.JsHistogram] {
  const fast = newLatencyHistogram() as hdr.JsHistogram;
  const lib = newLatencyHistogram() as hdr.JsHistogram;
  for (const v of values) {
    recordLatency(fast, v);
    lib.recordValue(v);
  }
  return [fast, lib];
}

function expectSame(fast: hdr.JsHistogram, lib: hdr.JsHistogram): void {
  expect(fast.totalCount).toBe(lib.totalCount);
  expect(fast.minNonZeroValue).toBe(lib.minNonZeroValue);
  expect(fast.maxValue).toBe(lib.maxValue);
  for (let i = 0; i < lib.countsArrayLength; i++) if (fast.getCountAtIndex(i) !== lib.getCountAtIndex(i)) expect.fail(`count at index ${i}: ${fast.getCountAtIndex(i)} != ${lib.getCountAtIndex(i)}`);
  expect(hdr.encodeIntoCompressedBase64(fast)).toBe(hdr.encodeIntoCompressedBase64(lib));
}

describe('latency histogram fast record', () => {
  it('fills the same counts as recordValue for every value up to 200,000 ms', () => {
    const values = function* () {
      for (let v = 1; v <= 200_000; v++) yield v;
    };
    expectSame(...both(values()));
  });

  it('fills the same counts at every power-of-two boundary and the range ends', () => {
    const values: number[] = [1, 2, 3, 3_599_999, 3_600_000];
    for (let k = 1; 2 ** k <= 3_600_000; k++) values.push(2 ** k - 1, 2 ** k, 2 ** k + 1);
    const [fast, lib] = both(values);
    expectSame(fast, lib);
    // The boundaries land in distinct places: a wrong bucket would show as a different percentile.
    expect(fast.getValueAtPercentile(50)).toBe(lib.getValueAtPercentile(50));
  });

  it('fills the same counts for random values over the whole range, alone and together', () => {
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const values = Array.from({ length: 100_000 }, () => 1 + Math.floor(rand() * 3_600_000));
    expectSame(...both(values));
    for (const v of values.slice(0, 100)) expectSame(...both([v]));
  });
});
