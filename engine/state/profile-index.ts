import { hashBytes } from '../codec/index.js';
import type { UserProfile } from '../codec/types.js';

/**
 * User profiles in shared memory, for the enrichment join: a hash index over user ids that the one
 * reference writer (the main thread) fills as it commits profiles to LMDB, and that every worker
 * thread reads without locks. LMDB stays the durable copy and what the query layer reads; this is
 * the join's fast path. In bench:engine (1 M users) a profile read from LMDB's B-tree of string
 * keys plus its msgpack decode was 12 % of a worker's time; a probe here costs one or two cache
 * misses.
 *
 * Layout, in SharedArrayBuffers of a fixed size (to grow, the writer makes a copy twice the size
 * and the dispatcher hands it to the workers with their next task):
 * - slots, SLOT_INTS Int32 (32 bytes, half a cache line) per slot, open addressing with linear
 *   probing at most half full: [version, hash, key offset, key length, tier, segment, country, region].
 *   The four dimensions are codes of `dims`. version 0 is an empty slot; the writer makes it odd
 *   while it rewrites a slot and even again after (a seqlock): a reader that sees it odd or
 *   changed reads again.
 * - keys: the user ids' UTF-8 bytes, one after another.
 * - dims: the dimension strings (tier, segment, country and region values), [offset, length] per code, bytes in dimBytes.
 * - header: [keys used, users, dims, dim bytes used, full].
 * When the dims run out (65,536 distinct values) the index is full: a reader that does not find a
 * user then reads LMDB (slower, never wrong).
 */
export interface ProfileIndexBuffers {
  slots: SharedArrayBuffer;
  keys: SharedArrayBuffer;
  dims: SharedArrayBuffer;
  dimBytes: SharedArrayBuffer;
  header: SharedArrayBuffer;
}

/** The index as handed to the workers; a new version (the index grew) replaces a thread's copy. */
export interface ProfileIndexHandle {
  version: number;
  buffers: ProfileIndexBuffers;
}

const SLOT_INTS = 8;
const V = 0;
const HASH = 1;
const KEY_OFF = 2;
const KEY_LEN = 3;
const TIER = 4;
const SEGMENT = 5;
const COUNTRY = 6;
const REGION = 7;

const H_KEYS_USED = 0;
const H_USERS = 1;
const H_DIMS = 2;
const H_DIM_BYTES_USED = 3;
const H_FULL = 4;

const MAX_DIMS = 1 << 16;
const DIM_BYTES = 1 << 20;
/** Key bytes per user of room (user ids are shorter; a longer one uses the others' slack, and the index grows when they run out). */
const KEY_BYTES_PER_USER = 24;

/** A lookup's result: the profile's dimension codes (read them at once: the next lookup reuses it). */
export interface IndexedProfile {
  tier: number;
  segment: number;
  country: number;
  region: number;
}

export enum Lookup {
  Found = 0,
  /** Not in the index, and the index holds every profile: the user is unknown (LEFT join). */
  Unknown = 1,
  /** Not in the index, which is full (or was replaced by a bigger one meanwhile): read LMDB. */
  NotIndexed = 2,
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

class IndexView {
  readonly slots: Int32Array;
  readonly keys: Uint8Array;
  readonly keysView: DataView;
  readonly dims: Int32Array;
  readonly dimBytes: Uint8Array;
  readonly header: Int32Array;
  readonly mask: number;
  protected scratch = new Uint8Array(256);
  private scratchView = new DataView(this.scratch.buffer);

  constructor(readonly buffers: ProfileIndexBuffers) {
    this.slots = new Int32Array(buffers.slots);
    this.keys = new Uint8Array(buffers.keys);
    this.keysView = new DataView(buffers.keys);
    this.dims = new Int32Array(buffers.dims);
    this.dimBytes = new Uint8Array(buffers.dimBytes);
    this.header = new Int32Array(buffers.header);
    this.mask = this.slots.length / SLOT_INTS - 1;
  }

  /** The user id's UTF-8 bytes in a scratch buffer (valid until the next call) and their length. */
  protected encode(userId: string): number {
    if (userId.length * 3 > this.scratch.length) {
      this.scratch = new Uint8Array(userId.length * 3);
      this.scratchView = new DataView(this.scratch.buffer);
    }
    return encoder.encodeInto(userId, this.scratch).written;
  }

