import { describe, expect, it } from 'vitest';
import { UserRecords } from '../../engine/workers/symbols.js';

describe('per-user records', () => {
  it('keeps integer and float fields of a user apart, across growth', () => {
    const r = new UserRecords();
    const tag = r.field('tag', -1);
    const count = r.field('count', 0);
    const start = r.float64Field('start');
    const usd = r.float64Field('usd');
    const far = 1_000_000; // beyond the initial size: the records grow
    for (const u of [0, 1, 65_535, far]) {
      tag.set(u, u % 7);
      count.set(u, u + 1);
      start.set(u, 1_767_225_600_123 + u); // an epoch-ms timestamp, above 2^32
      usd.set(u, u * 0.01);
    }
    for (const u of [0, 1, 65_535, far]) {
      expect([tag.get(u), count.get(u), start.get(u), usd.get(u)]).toEqual([u % 7, u + 1, 1_767_225_600_123 + u, u * 0.01]);
    }
    // Untouched users read the fills; a user past the end reads them without growing.
    expect([tag.get(2), count.get(2), start.get(2), usd.get(2)]).toEqual([-1, 0, 0, 0]);
    expect([tag.get(far + 1), start.get(50_000_000)]).toEqual([-1, 0]);
  });

  it('reset forgets every field but those kept', () => {
    const r = new UserRecords();
    const hint = r.field('hint', -1);
    const owner = r.field('owner', 0, true);
    const seen = r.float64Field('seen');
    const end = r.float64Field('end', true);
    hint.set(5, 3);
    owner.set(5, 9);
    seen.set(5, 1.5);
    end.set(5, 2.5);
    r.reset();
    expect([hint.get(5), owner.get(5), seen.get(5), end.get(5)]).toEqual([-1, 9, 0, 2.5]);
  });

  it('refuses a field beyond the record, counting a float as two slots', () => {
    const r = new UserRecords();
    for (let i = 0; i < UserRecords.STRIDE - 2; i++) r.field(`f${i}`, 0);
    r.float64Field('last');
    expect(() => r.field('one more', 0)).toThrow(/too many per-user columns/);
    expect(() => r.float64Field('one more')).toThrow(/too many per-user columns/);
  });
});
