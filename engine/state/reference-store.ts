import path from 'node:path';
import fs from 'node:fs';
import { open, type RootDatabase, type Database } from 'lmdb';
import type { Product, UserProfile } from '../codec/types.js';

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

  static open(dataDir: string, readOnly = false): ReferenceStore {
    const dir = path.join(dataDir, 'reference');
    fs.mkdirSync(dir, { recursive: true });
    const env = open({ path: dir, maxDbs: 4, readOnly: false, noMemInit: true });
    void readOnly;
    return new ReferenceStore(env, env.openDB({ name: 'profiles' }), env.openDB({ name: 'products' }));
  }

  async putProfiles(profiles: Iterable<UserProfile>): Promise<number> {
    let n = 0;
    await this.env.transaction(() => {
      for (const p of profiles) {
        this.profiles.put(p.userId, p);
        n++;
      }
    });
    return n;
  }

  async putProducts(products: Iterable<Product>): Promise<number> {
    let n = 0;
    await this.env.transaction(() => {
      for (const p of products) {
        this.products.put(p.productId, p);
        n++;
      }
    });
    return n;
  }

  profile(userId: string): UserProfile | undefined {
    return this.profiles.get(userId);
  }

  product(productId: string): Product | undefined {
    return this.products.get(productId);
  }

  close(): Promise<void> {
    return this.env.close();
  }
}
