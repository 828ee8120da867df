import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { parseEngineConfig } from '../../engine/index.js';
import { ShardStore, type StoreKey } from '../../engine/state/shard-store.js';
import { OPEN_GROUPS, OpenSessionsReader, encodeOpenGroup, openGroupEntries, openGroupOf, openSessionsInGroup, openSessionsOf, type StoredSession } from '../../engine/operators/pipelines/sessions.js';
import { InternTable } from '../../engine/workers/intern.js';
import { TEST_GENERATOR, continueToModel, generateEvents, referenceFor, startEmbedded, tempDir } from './harness.js';

/**
 * Open sessions are stored per group of users (engine/operators/pipelines/sessions.ts): a group
 * written whole as one binary value, and a delta of the same format holding the users changed since
 * (an empty entry: none open), which wins over the group's entry; a user's own key (older stores,
 * users of other partitions' records) wins over both. The group of a user id is part of the stored
 * keys. This file pins the format, and runs an engine over a store where the forms overlap.
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
    expect(openSessionsInGroup(encodeOpenGroup(entries), 'user-2')).toBeUndefined();
    expect(openSessionsInGroup(encodeOpenGroup([['user-2', []]]), 'user-2')).toEqual([]);
    expect(openGroupEntries(undefined)).toEqual([]);
  });

  it('reads the newest stored form of each user: own key, then delta, then group', () => {
    const r = new OpenSessionsReader();
    // In key order, as a scan returns them: 'open' < 'openDelta' < 'openGroup'.
    r.add(['open', 'a'], [[1, 2, 3, 1, 0, 0, 1, 'WEB']]);
    r.add(['open', 'e'], []);
    r.add(['openDelta', 7], encodeOpenGroup([['a', [session({ events: 99 })]], ['b', [session({ events: 5 })]], ['c', []]]));
    r.add(['openGroup', 7], encodeOpenGroup([['a', [session()]], ['b', [session()]], ['c', [session()]], ['d', [session({ events: 4 })]], ['e', [session()]]]));
    r.add(['closed', 'a', 1], session());
    expect([...r.users.keys()].sort()).toEqual(['a', 'b', 'd']);
    expect(r.users.get('a')!.map((x) => x.events)).toEqual([3]);
    expect(r.users.get('b')!.map((x) => x.events)).toEqual([5]);
    expect(r.users.get('d')!.map((x) => x.events)).toEqual([4]);
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

const N = 60_000;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** Open-session values of the stores: groups, deltas, their empty entries, own keys. */
function storedForms(dataDir: string, shards: number): { groups: number; deltas: number; emptyInDeltas: number; own: number } {
  const n = { groups: 0, deltas: 0, emptyInDeltas: 0, own: 0 };
  for (let shard = 0; shard < shards; shard++) {
    const store = ShardStore.open(dataDir, shard, parseEngineConfig({}).mapSizeBytes);
    for (const { key, value } of store.state.getRange({})) {
      const k = key as StoreKey;
      if (k[1] !== 'sessions') continue;
      if (k[2] === 'openGroup') n.groups++;
      else if (k[2] === 'openDelta') {
        n.deltas++;
        n.emptyInDeltas += openGroupEntries(value).filter(([, sessions]) => sessions.length === 0).length;
      } else if (k[2] === 'open') n.own++;
    }
    void store.close();
  }
  return n;
}

/**
 * Moves the delta entries of some users of one shard to own keys, as an older build would have
 * held them, and leaves wrong numbers in their delta entries: the own key must win.
 */
function ownKeysOverStaleDeltas(dataDir: string, shard: number): number {
  const store = ShardStore.open(dataDir, shard, parseEngineConfig({}).mapSizeBytes);
  const rewrites: Array<[StoreKey, unknown]> = [];
  for (const { key, value } of store.state.getRange({})) {
    const k = key as StoreKey;
    if (k[1] !== 'sessions' || k[2] !== 'openDelta') continue;
    const entries = openGroupEntries(value);
    const moved = entries.filter(([, sessions]) => sessions.length > 0).slice(0, 2);
    for (const [userId, sessions] of moved) {
      rewrites.push([[k[0], 'sessions', 'open', userId], sessions.map((x) => ({ ...x }))]);
      for (const x of sessions) x.events += 1000;
    }
    if (moved.length > 0) rewrites.push([k, encodeOpenGroup(entries)]);
  }
  store.env.transactionSync(() => {
    for (const [k, v] of rewrites) store.state.putSync(k, v);
  });
  void store.close();
  return rewrites.length;
}

describe('open sessions stored in every form', () => {
  it('groups written whole, then deltas over them, then own keys over the deltas, then groups again: every session equals the reference model', async () => {
    const model = referenceFor(generateEvents(TEST_GENERATOR, N));
    const dir = tempDir('open-groups');
    dirs.push(dir);
    const base = { partitions: 8, shards: 4, workers: 2 };
    // Each run takes the whole stream from its first event (the engine skips what it committed) and
    // is stopped once about `upTo` events of the stream are processed, this run's and those committed before it.
    // (A run's own count alone made the second run wait for more events than were left after a
    // first run that went past its mark: it then ran to the stream's end.)
    let committed = 0;
    const runTo = async (upTo: number, openGroupWholeShare: number) => {
      const engine = await startEmbedded(dir, TEST_GENERATOR, N, { rate: 10_000, eventsPerMessage: 5 }, { ...base, openGroupWholeShare });
      const deadline = Date.now() + 60_000;
      while (committed + engine.metrics.events < upTo && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await engine.stop();
      committed = engine.committedTotals().events;
      return committed;
    };
    // Every changed group whole: groups only.
    const first = await runTo(12_000, 0);
    expect(first).toBeGreaterThanOrEqual(12_000);
    expect(first).toBeLessThan(30_000);
    const afterFirst = storedForms(dir, 4);
    expect(afterFirst.groups).toBeGreaterThan(100);
    expect(afterFirst.deltas + afterFirst.own).toBe(0);
    // Never whole: changed users in their groups' deltas, over the groups' entries (empty ones for sessions that closed).
    // (By event 45,000 some sessions open at event 12,000 have closed: 37 minutes of event time.)
    const second = await runTo(45_000, 2);
    expect(second).toBeGreaterThanOrEqual(45_000);
    expect(second).toBeLessThan(N);
    const afterSecond = storedForms(dir, 4);
    expect(afterSecond.groups).toBe(afterFirst.groups);
    expect(afterSecond.deltas).toBeGreaterThan(100);
    expect(afterSecond.emptyInDeltas).toBeGreaterThan(0);
    expect(afterSecond.own).toBe(0);
    expect(ownKeysOverStaleDeltas(dir, 1)).toBeGreaterThan(10);
    const ownKeys = storedForms(dir, 4).own;
    expect(ownKeys).toBeGreaterThan(10);
    // Whole again to the end: the groups rewritten delete their deltas and their users' own keys.
    await continueToModel(dir, N, { ...base, openGroupWholeShare: 0 }, model);
    const last = storedForms(dir, 4);
    expect(last.deltas).toBeLessThan(afterSecond.deltas);
    expect(last.own).toBeLessThan(ownKeys);
  }, 120_000);
});
