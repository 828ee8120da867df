import { describe, expect, it } from 'vitest';
import { IntSet } from '../../engine/operators/int-set.js';
import { Rng } from '../../engine/source/random.js';

describe('IntSet (exact member sets of the unique-user counts)', () => {
  it('agrees with a JS Set over random adds and lookups, through many growths', () => {
    const rng = new Rng(11);
    const s = new IntSet();
    const ref = new Set<number>();
    for (let i = 0; i < 200_000; i++) {
      // Dense small ids (as interning hands out), and some large ones.
      const m = i % 10 === 0 ? rng.int(2 ** 31 - 1) : rng.int(50_000);
      expect(s.add(m)).toBe(!ref.has(m));
      ref.add(m);
      const q = rng.int(60_000);
      if (i % 7 === 0) expect(s.has(q)).toBe(ref.has(q));
    }
    expect(s.size).toBe(ref.size);
    for (const m of ref) expect(s.has(m)).toBe(true);
    expect(s.toArray().sort((a, b) => a - b)).toEqual([...ref].sort((a, b) => a - b));
    let n = 0;
    s.forEach(() => n++);
    expect(n).toBe(ref.size);
    expect(s.has(50_001)).toBe(ref.has(50_001));
  });

  it('holds 0 and the largest member, and refuses what it cannot hold', () => {
    const s = new IntSet();
    expect(s.has(0)).toBe(false);
    expect(s.add(0)).toBe(true);
    expect(s.add(0x7ffffffe)).toBe(true);
    expect(s.has(0)).toBe(true);
    expect(s.has(0x7ffffffe)).toBe(true);
    expect(s.size).toBe(2);
    for (const bad of [-1, 0x7fffffff, 1.5, NaN, 2 ** 32]) expect(() => s.add(bad)).toThrow(RangeError);
    expect(s.size).toBe(2);
  });
});
