import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ShardStore, checkDataFile, shardPath } from '../../engine/state/shard-store.js';

// A corrupt shard store must give a clear error, not crash the process: LMDB maps a truncated
// file (SIGBUS) or a garbled header (SIGSEGV) without checking. Without the check in
// ShardStore.open this test's process dies.
describe('shard store check before opening', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  async function filled(): Promise<{ dir: string; file: string; size: number }> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-storecheck-'));
    dirs.push(dir);
    const s = ShardStore.open(dir, 0, 64 * 1024 * 1024);
    for (let k = 0; k < 10; k++) {
      const w: Array<[(string | number)[], unknown]> = [];
      for (let j = 0; j < 2000; j++) w.push([[0, 'x', k * 2000 + j], { v: 'y'.repeat(200) }]);
      s.commit(w, new Map([[0, { offsets: { 1: k }, streamTime: 0 }]]));
    }
    await s.close();
    const file = path.join(shardPath(dir, 0), 'data.mdb');
    return { dir, file, size: fs.statSync(file).size };
  }

  it('opens an intact store and an empty file (a new store)', async () => {
    const { dir, file } = await filled();
    const s = ShardStore.open(dir, 0, 64 * 1024 * 1024);
    expect(s.readMeta(0)?.offsets).toEqual({ 1: 9 });
    await s.close();
    fs.truncateSync(file, 0);
    const e = ShardStore.open(dir, 0, 64 * 1024 * 1024);
    expect(e.readMeta(0)).toBeUndefined();
    await e.close();
  });

  it('refuses a truncated data file with ERR_STORE_CORRUPT and the rebuild path', async () => {
    const { dir, file, size } = await filled();
    fs.truncateSync(file, Math.floor(size / 2));
    expect(() => ShardStore.open(dir, 0, 64 * 1024 * 1024)).toThrow(expect.objectContaining({ code: 'ERR_STORE_CORRUPT', message: expect.stringMatching(/cut short.*delete .*shard-0 and restart/) }));
  });

  // Regression (reliability scenario 7, once its stores held more data): cut after both tree roots
  // but before the last used page, the old check passed it and LMDB died of SIGBUS on a later read.
  it('refuses a file cut after its tree roots but before its last used page', async () => {
    const { dir, file } = await filled();
    // Free most pages, then commit small changes: the new roots reuse freed low pages while the
    // last used page stays high.
    const s = ShardStore.open(dir, 0, 64 * 1024 * 1024);
    const del: Array<[(string | number)[], unknown]> = [];
    for (let j = 0; j < 18_000; j++) del.push([[0, 'x', j], undefined]);
    s.commit(del, new Map([[0, { offsets: { 1: 10 }, streamTime: 0 }]]));
    for (let k = 0; k < 3; k++) s.commit([[[0, 'y', k], { v: k }]], new Map([[0, { offsets: { 1: 11 + k }, streamTime: 0 }]]));
    await s.close();
    const fd = fs.openSync(file, 'r');
    const meta = (at: number) => {
      const b = Buffer.alloc(160);
      fs.readSync(fd, b, 0, 160, at);
      return { psize: b.readUInt32LE(48), roots: [b.readBigUInt64LE(88), b.readBigUInt64LE(136)], lastPage: b.readBigUInt64LE(144), txnid: b.readBigUInt64LE(152) };
    };
    const m0 = meta(0);
    const m1 = meta(m0.psize);
    fs.closeSync(fd);
    const m = m1.txnid > m0.txnid ? m1 : m0;
    const keep = m.roots.filter((r) => r !== 0xffffffffffffffffn).reduce((a, r) => (r > a ? r : a), 1n) + 1n;
    expect(keep).toBeLessThanOrEqual(m.lastPage); // the layout allows the case (else this test would prove nothing)
    fs.truncateSync(file, Number(keep) * m0.psize);
    expect(() => ShardStore.open(dir, 0, 64 * 1024 * 1024)).toThrow(expect.objectContaining({ code: 'ERR_STORE_CORRUPT', message: expect.stringMatching(/last used page/) }));
  });

  it('refuses a garbled header with ERR_STORE_CORRUPT', async () => {
    const { dir, file } = await filled();
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(8192, 0x55), 0, 8192, 0);
    fs.closeSync(fd);
    expect(() => ShardStore.open(dir, 0, 64 * 1024 * 1024)).toThrow(expect.objectContaining({ code: 'ERR_STORE_CORRUPT', message: expect.stringMatching(/no valid LMDB header/) }));
  });

  // Regression: the query layer opens a store (lazily, in the main thread) while a worker commits to
  // it. LMDB writes a commit's pages, then its meta. The check read the file's size before the metas:
  // a commit between the two made an intact file look cut short, and the query skipped that shard.
  it('does not take a store that grows while it is checked for one cut short', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-storecheck-'));
    dirs.push(dir);
    const s = ShardStore.open(dir, 0, 64 * 1024 * 1024);
    const file = path.join(shardPath(dir, 0), 'data.mdb');
    s.commit([[[0, 'x', 0], { v: 'y' }]], new Map([[0, { offsets: { 1: 0 }, streamTime: 0 }]]));
    const sizeBefore = fs.statSync(file).size;
    const w: Array<[(string | number)[], unknown]> = [];
    for (let j = 0; j < 5000; j++) w.push([[0, 'x', j], { v: 'y'.repeat(200) }]);
    s.commit(w, new Map([[0, { offsets: { 1: 1 }, streamTime: 0 }]]));
    await s.close();
    expect(fs.statSync(file).size).toBeGreaterThan(sizeBefore * 4); // the commit grew the file
    // The file's size as seen before that commit, its metas as after it: the interleaving of a
    // check that read the size just before the commit and the metas just after.
    const realFstat = fs.fstatSync;
    let calls = 0;
    const spy = vi.spyOn(fs, 'fstatSync').mockImplementation(((fd: number) => {
      const st = realFstat(fd);
      return calls++ === 0 ? Object.assign(Object.create(Object.getPrototypeOf(st)), st, { size: sizeBefore }) : st;
    }) as typeof fs.fstatSync);
    try {
      expect(checkDataFile(file)).toBeNull();
      expect(calls).toBeGreaterThan(0); // the check went through the spy
    } finally {
      spy.mockRestore();
    }
  });
});
