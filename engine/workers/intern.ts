import { hashString } from '../codec/index.js';

/**
 * Interns byte strings (user ids, session ids, pages...) read in place from a slab: the bytes are
 * hashed and compared, and become a JS string only the first time a value is seen. Ids are dense
 * small integers, valid for the life of the table (one table per worker thread and field).
 * Equality is always confirmed on the bytes, so two different values never share an id: this is
 * what lets unique counts be exact.
 *
 * Layout for a cache-friendly probe: slot pairs [id + 1, hash] in one Int32Array, and every
 * value's bytes in one arena (offset and length per id), so a hit costs one slot read and one
 * arena read instead of chasing a Uint8Array object per value.
 */
export class InternTable {
  private slots: Int32Array; // [id + 1 (0 = empty), hash] per slot
  private mask: number;
  private arena: Uint8Array;
  private arenaUsed = 0;
  private offsets: Int32Array;
  private lengths: Int32Array;
  readonly values: string[] = [];
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(initialCapacity = 1024) {
    let cap = 16;
    while (cap < initialCapacity * 2) cap <<= 1;
    this.slots = new Int32Array(cap * 2);
    this.mask = cap - 1;
    this.arena = new Uint8Array(initialCapacity * 16);
    this.offsets = new Int32Array(initialCapacity);
    this.lengths = new Int32Array(initialCapacity);
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
    const slots = this.slots;
    const h = hash | 0;
    let slot = h & this.mask;
    for (;;) {
      const k = slots[slot * 2];
      if (k === 0) break;
      if (slots[slot * 2 + 1] === h && this.lengths[k - 1] === len) {
        const arena = this.arena;
        let p = this.offsets[k - 1];
        let i = 0;
        for (; i < len; i++, p++) if (arena[p] !== src[pos + i]) break;
        if (i === len) return k - 1;
      }
      slot = (slot + 1) & this.mask;
    }
    const bytes = src.subarray(pos, pos + len);
    let text: string;
    try {
      text = this.decoder.decode(bytes);
    } catch {
      return -1;
    }
    const id = this.values.length;
    if (id >= this.offsets.length) {
      const n = this.offsets.length * 2;
      const o = new Int32Array(n);
      o.set(this.offsets);
      this.offsets = o;
      const l = new Int32Array(n);
      l.set(this.lengths);
      this.lengths = l;
    }
    if (this.arenaUsed + len > this.arena.length) {
      let n = this.arena.length * 2;
      while (n < this.arenaUsed + len) n *= 2;
      const a = new Uint8Array(n);
      a.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = a;
    }
    this.arena.set(bytes, this.arenaUsed);
    this.offsets[id] = this.arenaUsed;
    this.lengths[id] = len;
    this.arenaUsed += len;
    this.values.push(text);
    slots[slot * 2] = id + 1;
    slots[slot * 2 + 1] = h;
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
    const slots = new Int32Array(cap * 2);
    const mask = cap - 1;
    for (let s = 0; s <= this.mask; s++) {
      const k = this.slots[s * 2];
      if (k === 0) continue;
      const h = this.slots[s * 2 + 1];
      let slot = h & mask;
      while (slots[slot * 2] !== 0) slot = (slot + 1) & mask;
      slots[slot * 2] = k;
      slots[slot * 2 + 1] = h;
    }
    this.slots = slots;
    this.mask = mask;
  }
}
