/**
 * Piscina worker entry. One Piscina pool per worker thread (maxThreads 1) gives explicit
 * shard -> worker routing: a shard's tasks always reach the same thread, in order, one at a time.
 *
 * Generations: a shard is opened with a generation number; batches carry it. After any failure
 * the shard's in-memory state is discarded and every later task of that generation is refused,
 * until the dispatcher reopens the shard (from its last LMDB commit) with a new generation and
 * replays the slabs since that commit. A thread that died starts with no shard open, so stale
 * tasks are refused there too. Nothing is applied twice and nothing is skipped.
 */
import { ReferenceStore, profileEpochBucketOfHash } from '../state/reference-store.js';
import { hashString } from '../codec/index.js';
import { Lookup, ProfileIndexReader, type IndexedProfile } from '../state/profile-index.js';
import type { Profile } from '../operators/api.js';
import { ShardRuntime } from './shard-runtime.js';
import { baselineSlotBytes } from '../operators/pipelines/alerts.js';
import { Vocabulary } from './symbols.js';
import { lowerThreadPriority } from './thread-priority.js';
import { emptyCounters, encodeTaskError, type ProfileIndexHandle, type MembershipResult, type ShardResult, type ShardTask } from './protocol.js';

const vocab = new Vocabulary();
const shards = new Map<number, ShardRuntime>();
let reference: ReferenceStore | null = null;
let profileEpochs: Int32Array | null = null;
/** The shared profile index (null until handed one: then profiles are read from LMDB). */
let profileIndex: ProfileIndexReader | null = null;
let profileIndexVersion = -1;
const indexed: IndexedProfile = { tier: 0, segment: 0, country: 0, region: 0 };

function useProfileIndex(handle: ProfileIndexHandle | undefined): void {
  if (!handle || handle.version === profileIndexVersion) return;
  profileIndex = new ProfileIndexReader(handle.buffers, (s) => vocab.symOf(s));
  profileIndexVersion = handle.version;
}
/**
 * Keys interned when this thread had opened its shards and not yet run a batch: the live set its
 * shards' state restored. The thread asks to be replaced once it holds more than
 * config.workerMaxKeys and more than twice this (a live set near the limit must not make it
 * recycle at every commit).
 */
let keysAtOpen = 0;
let batchesRun = false;

/** Marks a result that carries a commit with this thread's key count and whether it should be replaced. */
function withKeys<R extends ShardResult>(res: R, limit: number): R {
  if (!res.committed) return res;
  const keys = vocab.keyCount;
  res.threadKeys = keys;
  res.threadKeyBytes = vocab.offHeapBytes + baselineSlotBytes();
  if (keys > Math.max(limit, 2 * keysAtOpen)) res.recycle = true;
  return res;
}

/** The thread yields to the main thread (see thread-priority.ts); set once, at the first shard it opens. */
let prioritySet = false;

export class ShardStateError extends Error {
  override readonly name = 'ShardStateError';
  readonly code = 'ERR_SHARD_STALE';
  readonly retriable = true;
}

/**
 * Known users' profiles, cached as symbol ids in the per-user record (the same cache line as the
 * pipelines' per-user columns), with the profile-change counter they were read at: a changed
 * profile is read again. Unknown users are not cached (their profile may arrive later).
 */
const cachedAt = vocab.column('profile.cached', 0); // 0 = not cached, else epoch bucket + 1
const cachedEpoch = vocab.column('profile.epoch', 0);
const cTier = vocab.column('profile.tier', 0);
const cSegment = vocab.column('profile.segment', 0);
const cCountry = vocab.column('profile.country', 0);
const cRegion = vocab.column('profile.region', 0);
const UNKNOWN_PROFILE: Profile = Object.freeze({ known: false, tier: vocab.UNKNOWN, segment: vocab.UNKNOWN, country: vocab.UNKNOWN, region: vocab.UNKNOWN });
/** The returned profile: valid until the next call (callers read it at once). */
const scratchProfile: Profile = { known: true, tier: 0, segment: 0, country: 0, region: 0 };

const profiles = {
  profile(user: number): Profile {
    const at = cachedAt.get(user);
    if (at !== 0 && (profileEpochs === null || profileEpochs[at - 1] === cachedEpoch.get(user))) {
      const p = scratchProfile;
      p.tier = cTier.get(user);
      p.segment = cSegment.get(user);
      p.country = cCountry.get(user);
      p.region = cRegion.get(user);
      return p;
    }
    const userId = vocab.users.value(user);
    // One hash for the change counter's bucket and the index probe.
    const hash = hashString(userId);
    const bucket = profileEpochBucketOfHash(hash);
    const epoch = profileEpochs ? Atomics.load(profileEpochs, bucket) : 0;
    const p = scratchProfile;
    const found = profileIndex ? profileIndex.lookup(userId, indexed, hash) : Lookup.NotIndexed;
    if (found === Lookup.Unknown) return UNKNOWN_PROFILE; // LEFT join: unknown users get tier UNKNOWN
    if (found === Lookup.Found) {
      p.tier = indexed.tier;
      p.segment = indexed.segment;
      p.country = indexed.country;
      p.region = indexed.region;
    } else {
      // A changed profile is read from a fresh snapshot (this thread's may predate the write).
      if (at !== 0) reference?.env.resetReadTxn();
      const rec = reference?.profile(userId);
      if (!rec) return UNKNOWN_PROFILE;
      p.tier = vocab.symOf(rec.tier || 'UNKNOWN');
      p.segment = vocab.symOf(rec.segment || 'UNKNOWN');
      p.country = vocab.symOf(rec.country || 'UNKNOWN');
      p.region = vocab.symOf(rec.region || 'UNKNOWN');
    }
    cTier.set(user, p.tier);
    cSegment.set(user, p.segment);
    cCountry.set(user, p.country);
    cRegion.set(user, p.region);
    cachedEpoch.set(user, epoch);
    cachedAt.set(user, bucket + 1);
    return p;
  },
};

