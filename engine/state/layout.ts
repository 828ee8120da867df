import fs from 'node:fs';
import path from 'node:path';
import { EngineError } from '../errors.js';

/** The file in a data directory that records the layout its state was written with. */
export const LAYOUT_FILE = 'layout.json';

export interface StateLayout {
  partitions: number;
  shards: number;
}

/**
 * State is laid out by partition and shard: partition p's state and offsets live in shard
 * p mod shards, and a user's events in partition hash(user) mod partitions. Started over the same
 * data directory with another count, an engine would find some partitions' state in the wrong
 * shard (or none, and replay them from the start: counted twice). So the first start records the
 * layout, and every later start must match it. A directory written before this file existed has
 * its shard directories to go by (its partition count is taken as given).
 */
export function checkLayout(dataDir: string, want: StateLayout): void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, LAYOUT_FILE);
  const fix = (have: Partial<StateLayout>) =>
    `start it with ${have.shards !== undefined ? `--shards ${have.shards}` : ''}${have.partitions !== undefined ? ` --partitions ${have.partitions}` : ''}, or give it a new --data-dir (its state is rebuilt from the source)`;
  if (fs.existsSync(file)) {
    let have: StateLayout;
    try {
      have = JSON.parse(fs.readFileSync(file, 'utf8')) as StateLayout;
    } catch (e) {
      throw new EngineError('ERR_DATA_DIR_LAYOUT', `${file} cannot be read (${(e as Error).message}): restore it, or give the engine a new --data-dir`, false, { cause: e });
    }
    if (have.partitions !== want.partitions || have.shards !== want.shards) {
      throw new EngineError('ERR_DATA_DIR_LAYOUT',
        `data directory ${dataDir} holds state for ${have.partitions} partitions in ${have.shards} shards, and this engine was started with ${want.partitions} partitions in ${want.shards} shards: ${fix(have)}`, false);
    }
    return;
  }
  const shardDirs = fs.readdirSync(dataDir).map((d) => /^shard-(\d+)$/.exec(d)).filter((m) => m !== null).map((m) => Number(m[1]));
  if (shardDirs.length > 0) {
    const shards = Math.max(...shardDirs) + 1;
    if (shards !== want.shards) {
      throw new EngineError('ERR_DATA_DIR_LAYOUT', `data directory ${dataDir} holds state in ${shards} shards, and this engine was started with ${want.shards}: ${fix({ shards })}`, false);
    }
  }
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify({ partitions: want.partitions, shards: want.shards })}\n`);
  fs.renameSync(tmp, file);
}