  protected hash(len: number): number {
    return hashBytes(this.scratchView, this.scratch, 0, len) | 0;
  }

  /** The slot holding the user id last encoded, or the empty slot where it would go (-1: none). */
  protected find(len: number, hash: number): number {
    const slots = this.slots;
    const keys = this.keys;
    const scratch = this.scratch;
    let slot = hash & this.mask;
    for (let probes = 0; probes <= this.mask; probes++) {
      const at = slot * SLOT_INTS;
      if (Atomics.load(slots, at + V) === 0) return at;
      if (slots[at + HASH] === hash && slots[at + KEY_LEN] === len) {
        let p = slots[at + KEY_OFF];
        let i = 0;
        for (; i < len; i++, p++) if (keys[p] !== scratch[i]) break;
        if (i === len) return at;
      }
      slot = (slot + 1) & this.mask;
    }
    return -1;
  }

  dimString(code: number): string {
    const off = this.dims[code * 2];
    return decoder.decode(this.dimBytes.subarray(off, off + this.dims[code * 2 + 1]));
  }
}

/** The worker threads' side: lookups, without locks. */
export class ProfileIndexReader extends IndexView {
  /** The dimension strings' codes as this thread's symbols (-1: not mapped yet). */
  private readonly symbolOf = new Int32Array(MAX_DIMS).fill(-1);

  constructor(buffers: ProfileIndexBuffers, private readonly symOf: (s: string) => number) {
    super(buffers);
  }

  /**
   * Looks a user up; on Found, `out` holds the profile's dimensions as this thread's symbols.
   * `hash`: the user id's hashString, when the caller already has it.
   */
  lookup(userId: string, out: IndexedProfile, hash?: number): Lookup {
    const len = this.encode(userId);
    const at = this.find(len, hash === undefined ? this.hash(len) : hash | 0);
    const slots = this.slots;
    for (;;) {
      const v = at < 0 ? 0 : Atomics.load(slots, at + V);
      if (v === 0) return Atomics.load(this.header, H_FULL) === 1 ? Lookup.NotIndexed : Lookup.Unknown;
      if ((v & 1) === 1) continue; // the writer is rewriting this slot: read it again
      const tier = Atomics.load(slots, at + TIER);
      const segment = Atomics.load(slots, at + SEGMENT);
      const country = Atomics.load(slots, at + COUNTRY);
      const region = Atomics.load(slots, at + REGION);
      if (Atomics.load(slots, at + V) !== v) continue;
      out.tier = this.symbol(tier);
      out.segment = this.symbol(segment);
      out.country = this.symbol(country);
      out.region = this.symbol(region);
      return Lookup.Found;
    }
  }

  private symbol(code: number): number {
    let s = this.symbolOf[code];
    if (s < 0) this.symbolOf[code] = s = this.symOf(this.dimString(code));
    return s;
  }
}

/** The reference writer's side (one thread): builds the index and keeps it up to date. */
export class ProfileIndexWriter extends IndexView {
  private readonly dimCodes: Map<string, number>;

  private constructor(buffers: ProfileIndexBuffers, dimCodes = new Map<string, number>()) {
    super(buffers);
    this.dimCodes = dimCodes;
  }

  /** An empty index with room for `users` users. */
  static create(users: number): ProfileIndexWriter {
    return new ProfileIndexWriter(allocate(users));
  }

  /** Users it has room for before it must grow. */
  get capacity(): number {
    return (this.mask + 1) / 2;
  }

  get size(): number {
    return this.header[H_USERS];
  }

  /** No room for more dimension values: readers read LMDB for users it does not hold. */
  get full(): boolean {
    return this.header[H_FULL] === 1;
  }

  /**
   * Puts a profile that LMDB has committed (a reader never finds a profile LMDB does not hold).
   * Returns false, changing nothing, when a new user does not fit: the caller grows the index.
   */
  put(p: UserProfile): boolean {
    const tier = this.dim(p.tier || 'UNKNOWN');
    const segment = this.dim(p.segment || 'UNKNOWN');
    const country = this.dim(p.country || 'UNKNOWN');
    const region = this.dim(p.region || 'UNKNOWN');
    if (tier < 0 || segment < 0 || country < 0 || region < 0) {
      Atomics.store(this.header, H_FULL, 1);
      return true; // not indexed, and never will be: readers read LMDB once the index says it is full
    }
    const len = this.encode(p.userId);
    return this.putCodes(len, this.hash(len), tier, segment, country, region);
  }

