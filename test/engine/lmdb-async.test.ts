import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// Regression (CI, reliability scenario 7): the engine died of an unhandled rejection when the disk
// filled while the main thread stored alerts, although the write's own failure was handled.
// lmdb-js rejects promises nobody holds (see engine/state/lmdb-async.ts). The writes run in a child
// process with Node's default --unhandled-rejections=throw: such a rejection ends it. Needs root to
// mount a tmpfs, as scenario 7 does.
describe('asynchronous LMDB writes on a full disk', () => {
  it('fail with the real cause, crash nothing, and succeed once space returns', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rta-asyncfull-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir]);
    try {
      const child = spawnSync(process.execPath, [path.resolve('dist/test/engine/fixtures/full-disk-writes.js'), dir], { encoding: 'utf8', timeout: 60_000 });
      expect(child.status, `child died:\n${child.stderr}`).toBe(0);
      const r = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as {
        whileFull: Array<Record<string, string>>; afterwards: Record<string, string>;
        stored: { global: number; status: string; product: string | null };
      };
      for (const round of r.whileFull) {
        for (const name of ['putGlobal', 'markNotified', 'setStatus', 'putProducts']) {
          expect(round[name]).toMatch(/^LmdbWriteError 28: .*No space left on device/);
        }
      }
      expect(r.afterwards).toEqual({ putGlobal: 'ok', markNotified: 'ok', setStatus: 'ok', putProducts: 'ok' });
      // Only the writes after space returned are stored: 300 global alerts, the status, the products.
      expect(r.stored).toEqual({ global: 300, status: 'ACKNOWLEDGED', product: 'p-3000' });
    } finally {
      execFileSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
