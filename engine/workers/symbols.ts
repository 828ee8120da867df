import { InternTable } from './intern.js';

/**
 * Per-thread intern tables: users, products and devices (large vocabularies), and one table of
 * symbols for the small ones (actions, platforms, currencies, countries, sensor types, pages).
 * Well-known symbols are interned first so pipelines compare small integers.
 */
export class Vocabulary {
  /** User ids: too many to keep as JS strings (see InternTable); small vocabularies keep theirs. */
  readonly users = new InternTable(1 << 16, false);
  readonly products = new InternTable(1 << 12);
  readonly devices = new InternTable(1 << 12);
  readonly symbols = new InternTable(256);

  readonly PAGE_VIEW: number;
  readonly PRODUCT_VIEW: number;
  readonly ADD_TO_CART: number;
  readonly CHECKOUT: number;
  readonly COMPLETED: number;
  readonly ERROR: number;
  readonly LOGIN_FAILED: number;
  readonly WEB: number;
  readonly MOBILE: number;
  readonly IOT: number;
  readonly UNKNOWN: number;
  readonly EMPTY: number;
  readonly PRODUCT_PAGE: number;

  constructor() {
    const s = (v: string) => this.symbols.internString(v);
    this.EMPTY = s('');
    this.UNKNOWN = s('UNKNOWN');
    this.PAGE_VIEW = s('PAGE_VIEW');
    this.PRODUCT_VIEW = s('PRODUCT_VIEW');
    this.ADD_TO_CART = s('ADD_TO_CART');
    this.CHECKOUT = s('CHECKOUT');
    this.COMPLETED = s('COMPLETED');
    this.ERROR = s('ERROR');
    this.LOGIN_FAILED = s('LOGIN_FAILED');
    this.WEB = s('WEB');
    this.MOBILE = s('MOBILE');
    this.IOT = s('IOT');
    this.PRODUCT_PAGE = s('/product/:id');
  }

  /** Keys interned by this thread that grow with the input (users, products, devices): never freed (see config.workerMaxKeys). */
  get keyCount(): number {
    return this.users.size + this.products.size + this.devices.size;
  }

  /** Bytes off the JS heap that grow with the keys: the intern tables' arrays and the per-user records. */
  get offHeapBytes(): number {
    return this.users.bytes + this.products.bytes + this.devices.bytes + this.records.a.byteLength;
  }

  private readonly columns = new Map<string, UserColumn | UserFloatColumn>();
  private readonly records = new UserRecords();

  /**
   * A named per-user column shared by the pipelines of this thread (values must be tagged).
   * `keep`: not cleared by resetColumns (for values tagged with their owner's unique id, which a
   * reopened shard never matches).
   */
  column(name: string, fill = -1, keep = false): UserColumn {
    let c = this.columns.get(name);
    if (!c) this.columns.set(name, (c = this.records.field(name, fill, keep)));
    if (!(c instanceof UserColumn)) throw new Error(`per-user column ${name} holds floats`);
    return c;
  }

  /** A named per-user column of doubles (timestamps, amounts) in the same record; starts at 0. */
  float64Column(name: string, keep = false): UserFloatColumn {
    let c = this.columns.get(name);
    if (!c) this.columns.set(name, (c = this.records.float64Field(name, keep)));
    if (!(c instanceof UserFloatColumn)) throw new Error(`per-user column ${name} holds integers`);
    return c;
  }

  /**
   * Forgets every column's contents. Called when a shard is (re)opened from its last commit: the
   * columns may describe state that was never committed and is now gone.
   */
  resetColumns(): void {
    this.records.reset();
  }

  sym(id: number): string {
    return this.symbols.value(id);
  }

  private readonly byName = new Map<string, number>();

  /** Symbol id of a JS string (cold paths: profiles, restore); cached by string. */
  symOf(name: string): number {
    let id = this.byName.get(name);
    if (id === undefined) {
      id = this.symbols.internString(name);
      this.byName.set(name, id);
    }
    return id;
  }
}

/** The symbols of a bit mask of symbols below 31 (platforms in per-user records), lowest first. */
export function symbolsOfMask(mask: number): number[] {
  const out: number[] = [];
  for (let m = mask; m !== 0; m &= m - 1) out.push(31 - Math.clz32(m & -m));
  return out;
}

