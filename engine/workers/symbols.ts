import { InternTable } from './intern.js';

/**
 * Per-thread intern tables: users, products and devices (large vocabularies), and one table of
 * symbols for the small ones (actions, platforms, currencies, countries, sensor types, pages).
 * Well-known symbols are interned first so pipelines compare small integers.
 */
export class Vocabulary {
  readonly users = new InternTable(1 << 16);
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

  private readonly columns = new Map<string, UserColumn>();

  /** A named per-user column shared by the pipelines of this thread (values must be tagged). */
  column(name: string, fill = -1): UserColumn {
    let c = this.columns.get(name);
    if (!c) this.columns.set(name, (c = new UserColumn(fill)));
    return c;
  }

  /**
   * Forgets every column's contents. Called when a shard is (re)opened from its last commit: the
   * columns may describe state that was never committed and is now gone.
   */
  resetColumns(): void {
    for (const c of this.columns.values()) c.reset();
  }

  sym(id: number): string {
    return this.symbols.values[id];
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

/**
 * A per-thread column of small integers indexed by user id: lets pipelines keep hot per-user
 * facts ("already counted in this window") in a typed array instead of hashing into Sets.
 * Values are tagged by the caller with what they belong to (window, partition), so a stale
 * value is never mistaken for a current one.
 */
export class UserColumn {
  a: Int32Array;

  constructor(private readonly fill: number, initial = 1 << 16) {
    this.a = new Int32Array(initial).fill(fill);
  }

  get(user: number): number {
    return user < this.a.length ? this.a[user] : this.fill;
  }

  reset(): void {
    this.a.fill(this.fill);
  }

  set(user: number, v: number): void {
    if (user >= this.a.length) {
      let n = this.a.length * 2;
      while (n <= user) n *= 2;
      const next = new Int32Array(n).fill(this.fill);
      next.set(this.a);
      this.a = next;
    }
    this.a[user] = v;
  }
}
