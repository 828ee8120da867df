import { isUtf8 } from 'node:buffer';
import { hashString, type EventBatchReader } from '../codec/index.js';

/**
 * Interns byte strings (user ids, session ids, pages...) read in place from a slab: the bytes are
 * hashed and compared, and become a JS string only the first time a value is seen. Ids are dense
 * small integers, valid for the life of the table (one table per worker thread and field).
 * Equality is always confirmed on the bytes, so two different values never share an id: this is
 * what lets unique counts be exact.
 *
 * Layout for a cache-friendly probe: slots of [id + 1, hash, arena offset, length] in one
 * Int32Array and every value's bytes in one arena, so a hit costs one slot read and one arena
 * read (two cache misses for a user not seen lately) instead of chasing per-id arrays or a
 * Uint8Array object per value.
 */
export class InternTable {
  private slots: Int32Array; // [id + 1 (0 = empty), hash, arena offset, length] per slot
  private mask: number;
  private arena: Uint8Array;
  private arenaUsed = 0;
  private count = 0;
  /** The values as JS strings, by id (only when `keepText`). */
  private readonly texts: string[] = [];
  /**
   * Without `keepText`: where each id's bytes end in the arena (they start where the previous
   * id's end: values are appended in id order), to decode a value when it is asked for.
   */
  private ends: Int32Array;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  /**
   * `keepText`: keep every value as a JS string too (for small vocabularies read per event).
   * Without it, `value(id)` decodes the bytes at each call: the user table of a thread that a
   * million users pass through held a million strings on the heap (about 45 bytes each with
   * their array slot, half of the workers' live heap), read only at commits, alerts and closes.
   */
  constructor(
    initialCapacity = 1024,
    private readonly keepText = true,
  ) {
    let cap = 16;
    while (cap < initialCapacity * 2) cap <<= 1;
    this.slots = new Int32Array(cap * 4);
    this.mask = cap - 1;
    this.arena = new Uint8Array(initialCapacity * 16);
    this.ends = new Int32Array(keepText ? 0 : initialCapacity);
  }

  get size(): number {
    return this.count;
  }

  /** Bytes of its typed arrays (hash slots, the values' bytes and their ends), off the JS heap. */
  get bytes(): number {
    return this.slots.byteLength + this.arena.byteLength + this.ends.byteLength;
  }

  /** The value of an id, as text. */
  value(id: number): string {
    if ((id | 0) !== id || id < 0 || id >= this.count) throw new RangeError(`no interned value has id ${id} (${this.count} values)`);
    if (this.keepText) return this.texts[id];
    // The same id is often asked for twice in a row (a closed session's two keys, a new member of
    // a minute's user set and of its platform's): decoded once.
    if (id !== this.lastId) {
      this.lastText = this.textOf(id === 0 ? 0 : this.ends[id - 1], this.ends[id]);
      this.lastId = id;
    }
    return this.lastText;
  }

  private lastId = -1;
  private lastText = '';

  /**
   * The UTF-8 bytes of an id's value, copied into `target` at `offset` (which must have room for
   * them: at most `maxBytes(id)`); returns how many. Stores that keep ids as bytes take them from
   * here without a JS string.
   */
  copyBytes(id: number, target: Uint8Array, offset: number): number {
    if ((id | 0) !== id || id < 0 || id >= this.count) throw new RangeError(`no interned value has id ${id} (${this.count} values)`);
    if (this.keepText) return utf8Encoder.encodeInto(this.texts[id], target.subarray(offset)).written;
    const start = id === 0 ? 0 : this.ends[id - 1];
    const n = this.ends[id] - start;
    const arena = this.arena;
    // A loop for the short ids a commit copies by the hundred thousand: `set` of a `subarray` allocates a view per copy.
    if (n <= 64) for (let i = 0; i < n; i++) target[offset + i] = arena[start + i];
    else target.set(arena.subarray(start, start + n), offset);
    return n;
  }

