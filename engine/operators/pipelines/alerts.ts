import { EventKind, type Alert } from '../../codec/types.js';
import type { ScratchEvent } from '../../workers/scratch.js';
import { WindowedPipeline, alertId, userKeyCodec, type Pipeline, type PipelineContext, type StateKey } from '../api.js';
import { MINUTE, tumblingStart } from '../windows.js';
import { symbolsOfMask, type UserColumn } from '../../workers/symbols.js';

function severityByRatio(ratio: number): Alert['severity'] {
  return ratio >= 4 ? 'CRITICAL' : ratio >= 2 ? 'HIGH' : 'MEDIUM';
}

/** Repeated LOGIN_FAILED: more than the threshold per user in a 5-minute window, once per window. */
export class LoginFailuresPipeline extends WindowedPipeline<{ n: number; alerted: boolean }> {
  static readonly SIZE = 5 * MINUTE;

  constructor(ctx: PipelineContext) {
    super('login_failures', ctx, LoginFailuresPipeline.SIZE, userKeyCodec(ctx, () => ({ n: 0, alerted: false })));
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (e.kind !== EventKind.USER_ACTION || e.action !== this.ctx.vocab.LOGIN_FAILED) return;
    const ws = tumblingStart(e.ts, LoginFailuresPipeline.SIZE);
    const entry = this.store.entryFor(ws, e.user, streamTime);
    if (!entry) return;
    const v = entry.value;
    v.n++;
    const threshold = this.ctx.config.alerts.loginFailures;
    if (!v.alerted && v.n >= threshold) {
      v.alerted = true;
      const userId = this.ctx.vocab.users.value(e.user);
      this.ctx.alert({
        alertId: alertId('REPEATED_LOGIN_FAILURE', userId, ws), type: 'REPEATED_LOGIN_FAILURE', severity: v.n >= threshold * 3 ? 'HIGH' : 'MEDIUM',
        key: userId, windowStart: ws, timestamp: e.ts, message: `${v.n} failed logins for ${userId} within 5 minutes`, value: v.n, threshold, userId,
      });
    }
  }
}

/** Platforms and locations of one user in one window: a handful each, so arrays, not Sets. */
interface Sharing {
  platforms: number[];
  locations: number[];
  alertedPlatforms: boolean;
  alertedLocations: boolean;
}

/**
 * An account-sharing window as stored: [alert flags (1: platforms, 2: locations), number of
 * platforms, ...platforms, ...locations]. A tuple, not an object, for the reason given at
 * StoredOpenSession: a user's window is written at nearly every commit the user is active in.
 */
export type StoredSharing = [flags: number, platformCount: number, ...names: string[]];

/** An account-sharing window as read back, by name. */
export interface SharingView {
  platforms: string[];
  locations: string[];
  alertedPlatforms: boolean;
  alertedLocations: boolean;
}

function storedSharing(platforms: string[], locations: string[], alertedPlatforms: boolean, alertedLocations: boolean): StoredSharing {
  return [(alertedPlatforms ? 1 : 0) | (alertedLocations ? 2 : 0), platforms.length, ...platforms, ...locations];
}

/** A stored account-sharing window: the tuple, or the object stores written before the tuple hold. */
export function sharingOf(value: unknown): SharingView {
  if (Array.isArray(value)) {
    const [flags, n] = value as [number, number];
    return { platforms: value.slice(2, 2 + n) as string[], locations: value.slice(2 + n) as string[], alertedPlatforms: (flags & 1) !== 0, alertedLocations: (flags & 2) !== 0 };
  }
  const o = value as { p: string[]; l: string[]; ap: boolean; al: boolean };
  return { platforms: o.p, locations: o.l, alertedPlatforms: o.ap, alertedLocations: o.al };
}

/** Bits of `sharing.state`: the platforms (symbols below 27) and flags of the user's window in the record. */
const PLATFORM_BITS = (1 << 27) - 1;
/** The window's state is in the store as an object (a third location, a platform symbol of 27 or more). */
const SPILLED = 1 << 27;
const ALERTED_PLATFORMS = 1 << 28;
const ALERTED_LOCATIONS = 1 << 29;
/** The user is in `dirtyUsers`: the record's window changed since the last commit. */
const DIRTY = 1 << 30;

