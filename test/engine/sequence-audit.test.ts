import { describe, expect, it } from 'vitest';
import { addSeq } from '../../engine/operators/pipelines/sequence-audit.js';

/** The plain model: the set of seqs, and its ranges computed by a sort. */
function ranges(set: Set<number>): number[] {
  const s = [...set].sort((a, b) => a - b);
  const out: number[] = [];
  for (const x of s) {
    if (out.length && out[out.length - 1] === x - 1) out[out.length - 1] = x;
    else out.push(x, x);
  }
  return out;
}

describe('sequence audit range list', () => {
  it('keeps one range for a key whose events arrive in order', () => {
    const r: number[] = [];
    for (let s = 1; s <= 10_000; s++) expect(addSeq(r, s)).toBe(true);
    expect(r).toEqual([1, 10_000]);
  });

  it('is exact for any arrival order and reports every duplicate', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let trial = 0; trial < 200; trial++) {
      const r: number[] = [];
      const set = new Set<number>();
      let dups = 0;
      let want = 0;
      const n = 1 + Math.floor(rnd() * 300);
      for (let i = 0; i < n; i++) {
        const seq = 1 + Math.floor(rnd() * 120);
        if (set.has(seq)) want++;
        set.add(seq);
        if (!addSeq(r, seq)) dups++;
      }
      expect(r).toEqual(ranges(set));
      expect(dups).toBe(want);
    }
  });

  it('joins two ranges when the hole between them fills', () => {
    const r = [1, 3, 5, 9];
    expect(addSeq(r, 4)).toBe(true);
    expect(r).toEqual([1, 9]);
    expect(addSeq(r, 4)).toBe(false);
    expect(addSeq(r, 11)).toBe(true);
    expect(addSeq(r, 0 + 10)).toBe(true);
    expect(r).toEqual([1, 11]);
  });
});
