import { describe, expect, it } from 'vitest';
import { OPEN_GROUPS, encodeOpenGroup, openGroupEntries, openGroupOf, openSessionsInGroup, type StoredSession } from '../../engine/operators/pipelines/sessions.js';
import { InternTable } from '../../engine/workers/intern.js';

/**
 * Open sessions are stored in groups of users (engine/operators/pipelines/sessions.ts): the group
 * of a user id is part of the stored keys, and the binary form is what the query layer and a
 * restore read back. The engine-level behaviour (every open session equal to the reference model,
 * across restarts and worker counts) is in pipelines-reference, restart-and-crash and
 * stored-format-upgrade; this file pins the format.
 */
const session = (over: Partial<StoredSession> = {}): StoredSession => ({
  start: 1_767_225_600_000, end: 1_767_225_900_123, events: 7, pageViews: 3, transactions: 1, usd: 12.34, platforms: ['WEB'], stages: 0b10101, ...over,
});

describe('open-session groups', () => {
  it('round-trips users, several sessions, platforms and non-ASCII ids', () => {
    const entries: Array<[string, StoredSession[]]> = [
      ['user-1', [session()]],
      ['usér-ü-日本', [session({ platforms: ['MOBILE', 'WEB'], usd: 0.1 + 0.2 }), session({ start: 5, end: 6, events: 70_000, pageViews: 0, transactions: 0, usd: 0, platforms: [], stages: 0 })]],
      ['', [session({ platforms: ['x'.repeat(300)] })]],
    ];
    const back = openGroupEntries(encodeOpenGroup(entries));
    expect(back).toEqual(entries);
    expect(openSessionsInGroup(encodeOpenGroup(entries), 'usér-ü-日本')).toEqual(entries[1][1]);
    expect(openSessionsInGroup(encodeOpenGroup(entries), 'user-2')).toEqual([]);
    expect(openGroupEntries(undefined)).toEqual([]);
  });

  it('refuses a group in a format it does not know, rather than misreading it', () => {
    const b = encodeOpenGroup([['user-1', [session()]]]);
    b[0] = 2;
    expect(() => openGroupEntries(b)).toThrow(/unknown format \(version 2\)/);
  });

  it('assigns groups from the id alone: stable values, spread evenly', () => {
    // Stored keys depend on these: a change of the hash would hide every stored open session.
    expect([openGroupOf('user-1'), openGroupOf('user-2'), openGroupOf('')]).toEqual([
      fnv('user-1') % OPEN_GROUPS, fnv('user-2') % OPEN_GROUPS, 0x811c9dc5 % OPEN_GROUPS,
    ]);
    const counts = new Array<number>(OPEN_GROUPS).fill(0);
    for (let i = 0; i < OPEN_GROUPS * 50; i++) counts[openGroupOf(`user-${i}`)]++;
    expect(Math.min(...counts)).toBeGreaterThan(20);
    expect(Math.max(...counts)).toBeLessThan(90);
  });

  it('InternTable.copyBytes gives the UTF-8 bytes of a value, with or without kept text', () => {
    for (const keepText of [false, true]) {
      const t = new InternTable(4, keepText);
      const ids = ['a', 'usér-ü', '日本語のユーザー', 'user-123456789'].map((s) => t.internString(s));
      const target = new Uint8Array(64);
      for (const id of ids) {
        expect(t.maxBytes(id)).toBeGreaterThanOrEqual(Buffer.byteLength(t.value(id)));
        const n = t.copyBytes(id, target, 3);
        expect(Buffer.from(target.subarray(3, 3 + n)).toString('utf8')).toBe(t.value(id));
      }
    }
  });
});

/** FNV-1a over UTF-16 code units, written out independently of the engine's. */
function fnv(s: string): number {
  let h = 2166136261;
  for (const c of s) {
    h ^= c.charCodeAt(0);
    h = Number((BigInt(h) * 16777619n) & 0xffffffffn);
  }
  return h;
}
