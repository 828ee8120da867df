import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isStoreFull } from '../../engine/state/shard-store.js';

// Regression: on a full tmpfs an LMDB commit failed with EIO, not ENOSPC; it counted as a write
// failure and the shard gave up (health DOWN) instead of waiting for space (reliability scenario 7,
// seen once under npm test). Needs root to mount a tmpfs, as scenario 7 does.
describe('a failed commit on a full disk is a full store, whatever errno LMDB reports', () => {
  it('EIO counts as full only while the filesystem has no space left', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-eio-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir]);
    try {
      const eio = 'Input/output error: Attempting to write page at position 1077248';
      expect(isStoreFull(eio, dir)).toBe(false); // an empty 4 MB tmpfs: a real I/O error
      expect(isStoreFull('MDB_MAP_FULL: Environment mapsize limit reached', dir)).toBe(true);
      expect(isStoreFull('No space left on device', dir)).toBe(true);
      const fd = fs.openSync(path.join(dir, 'ballast'), 'w');
      const chunk = Buffer.alloc(64 * 1024);
      try {
        for (;;) fs.writeSync(fd, chunk);
      } catch (e) {
        expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
      } finally {
        fs.closeSync(fd);
      }
      expect(isStoreFull(eio, dir)).toBe(true); // the same error on the full filesystem
      expect(isStoreFull('MDB_CORRUPTED: Located page was wrong type', dir)).toBe(false);
      fs.rmSync(path.join(dir, 'ballast'));
      expect(isStoreFull(eio, dir)).toBe(false);
    } finally {
      execFileSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
