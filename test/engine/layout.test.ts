import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { Engine, MemorySink } from '../../engine/index.js';
import { ReplaySource } from '../../engine/source/replay.js';
import { LAYOUT_FILE, checkLayout } from '../../engine/state/layout.js';
import { tempDir } from './harness.js';

/**
 * Partition p's state lives in shard p mod shards: an engine started over a data directory with
 * another shard or partition count would miss state (and count again what it missed). The first
 * start records the layout; a start with another one is refused with what to do.
 */
describe('a data directory keeps the layout it was written with', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('an engine refuses to start over state written with another shard or partition count', async () => {
    const dir = tempDir('layout');
    dirs.push(dir);
    const first = await Engine.start({ dataDir: dir, partitions: 4, shards: 2, workers: 1 }, new ReplaySource([]), new MemorySink());
    await first.finished();
    await first.stop();
    expect(JSON.parse(fs.readFileSync(path.join(dir, LAYOUT_FILE), 'utf8'))).toEqual({ partitions: 4, shards: 2 });
    await expect(Engine.start({ dataDir: dir, partitions: 4, shards: 4, workers: 1 }, new ReplaySource([]), new MemorySink()))
      .rejects.toMatchObject({ code: 'ERR_DATA_DIR_LAYOUT', message: expect.stringMatching(/4 partitions in 2 shards.*4 partitions in 4 shards.*--shards 2 --partitions 4/) });
    await expect(Engine.start({ dataDir: dir, partitions: 8, shards: 2, workers: 1 }, new ReplaySource([]), new MemorySink()))
      .rejects.toMatchObject({ code: 'ERR_DATA_DIR_LAYOUT' });
    const again = await Engine.start({ dataDir: dir, partitions: 4, shards: 2, workers: 1 }, new ReplaySource([]), new MemorySink());
    await again.finished();
    await again.stop();
  });

  it('a directory from before the layout file goes by its shard directories', () => {
    const dir = tempDir('layout-old');
    dirs.push(dir);
    for (let s = 0; s < 4; s++) fs.mkdirSync(path.join(dir, `shard-${s}`));
    expect(() => checkLayout(dir, { partitions: 8, shards: 8 })).toThrow(expect.objectContaining({ code: 'ERR_DATA_DIR_LAYOUT', message: expect.stringMatching(/in 4 shards.*started with 8.*--shards 4/) }));
    expect(fs.existsSync(path.join(dir, LAYOUT_FILE))).toBe(false);
    checkLayout(dir, { partitions: 8, shards: 4 });
    expect(JSON.parse(fs.readFileSync(path.join(dir, LAYOUT_FILE), 'utf8'))).toEqual({ partitions: 8, shards: 4 });
    const empty = tempDir('layout-new');
    dirs.push(empty);
    checkLayout(empty, { partitions: 8, shards: 8 });
    expect(() => checkLayout(empty, { partitions: 8, shards: 4 })).toThrow(expect.objectContaining({ code: 'ERR_DATA_DIR_LAYOUT' }));
  });
});
