import { describe, expect, it } from 'vitest';
import { EventBatchReader, encodeEventBatch, hashString, type EventRecord } from '../../engine/codec/index.js';
import { InternTable } from '../../engine/workers/intern.js';

const event = (userId: string, eventId: string): EventRecord => ({
  source: 'USER_ACTION', eventId, userId, sessionId: '', timestamp: 1767225600000, action: 'LOGIN', platform: 'WEB', location: 'US',
});

/** Interns every event's user id through the position cache. */
function userIds(table: InternTable, r: EventBatchReader): number[] {
  const out: number[] = [];
  for (let i = 0; i < r.count; i++) {
    r.select(i);
    r.userId();
    out.push(table.internAt(r));
  }
  return out;
}

describe('intern table', () => {
  it('gives equal byte strings one id and different ones different ids', () => {
    const t = new InternTable(4);
    const r = new EventBatchReader();
    const bytes = encodeEventBatch([event('user-1', 'a'), event('user-2', 'b'), event('user-1', 'c'), event('user-ü', 'd')]);
    r.reset(bytes, 0, bytes.length);
    const ids = userIds(t, r);
    expect(ids[0]).toBe(ids[2]);
    expect(new Set(ids).size).toBe(3);
    expect(ids.map((id) => t.value(id))).toEqual(['user-1', 'user-2', 'user-1', 'user-ü']);
    // Grows past its initial capacity without losing an id.
    for (let i = 0; i < 5000; i++) t.internString(`u${i}`);
    expect(t.internString('user-2')).toBe(ids[1]);
  });

  it('regression: the position cache is per message, so a reused buffer with other bytes at the same position gets their id', () => {
    const t = new InternTable(4);
    const r = new EventBatchReader();
    const a = encodeEventBatch([event('user-1', 'x')]);
    const b = encodeEventBatch([event('user-2', 'x')]);
    expect(b.length).toBe(a.length); // same layout: the user id lies at the same position
    const buf = new Uint8Array(a.length);
    buf.set(a);
    r.reset(buf, 0, buf.length);
    const [first] = userIds(t, r);
    buf.set(b); // the same buffer object, other contents
    r.reset(buf, 0, buf.length);
    const [second] = userIds(t, r);
    expect(t.value(first)).toBe('user-1');
    expect(t.value(second)).toBe('user-2');
  });

  it('tells apart values whose hashes collide, of every length, across growth', () => {
    const t = new InternTable(4);
    const enc = new TextEncoder();
    // Every value gets the same hash: each lookup must compare the bytes.
    const values: string[] = [];
    for (let len = 1; len <= 40; len++) {
      values.push('x'.repeat(len), 'y'.repeat(len - 1) + 'x', 'x'.repeat(len - 1) + 'y');
    }
    const intern = (v: string) => {
      const b = enc.encode(v);
      return t.intern(b, 0, b.length, 7);
    };
    const ids = values.map(intern);
    // At length 1 the three patterns are 'x', 'x', 'y': the duplicate gets the same id.
    const distinct = new Set(values);
    expect(new Set(ids).size).toBe(distinct.size);
    for (let i = 0; i < values.length; i++) {
      expect(t.value(ids[i])).toBe(values[i]);
      expect(intern(values[i])).toBe(ids[i]);
    }
    // Same length and hash, bytes differing only in the last one.
    const a = intern('p'.repeat(16) + 'a');
    const b = intern('p'.repeat(16) + 'b');
    expect(a).not.toBe(b);
    expect([t.value(a), t.value(b)]).toEqual(['p'.repeat(16) + 'a', 'p'.repeat(16) + 'b']);
  });

  it('without keeping text (the user table), decodes the same value for every id, and refuses unknown ids', () => {
    const kept = new InternTable(4);
    const decoded = new InternTable(4, false);
    const enc = new TextEncoder();
    const values: string[] = [];
    for (let i = 0; i < 5000; i++) values.push(i % 3 === 0 ? `user-${i}` : i % 3 === 1 ? `Ünïcødé-${i}-😀` : 'x'.repeat(i % 40) + i);
    values.push('');
    for (const v of [...values, ...values]) {
      const b = enc.encode(v);
      expect(decoded.intern(b, 0, b.length, hashString(v))).toBe(kept.intern(b, 0, b.length, hashString(v)));
    }
    expect(decoded.size).toBe(values.length);
    for (let id = 0; id < values.length; id++) expect(decoded.value(id)).toBe(kept.value(id));
    // Repeated and alternating reads (the last decoded value is memoized).
    for (const id of [7, 7, 8, 7, 0, 0, values.length - 1, 8]) expect(decoded.value(id)).toBe(values[id]);
    expect(values.map((v) => decoded.value(decoded.internString(v)))).toEqual(values);
    expect(decoded.size).toBe(values.length);
    for (const t of [kept, decoded]) for (const bad of [-1, values.length, 1.5]) expect(() => t.value(bad)).toThrow(RangeError);
  });

  it('refuses bytes that are not UTF-8, with and without kept text, and interns nothing for them', () => {
    for (const keepText of [true, false]) {
      const t = new InternTable(4, keepText);
      for (const bad of [[0xff], [0x75, 0xc3], [0xed, 0xa0, 0x80], [0x61, 0x80, 0x62]]) {
        const b = Uint8Array.from(bad);
        expect(t.intern(b, 0, b.length, 1), `${keepText} ${bad}`).toBe(-1);
      }
      expect(t.size).toBe(0);
      const ok = new TextEncoder().encode('usér');
      expect(t.intern(ok, 0, ok.length, 1)).toBe(0);
    }
  });
});
