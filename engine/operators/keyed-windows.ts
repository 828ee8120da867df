import { isLate } from './windows.js';

/**
 * The state of one windowed aggregation in one partition: open windows in memory (the write-back
 * cache), dirty entries written to LMDB at the next commit. A window closes when the partition's
 * stream time passes its end + grace: its final value is handed to `onClose` (output topics get
 * only final values) and it leaves memory: at once when the store already holds its final value,
 * else once the next commit has written its changed entries.
 */
export interface WindowCodec<V> {
  create(): V;
  /** Key as stored (stable across restarts: user ids, not intern ids). */
  keyToString(key: number): string;
  keyFromString(s: string): number;
  encode(v: V): unknown;
  decode(x: unknown): V;
}

export interface WindowEntry<V> {
  windowStart: number;
  key: number;
  value: V;
  dirty: boolean;
}

const RECENT = 16;

export class KeyedWindows<V> {
  readonly windows = new Map<number, Map<number, WindowEntry<V>>>();
  private readonly dirty: WindowEntry<V>[] = [];
  /** Smallest end + grace among open windows: nothing closes before stream time reaches it. */
  private nextClose = Infinity;

  constructor(
    readonly name: string,
    readonly sizeMs: number,
    readonly graceMs: number,
    readonly codec: WindowCodec<V>,
  ) {}

  private lastStart = NaN;
  private lastWindow: Map<number, WindowEntry<V>> | null = null;
  /**
   * Entries met lately, direct-mapped by key: most pipelines key a window by a handful of values
   * (platform, country, action, a single key), so a hit skips the window's Map probe. Entries
   * leave a window only when it closes or is restored, which clear this.
   */
  private readonly recent: (WindowEntry<V> | null)[] = new Array<WindowEntry<V> | null>(RECENT).fill(null);

  /** Windows changed since the last call (for dashboard deltas); the caller clears it. */
  readonly changed = new Set<number>();
  private lastChanged = NaN;
  /** Counts an event dropped as late (set by the owning pipeline). */
  onLate: () => void = () => {};

  /**
   * The entry of (window, key) for an event at this stream time, created if new, marked dirty and
   * its window marked changed; null when the window is late (counted through `onLate`). This is the
   * per-event call of every windowed pipeline: it lives here, on one class, so its property
   * loads stay monomorphic (in the pipelines' shared base class they saw ten receiver shapes).
   */
  entryFor(windowStart: number, key: number, streamTime: number): WindowEntry<V> | null {
    if (this.isLate(windowStart, streamTime)) {
      this.onLate();
      return null;
    }
    this.markChanged(windowStart);
    const r = this.recent[key & (RECENT - 1)];
    if (r !== null && r.key === key && r.windowStart === windowStart) {
      if (!r.dirty) {
        r.dirty = true;
        this.dirty.push(r);
      }
      return r;
    }
    const e = this.entry(windowStart, key);
    this.recent[key & (RECENT - 1)] = e;
    return e;
  }

  /** Marks a window changed (one tracker per set: two would each skip what the other added). */
  markChanged(windowStart: number): void {
    if (windowStart !== this.lastChanged || this.changed.size === 0) {
      this.lastChanged = windowStart;
      this.changed.add(windowStart);
    }
  }

  private forgetRecent(): void {
    this.recent.fill(null);
  }

  /** The entry of (window, key), created if new, marked dirty. Callers checked lateness. */
  entry(windowStart: number, key: number): WindowEntry<V> {
    // Most events fall in the same window as the previous one.
    let w = windowStart === this.lastStart ? this.lastWindow : this.windows.get(windowStart);
    if (!w) {
      w = new Map();
      this.windows.set(windowStart, w);
      const closeAt = windowStart + this.sizeMs + this.graceMs;
      if (closeAt < this.nextClose) this.nextClose = closeAt;
    }
    this.lastStart = windowStart;
    this.lastWindow = w;
    let e = w.get(key);
    if (!e) {
      e = { windowStart, key, value: this.codec.create(), dirty: false };
      w.set(key, e);
    }
    if (!e.dirty) {
      e.dirty = true;
      this.dirty.push(e);
    }
    return e;
  }

  isLate(windowStart: number, streamTime: number): boolean {
    return isLate(windowStart + this.sizeMs, this.graceMs, streamTime);
  }

  /** Closes every window whose end + grace <= streamTime, oldest first. */
  closeUpTo(streamTime: number, onClose: (windowStart: number, entries: Map<number, WindowEntry<V>>) => void): void {
    if (streamTime < this.nextClose) return;
    const starts = [...this.windows.keys()].sort((a, b) => a - b);
    this.nextClose = Infinity;
    this.lastStart = NaN;
    this.lastWindow = null;
    this.forgetRecent();
    for (const ws of starts) {
      const closeAt = ws + this.sizeMs + this.graceMs;
      if (closeAt <= streamTime) {
        const w = this.windows.get(ws)!;
        // Entries changed since the last commit are written by the next one (they are in `dirty`);
        // the others are in the store as they are: closing changes no value, so nothing is rewritten.
        this.windows.delete(ws);
        onClose(ws, w);
      } else if (closeAt < this.nextClose) {
        this.nextClose = closeAt;
      }
    }
  }

  /** Entries changed since the last commit; the caller writes them, then calls `committed`. */
  takeDirty(): WindowEntry<V>[] {
    return this.dirty;
  }

  committed(): void {
    for (const e of this.dirty) e.dirty = false;
    this.dirty.length = 0;
  }

  get dirtyCount(): number {
    return this.dirty.length;
  }

  /** Puts back an open window entry read from the store on restart. */
  restore(windowStart: number, keyString: string, stored: unknown): void {
    this.lastStart = NaN;
    this.lastWindow = null;
    this.forgetRecent();
    let w = this.windows.get(windowStart);
    if (!w) {
      w = new Map();
      this.windows.set(windowStart, w);
      const closeAt = windowStart + this.sizeMs + this.graceMs;
      if (closeAt < this.nextClose) this.nextClose = closeAt;
    }
    const key = this.codec.keyFromString(keyString);
    w.set(key, { windowStart, key, value: this.codec.decode(stored), dirty: false });
  }

  get openWindowCount(): number {
    return this.windows.size;
  }
}
