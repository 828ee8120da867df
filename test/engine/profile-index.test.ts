import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Lookup, ProfileIndexReader, ProfileIndexWriter, type IndexedProfile } from '../../engine/state/profile-index.js';
import { ReferenceStore } from '../../engine/state/reference-store.js';
import type { UserProfile } from '../../engine/codec/types.js';

const profile = (userId: string, tier = 'GOLD', region = 'EU-W'): UserProfile => ({ userId, tier, segment: 'RETAIL', country: 'DE', region, signupTime: 0 });

/** A reader whose symbols are the dimension strings themselves (index in `names`). */
function reader(index: ProfileIndexWriter): { get(userId: string): Lookup | string[] } {
  const names: string[] = [];
  const r = new ProfileIndexReader(index.buffers, (s) => names.push(s) - 1);
  const out: IndexedProfile = { tier: 0, segment: 0, country: 0, region: 0 };
  return {
    get(userId) {
      const found = r.lookup(userId, out);
      return found === Lookup.Found ? [names[out.tier], names[out.segment], names[out.country], names[out.region]] : found;
    },
  };
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('profile index', () => {
  it('finds the profiles put into it, byte for byte, and says Unknown for any other user', () => {
    const index = ProfileIndexWriter.create(100);
    const ids = ['u-1', 'u-2', 'user-ü', 'u-1x', '', 'x'.repeat(300)];
    ids.forEach((id, i) => expect(index.put(profile(id, `T${i}`))).toBe(true));
    const { get } = reader(index);
    ids.forEach((id, i) => expect(get(id)).toEqual([`T${i}`, 'RETAIL', 'DE', 'EU-W']));
    expect(get('u-3')).toBe(Lookup.Unknown);
    expect(get('u-')).toBe(Lookup.Unknown);
    expect(index.size).toBe(ids.length);
  });

  it('an update replaces the profile in place (no new entry)', () => {
    const index = ProfileIndexWriter.create(16);
    index.put(profile('u-1', 'FREE'));
    const { get } = reader(index);
    expect(get('u-1')).toEqual(['FREE', 'RETAIL', 'DE', 'EU-W']);
    index.put(profile('u-1', 'PLATINUM', 'EU-N'));
    expect(get('u-1')).toEqual(['PLATINUM', 'RETAIL', 'DE', 'EU-N']);
    expect(index.size).toBe(1);
  });

  it('refuses a new user past half its slots; the grown copy holds everything, the retired one sends readers to LMDB', () => {
    const small = ProfileIndexWriter.create(16);
    let n = 0;
    while (small.put(profile(`u-${n}`, `T${n % 7}`))) n++;
    expect(n).toBe(small.capacity);
    const grown = small.grown();
    small.retire();
    expect(grown.capacity).toBe(small.capacity * 2);
    expect(grown.put(profile(`u-${n}`, 'NEW'))).toBe(true);
    const oldView = reader(small);
    const newView = reader(grown);
    for (let i = 0; i < n; i++) expect(newView.get(`u-${i}`)).toEqual([`T${i % 7}`, 'RETAIL', 'DE', 'EU-W']);
    expect(newView.get(`u-${n}`)).toEqual(['NEW', 'RETAIL', 'DE', 'EU-W']);
    expect(newView.get('nobody')).toBe(Lookup.Unknown);
    expect(oldView.get('u-0')).toEqual(['T0', 'RETAIL', 'DE', 'EU-W']);
    expect(oldView.get(`u-${n}`)).toBe(Lookup.NotIndexed);
  });

  it('with no room for another dimension value it is full: users it lacks are NotIndexed, not Unknown', () => {
    const index = ProfileIndexWriter.create(1 << 17);
    let i = 0;
    while (!index.full) index.put(profile(`u-${i}`, 'GOLD', `R${i++}`));
    const { get } = reader(index);
    expect(get('u-0')).toEqual(['GOLD', 'RETAIL', 'DE', 'R0']);
    expect(get(`u-${i - 1}`)).toBe(Lookup.NotIndexed);
    expect(get('nobody')).toBe(Lookup.NotIndexed);
  });

  it('a reader in another thread never sees half an update (seqlock)', async () => {
    const index = ProfileIndexWriter.create(16);
    index.put(profile('u-1', 'A', 'A'));
    const stop = new Int32Array(new SharedArrayBuffer(4));
    // The reader thread imports the build (worker threads do not go through vitest's loader).
    const built = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../dist/engine/state/profile-index.js');
    expect(fs.existsSync(built), `${built} (run npm run build)`).toBe(true);
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       import(workerData.built).then(({ ProfileIndexReader, Lookup }) => {
         const names = [];
         const r = new ProfileIndexReader(workerData.buffers, (s) => names.push(s) - 1);
         const out = { tier: 0, segment: 0, country: 0, region: 0 };
         let reads = 0, torn = 0;
         while (Atomics.load(workerData.stop, 0) === 0) {
           if (r.lookup('u-1', out) !== Lookup.Found) { torn++; continue; }
           if (names[out.tier] !== names[out.region]) torn++;
           reads++;
         }
         parentPort.postMessage({ reads, torn });
       });`,
      { eval: true, workerData: { built, buffers: index.buffers, stop } },
    );
    const result = new Promise<{ reads: number; torn: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    const until = Date.now() + 500;
    let updates = 0;
    while (Date.now() < until) {
      for (let k = 0; k < 1000; k++) {
        const v = updates++ % 2 === 0 ? 'B' : 'A';
        index.put(profile('u-1', v, v));
      }
      await new Promise((r) => setImmediate(r));
    }
    Atomics.store(stop, 0, 1);
    const { reads, torn } = await result;
    await worker.terminate();
    expect(reads).toBeGreaterThan(1000);
    expect(torn).toBe(0);
  });

  it('ReferenceStore builds the index from LMDB, keeps it current, and grows it with a new version', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-profile-index-'));
    dirs.push(dir);
    const store = ReferenceStore.open(dir);
    try {
      await store.putProfiles([profile('before-1', 'FREE'), profile('before-2', 'SILVER')]);
      const first = store.profileIndex();
      const names: string[] = [];
      const out: IndexedProfile = { tier: 0, segment: 0, country: 0, region: 0 };
      const r1 = new ProfileIndexReader(first.buffers, (s) => names.push(s) - 1);
      expect(r1.lookup('before-2', out)).toBe(Lookup.Found);
      expect(names[out.tier]).toBe('SILVER');
      await store.putProfiles([profile('after-1', 'GOLD'), profile('before-1', 'PLATINUM')]);
      expect(r1.lookup('after-1', out)).toBe(Lookup.Found);
      expect(names[out.tier]).toBe('GOLD');
      expect(r1.lookup('before-1', out)).toBe(Lookup.Found);
      expect(names[out.tier]).toBe('PLATINUM');
      expect(store.profileIndex().version).toBe(first.version);
      // Past its room (65,536 users at least) it grows into new buffers: a new version.
      const many = Array.from({ length: 70_000 }, (_, i) => profile(`bulk-${i}`, 'FREE'));
      await store.putProfiles(many);
      const second = store.profileIndex();
      expect(second.version).toBeGreaterThan(first.version);
      const r2 = new ProfileIndexReader(second.buffers, (s) => names.push(s) - 1);
      for (const id of ['before-1', 'after-1', 'bulk-0', 'bulk-69999']) expect(r2.lookup(id, out)).toBe(Lookup.Found);
      // The old copy still answers for what it holds, sends readers to LMDB for the rest, and
      // still takes updates (a batch that started before its thread got the new copy reads it).
      expect(r1.lookup('bulk-69999', out)).toBe(Lookup.NotIndexed);
      await store.putProfiles([profile('before-1', 'FREE')]);
      expect(r1.lookup('before-1', out)).toBe(Lookup.Found);
      expect(names[out.tier]).toBe('FREE');
    } finally {
      await store.close();
    }
  });
});
