import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ShardStore, StoreError, shardPath } from '../../engine/state/shard-store.js';
import { FileReserve } from '../../engine/state/file-reserve.js';
import { fillDisk } from '../fill-disk.js';

/**
 * A full disk under MDB_WRITEMAP (--store-writemap): LMDB writes through a memory map of a
 * sparse file, and a page the filesystem cannot back kills the process with SIGBUS. The store holds
 * the file's blocks ahead of LMDB's writes (state/file-reserve.ts), so a commit on a full disk must
 * fail with a retriable ERR_STORE_FULL, commit nothing, and succeed again once there is space. Were
 * the blocks not held, this test's own process would die (SIGBUS) at the first commit past them.
 * Needs root (mount -t tmpfs), as reliability scenario 7.
 */
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'writemap-full-'));
beforeAll(() => execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${32 * 1024 * 1024}`, 'tmpfs', root]));
afterAll(() => {
  try {
    execFileSync('umount', [root], { stdio: 'ignore' });
  } catch {
    // not mounted
  }
  fs.rmSync(root, { recursive: true, force: true });
});


const value = (i: number) => Buffer.alloc(1500, i & 0xff);
/** One commit of `n` new keys from `from` on. */
function commitKeys(store: ShardStore, from: number, n: number): void {
  store.commitEach((write) => {
    for (let i = from; i < from + n; i++) write([0, 'test', i], value(i));
  }, new Map([[0, { offsets: { 1: from + n - 1 }, streamTime: from + n }]]));
}

describe('MDB_WRITEMAP on a full disk', () => {
  it('fails the commit with a retriable ERR_STORE_FULL instead of SIGBUS, and commits again once there is space', () => {
    // A map far larger than the disk: LMDB sizes the file to it (sparse).
    const store = ShardStore.open(root, 0, 256 * 1024 * 1024, false, true);
    const file = path.join(shardPath(root, 0), 'data.mdb');
    try {
      expect(store.writemap).toBe(true);
      expect(fs.statSync(file).size).toBeGreaterThanOrEqual(256 * 1024 * 1024);
      let next = 0;
      for (let c = 0; c < 5; c++, next += 500) commitKeys(store, next, 500);
      // The blocks are held: allocated on the filesystem beyond what LMDB has used so far.
      expect(store.reservedBytes).toBeGreaterThan(0);
      expect(fs.statSync(file).blocks * 512).toBeGreaterThanOrEqual(store.reservedBytes);

      const ballast = path.join(root, 'ballast');
      fillDisk(ballast);
      let failure: unknown = null;
      let committedWhileFull = 0;
      for (let c = 0; c < 200 && failure === null; c++) {
        try {
          commitKeys(store, next, 500);
          next += 500;
          committedWhileFull++;
        } catch (e) {
          failure = e;
        }
      }
      // The held blocks last a few commits; then a commit fails, cleanly.
      expect(failure).toBeInstanceOf(StoreError);
      expect((failure as StoreError).code).toBe('ERR_STORE_FULL');
      expect((failure as StoreError).retriable).toBe(true);
      expect(committedWhileFull).toBeLessThan(200);
      // Nothing of the failed commit is visible; every earlier one is.
      expect(store.readMeta(0)?.offsets[1]).toBe(next - 1);
      expect(store.state.get([0, 'test', next])).toBeUndefined();
      for (const i of [0, 1234, next - 1]) expect(store.state.get([0, 'test', i])).toEqual(value(i));

      // A transaction that outgrows the held blocks fails during its writes (the transaction
      // aborts there), not only before it: one large commit, counted write by write.
      let writesBeforeFailure = 0;
      const big = (() => {
        try {
          store.commitEach((write) => {
            for (let i = 0; i < 20_000; i++, writesBeforeFailure++) write([0, 'big', i], value(i));
          }, new Map([[0, { offsets: { 1: next - 1 }, streamTime: next }]]));
          return null;
        } catch (e) {
          return e;
        }
      })();
      expect((big as StoreError).code).toBe('ERR_STORE_FULL');
      expect(writesBeforeFailure).toBeGreaterThan(0);
      expect(writesBeforeFailure).toBeLessThan(20_000);
      expect(store.state.get([0, 'big', 0])).toBeUndefined();

      fs.rmSync(ballast);
      commitKeys(store, next, 500);
      next += 500;
      expect(store.readMeta(0)?.offsets[1]).toBe(next - 1);
      expect(store.state.get([0, 'test', next - 1])).toEqual(value(next - 1));
    } finally {
      void store.close();
    }
  }, 60_000);

  it('FileReserve holds blocks as writes are counted, and refuses with ENOSPC past the free space', () => {
    const dir = path.join(root, 'reserve');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'data');
    fs.writeFileSync(file, '');
    let lastPage = 1;
    const r = new FileReserve(file, 4096, () => lastPage);
    r.begin();
    const held = () => fs.statSync(file).blocks * 512;
    expect(held()).toBeGreaterThanOrEqual(FileReserve.MIN_BYTES);
    expect(fs.statSync(file).size).toBe(0); // held beyond the end, the file's size untouched
    let writes = 0;
    let failure: unknown = null;
    try {
      for (; writes < 100_000; writes++) r.write(Buffer.alloc(4096));
    } catch (e) {
      failure = e;
    }
    expect((failure as Error).message).toMatch(/ENOSPC/);
    expect(writes).toBeGreaterThan(100); // what was held before the disk ran out
    expect(r.reserved).toBeLessThanOrEqual(held());
    lastPage = 100;
    r.end();
    fs.rmSync(file);
  });
});
