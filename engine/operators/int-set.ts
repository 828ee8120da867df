/**
 * A set of non-negative integers (interned user ids) in one Int32Array: open addressing, linear
 * probing, slots hold member + 1 (0 = empty), grown by doubling at half full. It is what the
 * exact unique-user counts keep per window (users of a minute, of a country's hour): a JS Set
 * costs 20-30 bytes of heap per member, which the garbage collector marks again and again while
 * a million users pass through; here a member costs 8-16 bytes off the heap and nothing to mark.
 */
export class IntSet {
  private slots: Int32Array;
  private mask: number;
  private count = 0;

  constructor(capacity = 8) {
    let cap = 16;
    while (cap < capacity * 2) cap <<= 1;
    this.slots = new Int32Array(cap);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.count;
  }

  has(member: number): boolean {
    const slots = this.slots;
    const k = member + 1;
    for (let i = hash(member) & this.mask; ; i = (i + 1) & this.mask) {
      const s = slots[i];
      if (s === k) return true;
      if (s === 0) return false;
    }
  }

  /** Adds a member (an integer in [0, 2^31 - 2]); true when it was not in the set. */
  add(member: number): boolean {
    if ((member | 0) !== member || member < 0 || member === 0x7fffffff) throw new RangeError(`IntSet members are integers in [0, 2^31 - 2], got ${member}`);
    const slots = this.slots;
    const k = member + 1;
    let i = hash(member) & this.mask;
    for (;;) {
      const s = slots[i];
      if (s === k) return false;
      if (s === 0) break;
      i = (i + 1) & this.mask;
    }
    slots[i] = k;
    if (++this.count * 2 > this.mask) this.grow();
    return true;
  }

  forEach(f: (member: number) => void): void {
    const slots = this.slots;
    for (let i = 0; i < slots.length; i++) if (slots[i] !== 0) f(slots[i] - 1);
  }

  /** The members, in no particular order. */
  toArray(): number[] {
    const out: number[] = [];
    this.forEach((m) => out.push(m));
    return out;
  }

  private grow(): void {
    const old = this.slots;
    const slots = new Int32Array(old.length * 2);
    const mask = slots.length - 1;
    for (let j = 0; j < old.length; j++) {
      const k = old[j];
      if (k === 0) continue;
      let i = hash(k - 1) & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = k;
    }
    this.slots = slots;
    this.mask = mask;
  }
}

/** Interned ids are dense (0, 1, 2...): a multiplicative hash spreads neighbours apart. */
function hash(member: number): number {
  const h = Math.imul(member, 0x9e3779b1);
  return h ^ (h >>> 16);
}