let sharingInstances = 0;
/** Owner tags of this thread's AccountSharingPipeline instances whose partition is open. */
const liveSharing = new Set<number>();

function bitCount(x: number): number {
  let n = 0;
  for (let m = x; m !== 0; m &= m - 1) n++;
  return n;
}

/**
 * More than N platforms or M locations for one user within a 10-minute window (account sharing).
 *
 * A user's current window lives in the user's per-thread record (window index, platforms as a
 * bit mask, up to two locations, alert flags), written to the store from there at commit: the
 * first event of a user in a window creates no object (a window entry, a Sharing object and two
 * arrays per user and window were the largest part of a worker's heap when a million users passed
 * through). Objects in the window store remain for the rare cases: a third location or a large
 * platform symbol (the record's window is then "spilled" to the store), an event for an older
 * window than the record's (out of order), a user whose record another partition's instance owns
 * (input not keyed by user), and windows stored before the instance opened (read when the user
 * returns to them). When a user moves on to a newer
 * window, a record changed since the last commit is first copied into the store, so the commit
 * still writes it.
 */
export class AccountSharingPipeline extends WindowedPipeline<Sharing> {
  static readonly SIZE = 10 * MINUTE;
  private readonly cOwner: UserColumn;
  private readonly cWindow: UserColumn;
  private readonly cState: UserColumn;
  private readonly cLoc1: UserColumn;
  private readonly cLoc2: UserColumn;
  private readonly instance = ++sharingInstances;
  /** Users whose record changed since the last commit (each once: the DIRTY bit guards). */
  private readonly dirtyUsers: number[] = [];
  /**
   * Stored windows are read when a user first comes back to one (`inStore`), not all at open: a
   * million users' windows took a second per partition to restore. Only windows that had begun by
   * the open's stream time can have been stored before it.
   */
  readonly restoresLazily = true;
  private openedAt = 0;

  opened(streamTime: number): void {
    this.openedAt = streamTime;
  }

  constructor(ctx: PipelineContext) {
    super('account_sharing', ctx, AccountSharingPipeline.SIZE, userKeyCodec<Sharing>(
      ctx,
      () => ({ platforms: [], locations: [], alertedPlatforms: false, alertedLocations: false }),
      (v) => storedSharing(v.platforms.map((x) => ctx.vocab.sym(x)), v.locations.map((x) => ctx.vocab.sym(x)), v.alertedPlatforms, v.alertedLocations),
      (x) => {
        const o = sharingOf(x);
        return { platforms: [...new Set(o.platforms.map((s) => ctx.vocab.symOf(s)))], locations: [...new Set(o.locations.map((s) => ctx.vocab.symOf(s)))], alertedPlatforms: o.alertedPlatforms, alertedLocations: o.alertedLocations };
      },
    ));
    const v = ctx.vocab;
    // Kept across resetColumns: valid only under this instance's owner tag (as the sessions' record).
    this.cOwner = v.column('sharing.owner', 0, true);
    this.cWindow = v.column('sharing.window', -1, true);
    this.cState = v.column('sharing.state', 0, true);
    this.cLoc1 = v.column('sharing.loc1', -1, true);
    this.cLoc2 = v.column('sharing.loc2', -1, true);
    liveSharing.add(this.instance);
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (e.user < 0 || e.kind === EventKind.IOT) return;
    const ws = tumblingStart(e.ts, AccountSharingPipeline.SIZE);
    if (this.store.isLate(ws, streamTime)) {
      this.ctx.late(this.name);
      return;
    }
    const u = e.user;
    // Window indexes, not starts, go to the calls below: small integers, where a start in
    // milliseconds is a double that V8 boxes (allocates) at each call it does not inline.
    const w = ws / AccountSharingPipeline.SIZE;
    const loc = e.location === this.ctx.vocab.EMPTY ? -1 : e.location;
    const bit = e.platform >= 0 && e.platform < 27 ? 1 << e.platform : 0;
    if (this.cOwner.get(u) === this.instance && this.cWindow.get(u) === w) {
      const st = this.cState.get(u);
      // Nothing new: the common case. Also when the window is spilled: the record then still holds
      // its platforms and first two locations, a subset of the stored entry's (hot users with
      // many sessions reach a third location, and keep sending most of the events).
      if (bit !== 0 && (st & bit) !== 0 && (loc === -1 || loc === this.cLoc1.get(u) || loc === this.cLoc2.get(u))) return;
      if ((st & SPILLED) === 0 && bit !== 0 && this.applyToRecord(e, u, w, st, bit, loc)) return;
    }
    this.slowPath(e, w, loc, bit, streamTime);
  }