  /** An upper bound of `copyBytes`'s length for an id. */
  maxBytes(id: number): number {
    if (this.keepText) return this.texts[id].length * 3;
    return this.ends[id] - (id === 0 ? 0 : this.ends[id - 1]);
  }

  private textOf(start: number, end: number): string {
    return this.decoder.decode(this.arena.subarray(start, end));
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
      const at = slot * 4;
      const k = slots[at];
      if (k === 0) break;
      if (slots[at + 1] === h && slots[at + 3] === len) {
        const arena = this.arena;
        let p = slots[at + 2];
        let i = 0;
        for (; i < len; i++, p++) if (arena[p] !== src[pos + i]) break;
        if (i === len) return k - 1;
      }
      slot = (slot + 1) & this.mask;
    }
    const bytes = src.subarray(pos, pos + len);
    let text = '';
    if (this.keepText) {
      try {
        text = this.decoder.decode(bytes);
      } catch {
        return -1;
      }
    } else if (!isUtf8(bytes)) {
      // Checked without making the string: a table without text sees every new user id once.
      return -1;
    }
    const id = this.count;
    if (this.arenaUsed + len > this.arena.length) {
      let n = this.arena.length * 2;
      while (n < this.arenaUsed + len) n *= 2;
      const a = new Uint8Array(n);
      a.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = a;
    }
    this.arena.set(bytes, this.arenaUsed);
    const at = slot * 4;
    slots[at] = id + 1;
    slots[at + 1] = h;
    slots[at + 2] = this.arenaUsed;
    slots[at + 3] = len;
    this.arenaUsed += len;
    if (this.keepText) this.texts.push(text);
    else {
      if (id === this.ends.length) {
        const e = new Int32Array(Math.max(16, this.ends.length * 2));
        e.set(this.ends);
        this.ends = e;
      }
      this.ends[id] = this.arenaUsed;
    }
    this.count++;
    if (this.count * 2 > this.mask) this.grow();
    return id;
  }

  /**
   * Id of the reader's selected string. The encoders write a string repeated inside a message
   * once (actions, pages, a user's id across the user's events...), so its position in the
   * message identifies it: a small direct-mapped cache of (message, position) -> id skips the
   * hash and the probe for those. Equality of bytes was confirmed when the entry was made.
   */
  internAt(r: EventBatchReader): number {
    const pos = r.strPos;
    const c = pos & POSITION_CACHE_MASK;
    if (this.cachedPos[c] === pos && this.cachedMessage[c] === r.message) return this.cachedId[c];
    const id = this.intern(r.bytes, pos, r.strLen, r.strHash());
    this.cachedPos[c] = pos;
    this.cachedMessage[c] = r.message;
    this.cachedId[c] = id;
    return id;
  }

  private readonly cachedPos = new Int32Array(POSITION_CACHE_MASK + 1);
  private readonly cachedMessage = new Int32Array(POSITION_CACHE_MASK + 1); // 0: empty (messages count from 1)
  private readonly cachedId = new Int32Array(POSITION_CACHE_MASK + 1);

  /** Id of a JS string (cold path: restore from the store, tests). */
  internString(s: string): number {
    const b = new TextEncoder().encode(s);
    return this.intern(b, 0, b.length, hashString(s));
  }

  private grow(): void {
    const cap = (this.mask + 1) * 2;
    const slots = new Int32Array(cap * 4);
    const mask = cap - 1;
    const old = this.slots;
    for (let s = 0; s <= this.mask; s++) {
      const from = s * 4;
      if (old[from] === 0) continue;
      let slot = old[from + 1] & mask;
      while (slots[slot * 4] !== 0) slot = (slot + 1) & mask;
      slots.set(old.subarray(from, from + 4), slot * 4);
    }
    this.slots = slots;
    this.mask = mask;
  }
}

const POSITION_CACHE_MASK = 255;
const utf8Encoder = new TextEncoder();
