import { hashString } from '../codec/index.js';

/**
 * Interns byte strings (user ids, session ids, pages...) read in place from a slab: the bytes are
 * hashed and compared, and become a JS string only the first time a value is seen. Ids are dense
 * small integers, valid for the life of the table (one table per worker thread and field).
 * Equality is always confirmed on the bytes, so two different values never share an id: this is
 * what lets unique counts be exact.
 */
export class InternTable {
  private keys: Int32Array; // slot -> id + 1 (0 = empty)
  private hashes: Int32Array; // slot -> hash
  private mask: number;
  private readonly bytes: Uint8Array[] = [];
  readonly values: string[] = [];
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(initialCapacity = 1024) {
    let cap = 16;
    while (cap < initialCapacity * 2) cap <<= 1;
    this.keys = new Int32Array(cap);
    this.hashes = new Int32Array(cap);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.values.length;
  }

  /**
   * Id of the bytes [pos, pos+len) of `src` with hash `hash` (computed by the reader), or -1 when
   * the bytes are not valid UTF-8 (two different invalid byte strings would decode to the same
   * text and share a stored key).
   */
  intern(src: Uint8Array, pos: number, len: number, hash: number): number {
    const keys = this.keys;
    const hashes = this.hashes;
    let slot = hash & this.mask;
    for (;;) {
      const k = keys[slot];
      if (k === 0) break;
      if (hashes[slot] === (hash | 0)) {
        const b = this.bytes[k - 1];
        if (b.length === len) {
          let same = true;
          for (let i = 0; i < len; i++) {
            if (b[i] !== src[pos + i]) {
              same = false;
              break;
            }
          }
          if (same) return k - 1;
        }
      }
      slot = (slot + 1) & this.mask;
    }
    const id = this.values.length;
    const copy = src.slice(pos, pos + len);
    let text: string;
    try {
      text = this.decoder.decode(copy);
    } catch {
      return -1;
    }
    this.bytes.push(copy);
    this.values.push(text);
    keys[slot] = id + 1;
    hashes[slot] = hash | 0;
    if (this.values.length * 2 > this.mask) this.grow();
    return id;
  }

  /** Id of a JS string (cold path: restore from the store, tests). */
  internString(s: string): number {
    const b = new TextEncoder().encode(s);
    return this.intern(b, 0, b.length, hashString(s));
  }

  private grow(): void {
    const cap = (this.mask + 1) * 2;
    const keys = new Int32Array(cap);
    const hashes = new Int32Array(cap);
    const mask = cap - 1;
    for (let s = 0; s <= this.mask; s++) {
      const k = this.keys[s];
      if (k === 0) continue;
      let slot = this.hashes[s] & mask;
      while (keys[slot] !== 0) slot = (slot + 1) & mask;
      keys[slot] = k;
      hashes[slot] = this.hashes[s];
    }
    this.keys = keys;
    this.hashes = hashes;
    this.mask = mask;
  }
}