  /** The event on the user's record (which holds window `w`); false when it does not fit there. */
  private applyToRecord(e: ScratchEvent, u: number, w: number, st: number, bit: number, loc: number): boolean {
    const l1 = this.cLoc1.get(u);
    const l2 = this.cLoc2.get(u);
    const newLoc = loc !== -1 && loc !== l1 && loc !== l2;
    if ((st & bit) !== 0 && !newLoc) return true;
    if (newLoc && l1 !== -1 && l2 !== -1) return false; // a third location: the window goes to the store
    if (newLoc) {
      if (l1 === -1) this.cLoc1.set(u, loc);
      else this.cLoc2.set(u, loc);
    }
    let next = st | bit | DIRTY;
    if ((st & DIRTY) === 0) this.dirtyUsers.push(u);
    const ws = w * AccountSharingPipeline.SIZE;
    this.store.markChanged(ws);
    const a = this.ctx.config.alerts;
    const platforms = bitCount(next & PLATFORM_BITS);
    if ((next & ALERTED_PLATFORMS) === 0 && platforms > a.maxPlatformsPer10Min) {
      next |= ALERTED_PLATFORMS;
      this.alertPlatforms(e, ws, platforms);
    }
    const locations = (this.cLoc1.get(u) !== -1 ? 1 : 0) + (this.cLoc2.get(u) !== -1 ? 1 : 0);
    if ((next & ALERTED_LOCATIONS) === 0 && locations > a.maxLocationsPer10Min) {
      next |= ALERTED_LOCATIONS;
      this.alertLocations(e, ws, this.recordLocations(u));
    }
    this.cState.set(u, next);
    return true;
  }

  /** Every case the record's fast path does not take (see the class comment). */
  private slowPath(e: ScratchEvent, w: number, loc: number, bit: number, streamTime: number): void {
    const u = e.user;
    const ws = w * AccountSharingPipeline.SIZE;
    let owner = this.cOwner.get(u);
    if (owner !== this.instance && (owner === 0 || !liveSharing.has(owner))) {
      // Free, or left by a closed instance (tags are never reused): claim it.
      this.cOwner.set(u, this.instance);
      this.cWindow.set(u, -1);
      this.cState.set(u, 0);
      owner = this.instance;
    }
    if (owner === this.instance) {
      const current = this.cWindow.get(u);
      let st = this.cState.get(u);
      if (w > current) {
        // The user moves on to a newer window; the record's, if changed since the last commit, goes to the store first.
        if ((st & (DIRTY | SPILLED)) === DIRTY) this.spill(u, current * AccountSharingPipeline.SIZE, st);
        st &= DIRTY;
        // A window stored before this instance opened is in the store: it stays there.
        if (this.inStore(ws, u)) st |= SPILLED;
        this.cWindow.set(u, w);
        this.cState.set(u, st);
        this.cLoc1.set(u, -1);
        this.cLoc2.set(u, -1);
        if ((st & SPILLED) === 0 && bit !== 0 && this.applyToRecord(e, u, w, st, bit, loc)) return;
      }
      if (w === this.cWindow.get(u)) {
        if ((st & SPILLED) === 0) {
          // The event does not fit the record (a third location, a large platform symbol): the window goes to the store.
          this.spill(u, ws, st);
          st |= SPILLED;
        }
        // The record keeps up as a filter for the check in onEvent.
        this.cState.set(u, st | bit);
      }
    }
    const entry = this.storedEntry(ws, u, streamTime);
    if (!entry) return;
    const v = entry.value;
    if (!v.platforms.includes(e.platform)) v.platforms.push(e.platform);
    if (loc !== -1 && !v.locations.includes(loc)) v.locations.push(loc);
    const a = this.ctx.config.alerts;
    if (!v.alertedPlatforms && v.platforms.length > a.maxPlatformsPer10Min) {
      v.alertedPlatforms = true;
      this.alertPlatforms(e, ws, v.platforms.length);
    }
    if (!v.alertedLocations && v.locations.length > a.maxLocationsPer10Min) {
      v.alertedLocations = true;
      this.alertLocations(e, ws, v.locations);
    }
  }

