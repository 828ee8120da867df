import path from 'node:path';
import fs from 'node:fs';
import { open, type RootDatabase, type Database } from 'lmdb';
import type { Product, UserProfile } from '../codec/types.js';
import { hashString } from '../codec/index.js';
import { ProfileIndexWriter, type ProfileIndexHandle } from './profile-index.js';
import { ASYNC_WRITE_OPTIONS, settled } from './lmdb-async.js';

/** Buckets of the profile-change counters shared with the workers (a power of two). */
export const PROFILE_EPOCH_BUCKETS = 1 << 16;

export function profileEpochBucket(userId: string): number {
  return profileEpochBucketOfHash(hashString(userId));
}

/** The bucket of a user id whose hashString the caller already has. */
export function profileEpochBucketOfHash(hash: number): number {
  return hash & (PROFILE_EPOCH_BUCKETS - 1);
}

/**
 * The global reference tables (user profiles, product catalog): one LMDB that every shard reads
 * and one writer (the main thread's reference loader) updates. Bootstrapped before events flow.
 */
export class ReferenceStore {
  private constructor(
    readonly env: RootDatabase,
    readonly profiles: Database<UserProfile, string>,
    readonly products: Database<Product, string>,
  ) {}

  private refs = 1;
  /**
   * Per bucket of user ids, a counter bumped after a profile write is committed. It lives in
   * shared memory: workers cache profiles with the counter they saw, and re-read one whose bucket
   * has moved, so a profile update reaches the join at once (a KTable join sees the latest value).
   */
  readonly profileEpochs = new Int32Array(new SharedArrayBuffer(PROFILE_EPOCH_BUCKETS * 4));
  private static readonly openStores = new Map<string, ReferenceStore>();

  /**
   * Opens (or shares) the store of a data directory. lmdb-js shares one environment per path in a
   * thread, so opens are reference-counted: the environment closes with the last `close()`.
   */
  static open(dataDir: string): ReferenceStore {
    const dir = path.resolve(dataDir, 'reference');
    const existing = ReferenceStore.openStores.get(dir);
    if (existing) {
      existing.refs++;
      return existing;
    }
    fs.mkdirSync(dir, { recursive: true });
    const env = open({ path: dir, maxDbs: 4, noMemInit: true, ...ASYNC_WRITE_OPTIONS });
    const store = new ReferenceStore(env, env.openDB({ name: 'profiles' }), env.openDB({ name: 'products' }));
    store.dir = dir;
    ReferenceStore.openStores.set(dir, store);
    return store;
  }

  private dir = '';

  async putProfiles(profiles: Iterable<UserProfile>): Promise<number> {
    const written: UserProfile[] = [];
    const n = await this.putAll(this.profiles, profiles, (p) => {
      written.push(p);
      return p.userId;
    });
    // Committed to LMDB: now the index, then the counters that make workers read a profile again.
    if (this.index) for (const p of written) this.indexPut(p);
    for (const p of written) Atomics.add(this.profileEpochs, profileEpochBucket(p.userId), 1);
    return n;
  }

  private index: ProfileIndexWriter | null = null;
  /** The index before the last growth: batches that started before the workers got the new one still read it. */
  private previousIndex: ProfileIndexWriter | null = null;
  private indexVersion = 0;

  /**
   * The profiles' index in shared memory for the workers' join (see profile-index.ts), built from
   * LMDB at the first call and kept up to date by putProfiles from then on. Only the writer (the
   * engine's main thread) calls this. `version` changes when the index grows into new buffers.
   */
  profileIndex(): ProfileIndexHandle {
    if (!this.index) {
      const users = (this.profiles.getStats() as { entryCount: number }).entryCount;
      const index = ProfileIndexWriter.create(Math.max(1 << 16, users));
      this.index = index;
      this.indexVersion++;
      for (const { value } of this.profiles.getRange()) if (value) this.indexPut(value);
    }
    return { version: this.indexVersion, buffers: this.index.buffers };
  }

  private indexPut(p: UserProfile): void {
    this.previousIndex?.put(p);
    if (this.index!.put(p)) return;
    const next = this.index!.grown();
    this.index!.retire();
    this.previousIndex = this.index;
    this.index = next;
    this.indexVersion++;
    if (!next.put(p)) throw new Error('profile index: no room for a profile right after growing');
  }

  putProducts(products: Iterable<Product>): Promise<number> {
    return this.putAll(this.products, products, (p) => p.productId);
  }

  private async putAll<T>(db: Database<T, string>, items: Iterable<T>, keyOf: (x: T) => string): Promise<number> {
    let n = 0;
    await settled('storing reference records', this.env.transaction(() => {
      for (const x of items) {
        db.put(keyOf(x), x);
        n++;
      }
    }));
    return n;
  }

  profile(userId: string): UserProfile | undefined {
    return this.profiles.get(userId);
  }

  product(productId: string): Product | undefined {
    return this.products.get(productId);
  }

  async close(): Promise<void> {
    if (--this.refs > 0) return;
    ReferenceStore.openStores.delete(this.dir);
    await this.env.close();
  }
}