type RunResult = ShardResult | MembershipResult | { shard: number; gen: number; restored: Record<number, Record<string, number>>; counters: unknown; threadKeys: number } | null;

/**
 * Piscina hands a task's error to the main thread as a copy that keeps only message and stack:
 * the code and retriable flag the dispatcher's recovery decides on travel in the message.
 */
export default async function run(task: ShardTask): Promise<RunResult> {
  try {
    return await runTask(task);
  } catch (err) {
    throw encodeTaskError(err);
  }
}

async function runTask(task: ShardTask): Promise<RunResult> {
  switch (task.op) {
    case 'open': {
      const old = shards.get(task.shard);
      if (old) {
        shards.delete(task.shard);
        await old.close();
      }
      if (!prioritySet) {
        prioritySet = true;
        lowerThreadPriority(task.config.workerNice);
      }
      reference ??= ReferenceStore.open(task.config.dataDir);
      if (task.profileEpochs) profileEpochs = task.profileEpochs;
      useProfileIndex(task.profileIndex);
      vocab.resetColumns();
      const rt = new ShardRuntime(task.shard, task.gen, task.partitions, task.config, vocab, profiles);
      shards.set(task.shard, rt);
      if (!batchesRun) keysAtOpen = vocab.keyCount;
      return { shard: task.shard, gen: task.gen, restored: rt.restoredOffsets(), counters: rt.restoredCounters(), threadKeys: vocab.keyCount };
    }
    case 'batch': {
      useProfileIndex(task.profileIndex);
      const rt = current(task.shard, task.gen);
      if (task.fault && process.env.RTA_ENABLE_FAULTS === '1') {
        if (task.fault === 'exit') process.exit(1);
        discard(task.shard, rt);
        throw new Error(`injected fault in shard ${task.shard} batch ${task.seq}`);
      }
      batchesRun = true;
      try {
        return withKeys(rt.processBatch(task), rt.config.workerMaxKeys);
      } catch (err) {
        // The batch may be half applied: drop this shard's memory; the dispatcher reopens it.
        discard(task.shard, rt);
        throw err;
      }
    }
    case 'commit': {
      const rt = current(task.shard, task.gen);
      // Refused before anything is written, without discarding the shard: the partition moved.
      if (task.writes) rt.checkLoaded(task.writes);
      try {
        const committed = rt.commit(task.seq, task.writes);
        return withKeys({ shard: task.shard, gen: task.gen, seq: task.seq, counters: emptyCounters(), deadLetters: [], outputs: [], alerts: [], changed: [], committed, processingMs: committed.durationMs }, rt.config.workerMaxKeys);
      } catch (err) {
        discard(task.shard, rt);
        throw err;
      }
    }
    case 'load': {
      const rt = current(task.shard, task.gen);
      // The thread's per-user columns may hold facts about this partition's users from before it
      // went away (state since replaced by the restore): forget them, as a shard open does.
      vocab.resetColumns();
      rt.load(task.partitions);
      const offsets = rt.restoredOffsets();
      const counters = rt.restoredCounters();
      const mine = (o: Record<number, unknown>) => Object.fromEntries(task.partitions.map((p) => [p, o[p]]));
      return { shard: task.shard, gen: task.gen, offsets: mine(offsets) as MembershipResult['offsets'], counters: mine(counters) as MembershipResult['counters'] };
    }
    case 'release': {
      current(task.shard, task.gen).release(task.partitions);
      return { shard: task.shard, gen: task.gen };
    }
    case 'metas': {
      return { shard: task.shard, gen: task.gen, metas: current(task.shard, task.gen).readMetas(task.partitions) };
    }
    case 'restore': {
      current(task.shard, task.gen).applyRestore(task.partition, task.keys, task.values, task.reset);
      return { shard: task.shard, gen: task.gen };
    }
    case 'close': {
      const rt = shards.get(task.shard);
      if (rt && rt.gen === task.gen) {
        shards.delete(task.shard);
        await rt.close();
      }
      // The thread's last shard: the thread is being retired (dispatcher close, recycle).
      if (shards.size === 0 && reference) {
        const r = reference;
        reference = null;
        await r.close();
      }
      return null;
    }
  }
}

/** Forgets a failed shard's memory and closes its store handle (the next open starts clean). */
function discard(shard: number, rt: ShardRuntime): void {
  shards.delete(shard);
  rt.close().catch(() => undefined);
}

function current(shard: number, gen: number): ShardRuntime {
  const rt = shards.get(shard);
  if (!rt || rt.gen !== gen) throw new ShardStateError(`shard ${shard} generation ${gen} is not open in this worker (stale task after a failure)`);
  return rt;
}