  /**
   * The record's window as an entry of the store, dirty there so the next commit writes it (even
   * when stream time has passed the window's grace since: its change came in time).
   */
  private spill(u: number, ws: number, st: number): void {
    const v = this.store.entry(ws, u).value;
    v.platforms = symbolsOfMask(st & PLATFORM_BITS);
    v.locations = this.recordLocations(u);
    v.alertedPlatforms = (st & ALERTED_PLATFORMS) !== 0;
    v.alertedLocations = (st & ALERTED_LOCATIONS) !== 0;
  }

  /**
   * The store's entry of (window, user), read from the committed state when it left memory (an
   * older window than the record's, which held it until then), else new. Null when late.
   */
  private storedEntry(ws: number, u: number, streamTime: number): { value: Sharing } | null {
    if (!this.store.windows.get(ws)?.has(u)) {
      const userId = this.ctx.vocab.users.value(u);
      const stored = this.ctx.read(this.name, [ws, userId]);
      if (stored !== undefined) this.store.restore(ws, userId, stored);
    }
    return this.store.entryFor(ws, u, streamTime);
  }

  /** Whether the store holds (window, user): in memory, or committed before the open (then read into memory). */
  private inStore(ws: number, u: number): boolean {
    if (this.store.windows.get(ws)?.has(u)) return true;
    if (ws > this.openedAt) return false; // no event of this window was processed before the open
    const userId = this.ctx.vocab.users.value(u);
    const stored = this.ctx.read(this.name, [ws, userId]);
    if (stored === undefined) return false;
    this.store.restore(ws, userId, stored);
    return true;
  }

  private recordLocations(u: number): number[] {
    const out: number[] = [];
    const l1 = this.cLoc1.get(u);
    const l2 = this.cLoc2.get(u);
    if (l1 !== -1) out.push(l1);
    if (l2 !== -1) out.push(l2);
    return out;
  }

  private alertPlatforms(e: ScratchEvent, ws: number, n: number): void {
    const a = this.ctx.config.alerts;
    const userId = this.ctx.vocab.users.value(e.user);
    this.ctx.alert({
      alertId: alertId('MULTIPLE_PLATFORMS', userId, ws), type: 'MULTIPLE_PLATFORMS', severity: 'MEDIUM', key: userId, windowStart: ws, timestamp: e.ts,
      message: `${userId} used ${n} platforms within 10 minutes`, value: n, threshold: a.maxPlatformsPer10Min, userId,
    });
  }

  private alertLocations(e: ScratchEvent, ws: number, locations: number[]): void {
    const a = this.ctx.config.alerts;
    const userId = this.ctx.vocab.users.value(e.user);
    this.ctx.alert({
      alertId: alertId('MULTIPLE_LOCATIONS', userId, ws), type: 'MULTIPLE_LOCATIONS', severity: 'HIGH', key: userId, windowStart: ws, timestamp: e.ts,
      message: `${userId} appeared in ${locations.length} locations within 10 minutes (${locations.map((l) => this.ctx.vocab.sym(l)).join(', ')})`,
      value: locations.length, threshold: a.maxLocationsPer10Min, userId,
    });
  }

  override collectWrites(write: (key: StateKey, value: unknown) => void): void {
    super.collectWrites(write);
    const vocab = this.ctx.vocab;
    for (const u of this.dirtyUsers) {
      if (this.cOwner.get(u) !== this.instance) continue;
      const st = this.cState.get(u);
      if ((st & SPILLED) !== 0) continue; // the store's entry is written instead
      write([this.cWindow.get(u) * AccountSharingPipeline.SIZE, vocab.users.value(u)], storedSharing(
        symbolsOfMask(st & PLATFORM_BITS).map((x) => vocab.sym(x)), this.recordLocations(u).map((x) => vocab.sym(x)),
        (st & ALERTED_PLATFORMS) !== 0, (st & ALERTED_LOCATIONS) !== 0,
      ));
    }
  }