/**
 * Per-user hot facts of one thread ("already counted in this window", "dirty in this commit"),
 * interleaved: every column of a user sits in the same 128-byte record (two adjacent cache lines, which the hardware fetches together), so an event of a user
 * not seen lately costs one cache miss for all of them, not one per column (users arrive at
 * random, Zipf over millions: these reads are memory latency, not computation).
 */
export class UserRecords {
  static readonly STRIDE = 32;
  a = new Int32Array(UserRecords.STRIDE << 16);
  /** The same memory as doubles: a float field takes an aligned pair of int slots. */
  f = new Float64Array(this.a.buffer);
  /** Integer fields fill the record from its start, float fields from its end. */
  private readonly fills: number[] = [];
  private readonly keep: boolean[] = [];
  private readonly floatFields: Array<{ index: number; keep: boolean }> = [];

  /** Checked before a field is added (a refused field leaves the records as they were). */
  private checkRoom(name: string, ints: number, floats: number): void {
    if (this.fills.length + ints + 2 * (this.floatFields.length + floats) > UserRecords.STRIDE) {
      throw new Error(`too many per-user columns (${UserRecords.STRIDE} int slots per user, a float takes two): cannot add ${name}`);
    }
  }

  field(name: string, fill: number, keep = false): UserColumn {
    this.checkRoom(name, 1, 0);
    const offset = this.fills.length;
    this.fills.push(fill);
    this.keep.push(keep);
    this.fillRange(offset, 0, this.a.length);
    return new UserColumn(this, offset, fill);
  }

  float64Field(name: string, keep = false): UserFloatColumn {
    this.checkRoom(name, 0, 1);
    const index = UserRecords.STRIDE / 2 - 1 - this.floatFields.length; // in doubles, within the record
    this.floatFields.push({ index, keep });
    return new UserFloatColumn(this, index);
  }

  private fillRange(offset: number, from: number, to: number): void {
    const fill = this.fills[offset];
    if (fill === 0) return; // typed arrays start zeroed
    const a = this.a;
    for (let i = from + offset; i < to; i += UserRecords.STRIDE) a[i] = fill;
  }

  grow(user: number): void {
    let n = this.a.length * 2;
    while (n <= user * UserRecords.STRIDE) n *= 2;
    const next = new Int32Array(n);
    next.set(this.a);
    const from = this.a.length;
    this.a = next;
    this.f = new Float64Array(next.buffer);
    for (let f = 0; f < this.fills.length; f++) this.fillRange(f, from, n);
  }

  reset(): void {
    const a = this.a;
    for (let f = 0; f < this.fills.length; f++) {
      if (this.keep[f]) continue;
      const fill = this.fills[f];
      for (let i = f; i < a.length; i += UserRecords.STRIDE) a[i] = fill;
    }
    const d = this.f;
    for (const { index, keep } of this.floatFields) {
      if (keep) continue;
      for (let i = index; i < d.length; i += UserRecords.STRIDE / 2) d[i] = 0;
    }
  }
}

/**
 * A per-thread column of small integers indexed by user id: lets pipelines keep hot per-user
 * facts ("already counted in this window") in a typed array instead of hashing into Sets.
 * Values are tagged by the caller with what they belong to (window, partition), so a stale
 * value is never mistaken for a current one.
 */
export class UserColumn {
  constructor(
    private readonly records: UserRecords,
    private readonly offset: number,
    private readonly fill: number,
  ) {}

  get(user: number): number {
    const i = user * UserRecords.STRIDE + this.offset;
    const a = this.records.a;
    return i < a.length ? a[i] : this.fill;
  }

  set(user: number, v: number): void {
    const i = user * UserRecords.STRIDE + this.offset;
    if (i >= this.records.a.length) this.records.grow(user);
    this.records.a[i] = v;
  }
}

/** A per-thread column of doubles indexed by user id, in the user's record (see UserColumn). */
export class UserFloatColumn {
  constructor(
    private readonly records: UserRecords,
    private readonly index: number,
  ) {}

  get(user: number): number {
    const i = user * (UserRecords.STRIDE / 2) + this.index;
    const f = this.records.f;
    return i < f.length ? f[i] : 0;
  }

  set(user: number, v: number): void {
    const i = user * (UserRecords.STRIDE / 2) + this.index;
    if (i >= this.records.f.length) this.records.grow(user);
    this.records.f[i] = v;
  }
}