  private putCodes(len: number, hash: number, tier: number, segment: number, country: number, region: number): boolean {
    const h = this.header;
    const slots = this.slots;
    const at = this.find(len, hash);
    if (at >= 0 && slots[at + V] !== 0) {
      // An update: the seqlock makes readers retry while the four codes change.
      const v = slots[at + V];
      Atomics.store(slots, at + V, v + 1);
      Atomics.store(slots, at + TIER, tier);
      Atomics.store(slots, at + SEGMENT, segment);
      Atomics.store(slots, at + COUNTRY, country);
      Atomics.store(slots, at + REGION, region);
      Atomics.store(slots, at + V, v + 2 >= 0x7ffffffe ? 2 : v + 2);
      return true;
    }
    const usedKeys = h[H_KEYS_USED];
    if (at < 0 || (h[H_USERS] + 1) * 2 > this.mask + 1 || usedKeys + len > this.keys.length) return false;
    this.keys.set(this.scratch.subarray(0, len), usedKeys);
    h[H_KEYS_USED] = usedKeys + len;
    slots[at + HASH] = hash;
    slots[at + KEY_OFF] = usedKeys;
    slots[at + KEY_LEN] = len;
    slots[at + TIER] = tier;
    slots[at + SEGMENT] = segment;
    slots[at + COUNTRY] = country;
    slots[at + REGION] = region;
    h[H_USERS]++;
    Atomics.store(slots, at + V, 2); // published last: a reader sees the whole entry or none
    return true;
  }

  /**
   * A copy with twice the room (same dimension codes). The writer keeps this one up to date too
   * (see ReferenceStore): a batch that started before the workers were handed the new one reads it.
   */
  grown(): ProfileIndexWriter {
    const next = new ProfileIndexWriter(allocate(this.capacity * 2), new Map(this.dimCodes));
    new Uint8Array(next.buffers.dims).set(new Uint8Array(this.buffers.dims));
    next.dimBytes.set(this.dimBytes);
    next.header[H_DIMS] = this.header[H_DIMS];
    next.header[H_DIM_BYTES_USED] = this.header[H_DIM_BYTES_USED];
    next.header[H_FULL] = this.header[H_FULL];
    const slots = this.slots;
    for (let at = 0; at < slots.length; at += SLOT_INTS) {
      if (slots[at + V] === 0) continue;
      const len = slots[at + KEY_LEN];
      if (next.scratch.length < len) next.scratch = new Uint8Array(len * 2);
      next.scratch.set(this.keys.subarray(slots[at + KEY_OFF], slots[at + KEY_OFF] + len));
      if (!next.putCodes(len, slots[at + HASH], slots[at + TIER], slots[at + SEGMENT], slots[at + COUNTRY], slots[at + REGION])) throw new Error('profile index: a grown index has no room for the entries it copies');
    }
    return next;
  }

  /** After `grown()`: readers still on this copy read LMDB for the users it does not hold. */
  retire(): void {
    Atomics.store(this.header, H_FULL, 1);
  }

  /** Code of a dimension string (-1 when there is no room for another). */
  private dim(s: string): number {
    let code = this.dimCodes.get(s);
    if (code !== undefined) return code;
    const bytes = encoder.encode(s);
    const h = this.header;
    const n = h[H_DIMS];
    const used = h[H_DIM_BYTES_USED];
    if (n >= MAX_DIMS || used + bytes.length > this.dimBytes.length) return -1;
    this.dimBytes.set(bytes, used);
    this.dims[n * 2] = used;
    this.dims[n * 2 + 1] = bytes.length;
    h[H_DIM_BYTES_USED] = used + bytes.length;
    Atomics.store(h, H_DIMS, n + 1);
    code = n;
    this.dimCodes.set(s, code);
    return code;
  }
}

function allocate(users: number): ProfileIndexBuffers {
  let slots = 16;
  while (slots < users * 2) slots *= 2;
  return {
    slots: new SharedArrayBuffer(slots * SLOT_INTS * 4),
    keys: new SharedArrayBuffer(Math.max(4096, (slots / 2) * KEY_BYTES_PER_USER)),
    dims: new SharedArrayBuffer(MAX_DIMS * 2 * 4),
    dimBytes: new SharedArrayBuffer(DIM_BYTES),
    header: new SharedArrayBuffer(8 * 4),
  };
}