  override committed(): void {
    super.committed();
    for (const u of this.dirtyUsers) if (this.cOwner.get(u) === this.instance) this.cState.set(u, this.cState.get(u) & ~DIRTY);
    this.dirtyUsers.length = 0;
  }

  override get dirtyCount(): number {
    return this.store.dirtyCount + this.dirtyUsers.length;
  }

  dispose(): void {
    liveSharing.delete(this.instance);
  }
}


/** An IoT reading over its sensor's threshold: one alert per device per 1-minute window. */
export class IotThresholdPipeline extends WindowedPipeline<{ alerted: boolean }> {
  constructor(ctx: PipelineContext) {
    const devices = ctx.vocab.devices;
    super('iot_threshold', ctx, MINUTE, {
      create: () => ({ alerted: false }),
      keyToString: (k) => devices.value(k),
      keyFromString: (s) => devices.internString(s),
      encode: (v) => v,
      decode: (x) => x as { alerted: boolean },
    });
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (e.kind !== EventKind.IOT) return;
    const sensor = this.ctx.vocab.sym(e.action);
    const threshold = this.ctx.config.alerts.iot[sensor];
    if (threshold === undefined || !(e.value > threshold)) return;
    const ws = tumblingStart(e.ts, MINUTE);
    const entry = this.store.entryFor(ws, e.device, streamTime);
    if (!entry || entry.value.alerted) return;
    entry.value.alerted = true;
    const deviceId = this.ctx.vocab.devices.value(e.device);
    const userId = e.user >= 0 ? this.ctx.vocab.users.value(e.user) : '';
    this.ctx.alert({
      alertId: alertId('IOT_THRESHOLD', deviceId, ws), type: 'IOT_THRESHOLD', severity: 'CRITICAL', key: deviceId, windowStart: ws, timestamp: e.ts,
      message: `${sensor} reading ${e.value} on ${deviceId} is over its threshold ${threshold}`, value: e.value, threshold, userId,
    });
  }
}

interface Baseline {
  n: number;
  mean: number;
  m2: number;
}

let baselineInstances = 0;
/** Ids of this thread's TransactionAnomalyPipeline instances whose partition is open. */
const liveBaselineInstances = new Set<number>();

/**
 * This thread's per-user baseline slots, 4 doubles per user id: [owner instance, n, mean, m2] (32
 * bytes, one cache line; off the JS heap). Not in the shared per-user records: those are full.
 */
let baselineSlots = new Float64Array(4 << 16);
function baselineSlot(user: number): number {
  const i = user * 4;
  if (i + 4 > baselineSlots.length) {
    let n = baselineSlots.length * 2;
    while (n < i + 4) n *= 2;
    const next = new Float64Array(n);
    next.set(baselineSlots);
    baselineSlots = next;
  }
  return i;
}

/** Bytes of this thread's baseline slots (they grow with the user ids interned). */
export function baselineSlotBytes(): number {
  return baselineSlots.byteLength;
}

/**
 * Transaction amount anomaly against the user's baseline: running mean and variance (Welford) of
 * the user's completed transactions in USD. An amount more than z standard deviations above the
 * mean, once the user has enough history, alerts; anomalies do not move the baseline.
 *
 * Baselines live in LMDB; in memory a user's baseline sits in the thread's baseline slots (count,
 * mean, m2), read from the committed state the first time this instance meets the user. They are
 * not all loaded at open and not kept in a Map: that held an object per user who ever paid, on the
 * JS heap for the life of the thread (the heap grew with every user passing through, issue #9).
 * A slot belongs to this instance while its owner is this instance's thread-unique id (as in
 * SessionsPipeline); a user whose slot another open partition's instance owns (input not keyed by
 * user) is kept in `foreign` until the next commit.
 */
export class TransactionAnomalyPipeline implements Pipeline {
  readonly name = 'baseline';
  readonly changed = new Set<number>();
  readonly restoresLazily = true;
  private readonly dirty = new Set<number>();
  private readonly foreign = new Map<number, Baseline>();
  private readonly instance = ++baselineInstances;
  private readonly scratch: Baseline = { n: 0, mean: 0, m2: 0 };

  constructor(private readonly ctx: PipelineContext) {
    liveBaselineInstances.add(this.instance);
  }

  /** The user's baseline: a foreign one to change in place, or the scratch copy of the slot (write it back with `save`). */
  private baselineOf(user: number): Baseline {
    const i = baselineSlot(user);
    const o = baselineSlots[i];
    if (o !== this.instance) {
      if (o !== 0 && liveBaselineInstances.has(o)) {
        let b = this.foreign.get(user);
        if (!b) this.foreign.set(user, (b = this.stored(user)));
        return b;
      }
      // Free, or left by a closed instance (ids are never reused): claim it.
      const b = this.stored(user);
      baselineSlots[i] = this.instance;
      baselineSlots[i + 1] = b.n;
      baselineSlots[i + 2] = b.mean;
      baselineSlots[i + 3] = b.m2;
    }
    const s = this.scratch;
    s.n = baselineSlots[i + 1];
    s.mean = baselineSlots[i + 2];
    s.m2 = baselineSlots[i + 3];
    return s;
  }

  private save(user: number, b: Baseline): void {
    if (b !== this.scratch) return; // foreign: changed in place
    const i = baselineSlot(user);
    baselineSlots[i + 1] = b.n;
    baselineSlots[i + 2] = b.mean;
    baselineSlots[i + 3] = b.m2;
  }

  private stored(user: number): Baseline {
    const b = this.ctx.read(this.name, [this.ctx.vocab.users.value(user)]) as Baseline | undefined;
    return b ? { n: b.n, mean: b.mean, m2: b.m2 } : { n: 0, mean: 0, m2: 0 };
  }

  onEvent(e: ScratchEvent, _streamTime: number): void {
    if (e.kind !== EventKind.TRANSACTION || e.action !== this.ctx.vocab.COMPLETED) return;
    const usd = e.amount * this.ctx.fx(e.currency);
    const b = this.baselineOf(e.user);
    const a = this.ctx.config.alerts;
    if (b.n >= a.anomalyMinTransactions) {
      const sd = Math.sqrt(b.m2 / (b.n - 1));
      const z = sd > 0 ? (usd - b.mean) / sd : usd > b.mean * 2 ? Infinity : 0;
      if (z > a.anomalyZScore) {
        const userId = this.ctx.vocab.users.value(e.user);
        this.ctx.alert({
          alertId: alertId('TRANSACTION_ANOMALY', userId, e.ts), type: 'TRANSACTION_ANOMALY', severity: severityByRatio(z / a.anomalyZScore), key: userId,
          windowStart: e.ts, timestamp: e.ts,
          message: `transaction of ${usd.toFixed(2)} USD by ${userId} is ${Number.isFinite(z) ? z.toFixed(1) : 'far'} standard deviations above the user's mean of ${b.mean.toFixed(2)} USD`,
          value: Math.round(usd * 100) / 100, threshold: Math.round((b.mean + a.anomalyZScore * sd) * 100) / 100, userId,
        });
        return; // an anomaly does not become part of the baseline
      }
    }
    b.n++;
    const d = usd - b.mean;
    b.mean += d / b.n;
    b.m2 += d * (usd - b.mean);
    this.save(e.user, b);
    this.dirty.add(e.user);
  }

  onStreamTime(): void {}

  collectWrites(write: (key: StateKey, value: unknown) => void): void {
    for (const u of this.dirty) {
      const i = baselineSlot(u);
      const b = this.foreign.get(u) ?? { n: baselineSlots[i + 1], mean: baselineSlots[i + 2], m2: baselineSlots[i + 3] };
      write([this.ctx.vocab.users.value(u)], b);
    }
  }

  committed(): void {
    this.dirty.clear();
    this.foreign.clear(); // committed: read again from the store when next needed
  }

  /** Not called at open (restoresLazily): baselines are read from the store when first needed. */
  restore(): void {}

  dispose(): void {
    liveBaselineInstances.delete(this.instance);
  }

  get dirtyCount(): number {
    return this.dirty.size;
  }
}
