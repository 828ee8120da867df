import { EventKind } from '../../codec/types.js';
import type { ScratchEvent } from '../../workers/scratch.js';
import type { Pipeline, PipelineContext, StateKey } from '../api.js';
import type { KeyRange } from '../../state/shard-store.js';
import { HOUR, tumblingStart } from '../windows.js';
import { symbolsOfMask, type UserColumn, type UserFloatColumn } from '../../workers/symbols.js';
import type { InternTable } from '../../workers/intern.js';

/** Funnel steps as bits of a session's stage mask, in order. */
export const FUNNEL_STEPS = ['PAGE_VIEW', 'PRODUCT_VIEW', 'ADD_TO_CART', 'CHECKOUT', 'TRANSACTION_COMPLETED'] as const;

interface Session {
  start: number;
  end: number;
  events: number;
  pageViews: number;
  transactions: number;
  usd: number;
  /** Platform symbols seen, in order (a session has one to three: an array beats a Set here). */
  platforms: number[];
  stages: number;
  /** Close bucket this session is scheduled in (-1: none; not stored: recomputed on restore). */
  bucket: number;
  /** Last platform added (saves a Set insert per event; not stored). */
  lastPlatform: number;
}

let epochCounter = 0;
/** Ids of this thread's SessionsPipeline instances whose partition is open. */
const liveInstances = new Set<number>();
/** Thread-unique commit epochs: tags in shared columns never collide across partitions. */
function nextEpoch(): number {
  return ++epochCounter;
}

/** A user's open sessions: the session when there is one, else an array. */
type Open = Session | Session[];

/** A session as stored: platforms by name; the scheduling fields are recomputed on restore. */
export type StoredSession = Omit<Session, 'platforms' | 'bucket' | 'lastPlatform'> & { platforms: string[] };

/**
 * An open session as its user's own key holds it ([p, 'sessions', 'open', userId]): every open
 * session of builds before open-session groups; now that of a changed user whose group is not
 * written whole (see OPEN_GROUPS). A tuple, not an object: lmdb-js's msgpack encodes a flat array
 * faster than a record object (with tuples here and for account-sharing windows the commit took
 * 29 % less time; BENCHMARKS.md, ninth session). Closed sessions are written once, and keep the
 * object form the query API returns.
 */
export type StoredOpenSession = [start: number, end: number, events: number, pageViews: number, transactions: number, usd: number, stages: number, ...platforms: string[]];

/** A user's stored open sessions as objects: tuples, or objects as stores written before the tuples hold. */
export function openSessionsOf(value: unknown): StoredSession[] {
  if (!Array.isArray(value)) return [];
  return value.map((v: StoredOpenSession | StoredSession) => Array.isArray(v)
    ? { start: v[0], end: v[1], events: v[2], pageViews: v[3], transactions: v[4], usd: v[5], platforms: v.slice(7) as string[], stages: v[6] }
    : v);
}

/**
 * Where open sessions are stored. A user's open sessions change at nearly every commit in which the
 * user has an event; written as one key per user ([partition, 'sessions', 'open', userId]) that is
 * one random LMDB put per active user and commit, 3-10 µs each in a store of a million users (a
 * page copied and listed per put): half of a worker's commit time when many users pass through.
 *
 * So users are hashed into OPEN_GROUPS groups per partition, and each group is stored as two binary
 * values, encoded straight from the users' records: the group whole ([partition, 'sessions',
 * 'openGroup', g]) and its delta ([partition, 'sessions', 'openDelta', g]), the users changed since
 * the group was last written whole (a user without open sessions has an empty entry there). A
 * commit writes one value per changed group: the delta, or the group whole once the users in the
 * delta reach a share of the group's users (EngineConfig.openGroupWholeShare), which deletes the
 * delta. A commit's puts are then bounded by the number of groups, not of users. (Changed users
 * under their own keys instead of a delta, the seventeenth session's form, cost a random put per
 * user and a delete when the group was next written whole: with a million users, most groups stayed
 * under the share, and a slower run had fewer changed users per commit, so more own keys, so it ran
 * slower still.) A user's entry in the delta is newer than its group's; a user's own key
 * ([partition, 'sessions', 'open', userId]) newer than both: own keys are what stores written before
 * groups hold, and what a user whose record another partition's instance owns (input not keyed by
 * user) is written under. Writing a user into the delta or the group deletes its own key. The query
 * layer and a restore read all three.
 */
export const OPEN_GROUPS = 1024;

/** The open-session group of a user id: FNV-1a over its UTF-16 code units (stable across builds: it is in the stored keys). */
export function openGroupOf(userId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) h = Math.imul(h ^ userId.charCodeAt(i), 0x01000193);
  return (h >>> 0) % OPEN_GROUPS;
}

/**
 * A stored open-session group, binary (little-endian): a version byte (1), then per user: u32 id
 * length, the id's UTF-8 bytes, u16 session count, and per session: f64 start, f64 end, f64 usd,
 * u32 events, u32 pageViews, u32 transactions, u8 stages, u16 platform count, per platform u16
 * length + UTF-8 name. Binary, not MessagePack: a commit writes every user of a changed group, and
 * building and packing an array per user was most of the commit's time; this copies the id's
 * bytes from the intern table and the numbers from the user's record.
 */
const GROUP_FORMAT = 1;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Writes groups into one growing scratch buffer; `take` copies the group out. */
class GroupWriter {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  private n = 0;

  begin(): void {
    this.n = 0;
    this.u8(GROUP_FORMAT);
  }

  private ensure(k: number): void {
    if (this.n + k <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.n + k) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.n));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }

  u8(x: number): void {
    this.ensure(1);
    this.buf[this.n++] = x;
  }

  u16(x: number): void {
    this.ensure(2);
    this.dv.setUint16(this.n, x, true);
    this.n += 2;
  }

  u32(x: number): void {
    this.ensure(4);
    this.dv.setUint32(this.n, x, true);
    this.n += 4;
  }

  f64(x: number): void {
    this.ensure(8);
    this.dv.setFloat64(this.n, x, true);
    this.n += 8;
  }

  /** u32 length and the UTF-8 bytes of an interned value, copied from its table (no JS string). */
  interned(table: InternTable, id: number): void {
    this.ensure(4 + table.maxBytes(id));
    const len = table.copyBytes(id, this.buf, this.n + 4);
    this.dv.setUint32(this.n, len, true);
    this.n += 4 + len;
  }

  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }

  /** The group written since `begin`, as its own Buffer (a commit may keep it: the changelog). */
  take(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.n));
  }
}

/** The platform part of a stored session: u16 count, then u16 length + UTF-8 bytes per name (sorted). */
function encodePlatformNames(names: string[]): Uint8Array {
  const parts = names.map((n) => utf8.encode(n));
  const out = new Uint8Array(2 + parts.reduce((a, p) => a + 2 + p.length, 0));
  const dv = new DataView(out.buffer);
  dv.setUint16(0, parts.length, true);
  let o = 2;
  for (const p of parts) {
    dv.setUint16(o, p.length, true);
    out.set(p, o + 2);
    o += 2 + p.length;
  }
  return out;
}

/** The users of a stored group with their open sessions as objects. */
export function openGroupEntries(value: unknown): Array<[string, StoredSession[]]> {
  if (!(value instanceof Uint8Array) || value.length === 0) return [];
  const b = value;
  if (b[0] !== GROUP_FORMAT) throw new Error(`open-session group stored in an unknown format (version ${b[0]}): written by a newer build?`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: Array<[string, StoredSession[]]> = [];
  let o = 1;
  while (o < b.length) {
    const idLen = dv.getUint32(o, true);
    const id = fromUtf8.decode(b.subarray(o + 4, o + 4 + idLen));
    o += 4 + idLen;
    const count = dv.getUint16(o, true);
    o += 2;
    const sessions: StoredSession[] = [];
    for (let i = 0; i < count; i++) {
      const start = dv.getFloat64(o, true);
      const end = dv.getFloat64(o + 8, true);
      const usd = dv.getFloat64(o + 16, true);
      const events = dv.getUint32(o + 24, true);
      const pageViews = dv.getUint32(o + 28, true);
      const transactions = dv.getUint32(o + 32, true);
      const stages = b[o + 36];
      const platformCount = dv.getUint16(o + 37, true);
      o += 39;
      const platforms: string[] = [];
      for (let k = 0; k < platformCount; k++) {
        const len = dv.getUint16(o, true);
        platforms.push(fromUtf8.decode(b.subarray(o + 2, o + 2 + len)));
        o += 2 + len;
      }
      sessions.push({ start, end, events, pageViews, transactions, usd, platforms, stages });
    }
    out.push([id, sessions]);
  }
  return out;
}

/** One session of a group's entry (see GROUP_FORMAT); `platforms` from encodePlatformNames. */
function writeSession(w: GroupWriter, start: number, end: number, usd: number, events: number, pageViews: number, transactions: number, stages: number, platforms: Uint8Array): void {
  w.f64(start);
  w.f64(end);
  w.f64(usd);
  w.u32(events);
  w.u32(pageViews);
  w.u32(transactions);
  w.u8(stages);
  w.raw(platforms);
}

/** A stored group from its entries (the engine writes groups from its per-user records; this is for tools and tests). */
export function encodeOpenGroup(entries: Array<[string, StoredSession[]]>): Buffer {
  const w = new GroupWriter();
  w.begin();
  for (const [id, sessions] of entries) {
    const idBytes = utf8.encode(id);
    w.u32(idBytes.length);
    w.raw(idBytes);
    w.u16(sessions.length);
    for (const x of sessions) writeSession(w, x.start, x.end, x.usd, x.events, x.pageViews, x.transactions, x.stages, encodePlatformNames([...x.platforms].sort()));
  }
  return w.take();
}

/** One user's open sessions in a stored group or delta; undefined when the user has no entry there. */
export function openSessionsInGroup(value: unknown, userId: string): StoredSession[] | undefined {
  for (const [id, sessions] of openGroupEntries(value)) if (id === userId) return sessions;
  return undefined;
}

/**
 * A partition's stored open sessions by user, from its stored values in key order (own keys
 * 'open', deltas 'openDelta', groups 'openGroup', as a scan returns them): the newest form of each
 * user wins (own key, then delta, then group). Users with no open session are left out.
 */
export class OpenSessionsReader {
  private readonly seen = new Set<string>();
  readonly users = new Map<string, StoredSession[]>();

  /** `key` relative to [partition, 'sessions']; other keys of the pipeline are ignored. */
  add(key: readonly unknown[], value: unknown): void {
    if (key[0] === 'open') this.put(key[1] as string, openSessionsOf(value));
    else if (key[0] === 'openDelta' || key[0] === 'openGroup') for (const [id, sessions] of openGroupEntries(value)) this.put(id, sessions);
  }

  private put(userId: string, sessions: StoredSession[]): void {
    if (this.seen.has(userId)) return;
    this.seen.add(userId);
    if (sessions.length > 0) this.users.set(userId, sessions);
  }
}


export interface FunnelStats {
  sessions: number;
  /** reached[k]: sessions that reached step k, having every step before it. */
  reached: number[];
}

/** Number of leading funnel steps present in a stage mask. */
export function funnelDepth(mask: number): number {
  let k = 0;
  while (k < FUNNEL_STEPS.length && (mask & (1 << k)) !== 0) k++;
  return k;
}

/**
 * A record's platforms and funnel stages share one int: platform symbols below 26 as bits 0-25,
 * the stage mask in bits 26-30 (the record has 32 int slots, all taken).
 */
const RECORD_PLATFORMS = 26;
const PLATFORM_MASK = (1 << RECORD_PLATFORMS) - 1;

/** Whether a session can live in a user's record: platform symbols fit the mask, the close bucket fits an Int32. */
function fitsRecord(s: Session): boolean {
  for (const p of s.platforms) if (!(p >= 0 && p < RECORD_PLATFORMS)) return false;
  return s.bucket < 0 || (s.bucket - BUCKET_BASE > NO_BUCKET && s.bucket - BUCKET_BASE <= 0x7fffffff);
}


/** `sessions.slot` values other than an index into `lists`: the user's one open session is in its record, or the user has none. */
const INLINE = -1;
const NONE = -2;
/** No open session, but still listed in its open-session group (until the group is next written whole). */
const LISTED_NONE = -3;
/** `sessions.group` holds the group (bits 0-11) and two facts about the partition's store: */
const GROUP_BITS = 0xfff;
/** the user has an own key ([..., 'open', userId]); */
const HAS_KEY = 0x1000;
/** the user has an entry in its group's stored value; */
const IN_GROUP = 0x2000;
/** the user is in its group's delta (`deltaUsers`; stored at the latest commit that wrote the group's delta). */
const IN_DELTA = 0x4000;
/** Close buckets (whole seconds) are kept in the record relative to this (2023-11-14): 1955 to 2091 fits an Int32. */
const BUCKET_BASE = 1_700_000_000;
const NO_BUCKET = -0x80000000;
const STAGE_PAGE_VIEW = 1;
const STAGE_COMPLETED = 1 << 4;

/**
 * User sessions: session windows keyed by user, merging events closer than the inactivity gap
 * (default 30 min). A session closes when its partition's stream time passes end + gap + grace;
 * an event that could only belong to a closed session is late (dropped, counted). Closed sessions
 * are emitted (user-session-analytics), kept for the user drill-down, and feed the funnel:
 * sessions by the hour they started, and how far along the funnel each got.
 */
export class SessionsPipeline implements Pipeline {
  readonly name = 'sessions';
  readonly changed = new Set<number>();
  /**
   * Where a user's open sessions are. Nearly always there is one: it lives in the user's record of
   * the thread (start, end, counts, platforms as a bit mask, close bucket), the cache line the
   * other pipelines' per-user columns already brought in, so an event of that session reads and
   * writes no object (a Session object per user cost two more cache misses per event and the
   * scavenger's copying of every long-lived session). A user with several (events out of order in
   * the gap) or with a platform symbol too large for the mask has them as objects in `lists`, at
   * the index the record holds. The record belongs to this pipeline instance when its owner tag is
   * this instance's thread-unique id; a user whose record another partition's instance owns (input
   * not keyed by user) is kept in `foreign`.
   */
  private readonly lists: (Open | undefined)[] = [];
  private readonly freeListSlots: number[] = [];
  private readonly foreign = new Map<number, Open>();
  private readonly owner: UserColumn;
  private readonly slot: UserColumn;
  private readonly rStart: UserFloatColumn;
  private readonly rEnd: UserFloatColumn;
  private readonly rUsd: UserFloatColumn;
  private readonly rEvents: UserColumn;
  private readonly rPageViews: UserColumn;
  private readonly rTransactions: UserColumn;
  /** Platforms (bits 0-25) and funnel stages (bits 26-30): see RECORD_PLATFORMS. */
  private readonly rPlatformsStages: UserColumn;
  private readonly rBucket: UserColumn;
  private readonly instance = nextEpoch();
  /** Per user: its open-session group (derived from the user id, so valid for the thread's life). */
  private readonly groupOf: UserColumn;
  /**
   * Per group: the users listed in it (with open sessions, or closed since the group was last
   * written whole): users whose record this instance owns, listed when their `slot` is not NONE
   * (LISTED_NONE: listed, no open session). Users of other instances' records (input not keyed by
   * user) are never listed: they are written under their own keys, an empty one when they have none
   * (a stored group entry may be under it).
   */
  private readonly groupUsers: (number[] | undefined)[] = new Array<number[] | undefined>(OPEN_GROUPS);
  /** Per group: the commit epoch in which it was last marked dirty, written whole, and had its delta written. */
  private readonly groupDirty = new Int32Array(OPEN_GROUPS);
  private readonly groupWhole = new Int32Array(OPEN_GROUPS);
  private readonly deltaWritten = new Int32Array(OPEN_GROUPS);
  /**
   * Per group: the users of its delta, changed since the group was last written whole (users whose
   * record this instance owns, each once: IN_DELTA guards). Empty when no delta is stored, except
   * that a restored delta's entries of other instances' users are not listed (their own keys win).
   */
  private readonly deltaUsers: (number[] | undefined)[] = new Array<number[] | undefined>(OPEN_GROUPS);
  /** Per group: 1 when its delta is in the store (it may hold users `deltaUsers` does not list). */
  private readonly deltaStored = new Uint8Array(OPEN_GROUPS);
  /** Groups whose delta is written at this commit. */
  private readonly deltaGroups: number[] = [];
  /** Per group: its users marked dirty since the last commit that are not in its delta yet. */
  private readonly groupDirtyUsers = new Int32Array(OPEN_GROUPS);
  /** Groups changed since the last commit (each once: `groupDirty` guards). */
  private readonly dirtyGroups: number[] = [];
  /** Users whose open sessions changed since the last commit (each once: the dirty tag guards). */
  private readonly dirtyUsers: number[] = [];
  /** Per user: the commit epoch in which the user was last marked dirty. */
  private readonly dirtyTag: UserColumn;
  /** Users of other instances' records (see groupUsers) with an own key in this partition's store. */
  private readonly foreignKeys = new Set<number>();
  private readonly closedToWrite: Array<[number, Session]> = [];
  private readonly funnel = new Map<number, FunnelStats>();
  private readonly dirtyFunnel = new Set<number>();
  /** Users by the second at which their latest session may close (lazy: rechecked when due). */
  private readonly closeBuckets = new Map<number, number[]>();
  private lastBucket = -1;
  private readonly gap: number;
  private readonly grace: number;
  private readonly wholeShare: number;
  private epoch = nextEpoch();
  private lastChangedHour = NaN;

  constructor(private readonly ctx: PipelineContext) {
    this.gap = ctx.config.sessionGapMs;
    this.grace = ctx.config.graceMs;
    this.wholeShare = ctx.config.openGroupWholeShare;
    const v = ctx.vocab;
    this.groupOf = v.column('sessions.group', -1, true);
    this.dirtyTag = v.column('sessions.dirty');
    // Kept across resetColumns: they are valid only under this instance's owner tag, and another
    // partition of the thread may be live while one is reopened.
    this.owner = v.column('sessions.owner', 0, true);
    this.slot = v.column('sessions.slot', NONE, true);
    this.rStart = v.float64Column('sessions.start', true);
    this.rEnd = v.float64Column('sessions.end', true);
    this.rUsd = v.float64Column('sessions.usd', true);
    this.rEvents = v.column('sessions.events', 0, true);
    this.rPageViews = v.column('sessions.pageViews', 0, true);
    this.rTransactions = v.column('sessions.transactions', 0, true);
    this.rPlatformsStages = v.column('sessions.platformsStages', 0, true);
    this.rBucket = v.column('sessions.bucket', NO_BUCKET, true);
    liveInstances.add(this.instance);
  }

  /** A user's open sessions. One held in the user's record comes back as a copy: write changes back with setOpen. */
  private openOf(user: number): Open | undefined {
    if (this.owner.get(user) === this.instance) {
      const slot = this.slot.get(user);
      if (slot === INLINE) return this.readRecord(user);
      return slot >= 0 ? this.lists[slot] : undefined;
    }
    return this.foreign.size === 0 ? undefined : this.foreign.get(user);
  }

  /** A user's open sessions as a list (a new array when there is one or none). */
  private listOf(user: number): Session[] {
    const open = this.openOf(user);
    return open === undefined ? [] : Array.isArray(open) ? open : [open];
  }

  /** Sets a user's open sessions (none, one, or more). */
  private setList(user: number, sessions: Session[]): void {
    this.setOpen(user, sessions.length === 0 ? undefined : sessions.length === 1 ? sessions[0] : sessions);
  }

  private listInGroup(user: number): void {
    const g = this.groupIndex(user);
    const list = this.groupUsers[g];
    if (list) list.push(user);
    else this.groupUsers[g] = [user];
  }

  private setOpen(user: number, open: Open | undefined): void {
    const o = this.owner.get(user);
    if (o !== this.instance) {
      if (open === undefined) {
        this.foreign.delete(user);
        return;
      }
      if (o !== 0 && liveInstances.has(o)) {
        this.foreign.set(user, open);
        return;
      }
      // Free, or left by a closed instance (ids are never reused): claim it. Its store flags are
      // right for this partition: the restore set them for every user the store holds, and a flag
      // left by another partition's instance can only be a needless one. A user this instance
      // wrote as another's has an own key, and may have a group entry under it.
      // IN_DELTA is this instance's own bookkeeping (`deltaUsers`), never needless: cleared.
      this.owner.set(user, this.instance);
      this.slot.set(user, NONE);
      this.setStoreFlags(user, this.foreignKeys.delete(user) ? HAS_KEY | IN_GROUP : 0, IN_DELTA);
    }
    const slot = this.slot.get(user);
    if (open !== undefined && slot === NONE) this.listInGroup(user);
    if (open !== undefined && !Array.isArray(open) && fitsRecord(open)) {
      this.writeRecord(user, open);
      if (slot >= 0) this.freeListSlot(slot);
      this.slot.set(user, INLINE);
    } else if (open === undefined) {
      if (slot >= 0) this.freeListSlot(slot);
      // Still listed in its group until the group is next written.
      if (slot !== NONE) this.slot.set(user, LISTED_NONE);
    } else if (slot >= 0) {
      this.lists[slot] = open;
    } else {
      const s = this.freeListSlots.length > 0 ? this.freeListSlots.pop()! : this.lists.push(undefined) - 1;
      this.lists[s] = open;
      this.slot.set(user, s);
    }
  }

  private freeListSlot(slot: number): void {
    this.lists[slot] = undefined;
    this.freeListSlots.push(slot);
  }

  private readRecord(user: number): Session {
    const ps = this.rPlatformsStages.get(user);
    const platforms = symbolsOfMask(ps & PLATFORM_MASK);
    const bucket = this.rBucket.get(user);
    return {
      start: this.rStart.get(user), end: this.rEnd.get(user), events: this.rEvents.get(user), pageViews: this.rPageViews.get(user),
      transactions: this.rTransactions.get(user), usd: this.rUsd.get(user), platforms, stages: ps >>> RECORD_PLATFORMS,
      bucket: bucket === NO_BUCKET ? -1 : bucket + BUCKET_BASE, lastPlatform: -1,
    };
  }

  private writeRecord(user: number, s: Session): void {
    let mask = 0;
    for (const p of s.platforms) mask |= 1 << p;
    this.rStart.set(user, s.start);
    this.rEnd.set(user, s.end);
    this.rUsd.set(user, s.usd);
    this.rEvents.set(user, s.events);
    this.rPageViews.set(user, s.pageViews);
    this.rTransactions.set(user, s.transactions);
    this.rPlatformsStages.set(user, mask | (s.stages << RECORD_PLATFORMS));
    this.rBucket.set(user, s.bucket < 0 ? NO_BUCKET : s.bucket - BUCKET_BASE);
  }

  dispose(): void {
    liveInstances.delete(this.instance);
  }

  /** Funnel stage an event marks (a bit of the stage mask; 0 for none). */
  private stageOf(e: ScratchEvent): number {
    const v = this.ctx.vocab;
    if (e.kind === EventKind.TRANSACTION) return e.action === v.COMPLETED ? STAGE_COMPLETED : 0;
    if (e.kind === EventKind.WEB || e.kind === EventKind.MOBILE) {
      if (e.action === v.PAGE_VIEW) return STAGE_PAGE_VIEW;
      if (e.action === v.PRODUCT_VIEW) return 2;
      if (e.action === v.ADD_TO_CART) return 4;
      if (e.action === v.CHECKOUT) return 8;
    }
    return 0;
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (e.user < 0 || e.kind === EventKind.IOT) return;
    const t = e.ts;
    const gap = this.gap;
    if (t + gap + this.grace <= streamTime) {
      this.ctx.late(this.name);
      return;
    }
    const u = e.user;
    if (this.owner.get(u) === this.instance && this.slot.get(u) === INLINE && e.platform >= 0 && e.platform < RECORD_PLATFORMS) {
      const start = this.rStart.get(u);
      const end = this.rEnd.get(u);
      if (end + gap + this.grace > streamTime && t > start - gap && t < end + gap) {
        // The common case: the user's one open session, in its record, takes the event.
        if (t < start) this.rStart.set(u, t);
        if (t > end) this.rEnd.set(u, t);
        this.rEvents.set(u, this.rEvents.get(u) + 1);
        const stage = this.stageOf(e);
        this.rPlatformsStages.set(u, this.rPlatformsStages.get(u) | (1 << e.platform) | (stage << RECORD_PLATFORMS));
        if (stage !== 0) {
          if (stage === STAGE_PAGE_VIEW) this.rPageViews.set(u, this.rPageViews.get(u) + 1);
          else if (stage === STAGE_COMPLETED) {
            this.rTransactions.set(u, this.rTransactions.get(u) + 1);
            this.rUsd.set(u, this.rUsd.get(u) + e.amount * this.ctx.fx(e.currency));
          }
        }
        this.markDirty(u);
        this.touchHour(t < start ? t : start);
        return;
      }
    }
    this.mergeEvent(e, streamTime);
  }

  /** Any other case: sessions as objects; the event joins (and may merge) the open sessions within the gap, or starts one. */
  private mergeEvent(e: ScratchEvent, streamTime: number): void {
    const t = e.ts;
    const open = this.openOf(e.user);
    let merged: Session | null = null;
    let list: Session[] | null = null;
    if (open !== undefined && !Array.isArray(open) && open.end + this.gap + this.grace > streamTime && t > open.start - this.gap && t < open.end + this.gap) {
      merged = open;
    } else {
      list = open === undefined ? [] : Array.isArray(open) ? open : [open];
      // Merge every open session within the gap of this event.
      for (let i = 0; i < list.length; i++) {
        const s = list[i];
        // A session whose close time has come is closed, even if the sweep has not run yet:
        // merging must not depend on when the sweep runs (batch boundaries).
        if (s.end + this.gap + this.grace <= streamTime) continue;
        if (t > s.start - this.gap && t < s.end + this.gap) {
          if (!merged) merged = s;
          else {
            merged.start = Math.min(merged.start, s.start);
            merged.end = Math.max(merged.end, s.end);
            merged.events += s.events;
            merged.pageViews += s.pageViews;
            merged.transactions += s.transactions;
            merged.usd += s.usd;
            for (const p of s.platforms) if (!merged.platforms.includes(p)) merged.platforms.push(p);
            merged.stages |= s.stages;
            list.splice(i, 1);
            i--;
          }
        }
      }
      if (!merged) {
        merged = { start: t, end: t, events: 0, pageViews: 0, transactions: 0, usd: 0, platforms: [e.platform], stages: 0, lastPlatform: e.platform, bucket: -1 };
        list.push(merged);
      }
    }
    if (t < merged.start) merged.start = t;
    if (t > merged.end) merged.end = t;
    merged.events++;
    if (merged.lastPlatform !== e.platform) {
      if (!merged.platforms.includes(e.platform)) merged.platforms.push(e.platform);
      merged.lastPlatform = e.platform;
    }
    const stage = this.stageOf(e);
    merged.stages |= stage;
    if (stage === STAGE_PAGE_VIEW) merged.pageViews++;
    else if (stage === STAGE_COMPLETED) {
      merged.transactions++;
      merged.usd += e.amount * this.ctx.fx(e.currency);
    }
    // Close times only move later: a session is scheduled once, and rescheduled lazily when its
    // bucket comes due and it turns out to have grown.
    if (merged.events === 1) this.schedule(e.user, merged);
    if (list === null) this.setOpen(e.user, merged);
    else this.setList(e.user, list);
    this.markDirty(e.user);
    this.touchHour(merged.start);
  }

  /** The funnel hour of a changed session (the hour it started) is a changed window. */
  private touchHour(sessionStart: number): void {
    const hour = tumblingStart(sessionStart, HOUR);
    if (hour !== this.lastChangedHour || this.changed.size === 0) {
      this.lastChangedHour = hour;
      this.changed.add(hour);
    }
  }

  private groupIndex(user: number): number {
    const x = this.groupOf.get(user);
    if (x >= 0) return x & GROUP_BITS;
    const g = openGroupOf(this.ctx.vocab.users.value(user));
    this.groupOf.set(user, g);
    return g;
  }

  private setStoreFlags(user: number, set: number, clear: number): void {
    const x = this.groupOf.get(user);
    const g = x >= 0 ? x : openGroupOf(this.ctx.vocab.users.value(user));
    this.groupOf.set(user, (g & ~clear) | set);
  }

  /** The user's open sessions changed: written at the next commit, with its group or under its own key. */
  private markDirty(user: number): void {
    if (this.dirtyTag.get(user) === this.epoch) return;
    this.dirtyTag.set(user, this.epoch);
    this.dirtyUsers.push(user);
    const g = this.groupIndex(user);
    if (this.groupDirty[g] !== this.epoch) {
      this.groupDirty[g] = this.epoch;
      this.groupDirtyUsers[g] = 0;
      this.dirtyGroups.push(g);
    }
    // Users new to the delta (foreign users never enter it): what decides between a delta and a whole write.
    if (this.owner.get(user) === this.instance && (this.groupOf.get(user) & IN_DELTA) === 0) this.groupDirtyUsers[g]++;
  }

  /**
   * Bucket = the first whole second at or after the close time: a due bucket holds only due
   * sessions. Returns whether the session's bucket changed (a copy read from the record must be written back).
   */
  private schedule(user: number, s: Session): boolean {
    const sec = Math.ceil((s.end + this.gap + this.grace) / 1000);
    if (s.bucket >= sec) return false;
    s.bucket = sec;
    let b = this.closeBuckets.get(sec);
    if (!b) this.closeBuckets.set(sec, (b = []));
    b.push(user);
    return true;
  }

  onStreamTime(streamTime: number): void {
    const now = Math.floor(streamTime / 1000);
    if (this.lastBucket < 0 || now - this.lastBucket > this.closeBuckets.size * 4) {
      for (const sec of [...this.closeBuckets.keys()].sort((a, b) => a - b)) if (sec <= now) this.closeDue(sec, streamTime);
    } else {
      for (let sec = this.lastBucket + 1; sec <= now; sec++) if (this.closeBuckets.has(sec)) this.closeDue(sec, streamTime);
    }
    this.lastBucket = now;
    // The next bucket may hold sessions due within the current second: close those, keep the bucket.
    const partial = this.closeBuckets.get(now + 1);
    if (partial) for (const user of partial) this.closeUser(user, streamTime, false);
  }

  private closeDue(sec: number, streamTime: number): void {
    const users = this.closeBuckets.get(sec)!;
    this.closeBuckets.delete(sec);
    for (const user of users) this.closeUser(user, streamTime);
  }

  private closeUser(user: number, streamTime: number, reschedule = true): void {
    const open = this.openOf(user);
    if (open === undefined) return;
    const list = Array.isArray(open) ? open : [open];
    let closedAny = false;
    let rescheduled = false;
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      if (s.end + this.gap + this.grace <= streamTime) {
        this.close(user, s);
        list.splice(i, 1);
        i--;
        closedAny = true;
      } else if (reschedule && this.schedule(user, s)) {
        rescheduled = true;
      }
    }
    if (closedAny || rescheduled) this.setList(user, list);
    if (closedAny) this.markDirty(user);
  }

  private close(user: number, s: Session): void {
    const hour = tumblingStart(s.start, HOUR);
    let f = this.funnel.get(hour);
    if (!f) {
      // An hour that left memory (a very long session) continues from its committed totals.
      const stored = this.ctx.read(this.name, ['funnel', hour]) as FunnelStats | undefined;
      f = stored ? { sessions: stored.sessions, reached: [...stored.reached] } : { sessions: 0, reached: [0, 0, 0, 0, 0] };
      this.funnel.set(hour, f);
    }
    f.sessions++;
    const depth = funnelDepth(s.stages);
    for (let k = 0; k < depth; k++) f.reached[k]++;
    this.dirtyFunnel.add(hour);
    this.changed.add(hour);
    this.closedToWrite.push([user, s]);
    const userId = this.ctx.vocab.users.value(user);
    const profile = this.ctx.profile(user);
    this.ctx.output({
      topic: 'user-session-analytics',
      key: `${userId}|${s.start}`,
      value: {
        userId, sessionStart: s.start, sessionEnd: s.end, durationMs: s.end - s.start, events: s.events, pageViews: s.pageViews,
        transactions: s.transactions, revenueUsd: Math.round(s.usd * 100) / 100, platforms: [...s.platforms].map((p) => this.ctx.vocab.sym(p)).sort(),
        segment: this.ctx.vocab.sym(profile.segment), funnelDepth: depth,
      },
    });
  }

  private encodeClosed(s: Session): StoredSession {
    return {
      start: s.start, end: s.end, events: s.events, pageViews: s.pageViews, transactions: s.transactions, usd: s.usd,
      // Sorted: the order events arrived in is not kept (the record holds platforms as a mask).
      platforms: s.platforms.map((p) => this.ctx.vocab.sym(p)).sort(), stages: s.stages,
    };
  }

  /** Sorted platform names of a record's platform mask (few distinct masks: shared, never mutated). */
  private readonly platformNames = new Map<number, string[]>();

  private encodeOpen(s: Session): StoredOpenSession {
    return [s.start, s.end, s.events, s.pageViews, s.transactions, s.usd, s.stages, ...s.platforms.map((p) => this.ctx.vocab.sym(p)).sort()];
  }

  /** A user's open sessions as its own key holds them; one in the user's record is encoded from it (no Session copy). */
  private storedOpen(user: number): StoredOpenSession[] | undefined {
    if (this.owner.get(user) === this.instance && this.slot.get(user) === INLINE) {
      const ps = this.rPlatformsStages.get(user);
      const mask = ps & PLATFORM_MASK;
      let platforms = this.platformNames.get(mask);
      if (!platforms) {
        platforms = symbolsOfMask(mask).map((p) => this.ctx.vocab.sym(p)).sort();
        this.platformNames.set(mask, platforms);
      }
      return [[this.rStart.get(user), this.rEnd.get(user), this.rEvents.get(user), this.rPageViews.get(user), this.rTransactions.get(user), this.rUsd.get(user), ps >>> RECORD_PLATFORMS, ...platforms]];
    }
    const list = this.listOf(user);
    return list.length ? list.map((s) => this.encodeOpen(s)) : undefined;
  }

  private readonly writer = new GroupWriter();
  /** Encoded platform names by a record's platform mask (few distinct masks). */
  private readonly platformBytes = new Map<number, Uint8Array>();

  /**
   * Writes a group whole: its value (deleted when no user of it has open sessions) and the deletes
   * of its users' own keys, which the value supersedes. Users without open sessions leave its list.
   */
  private writeGroup(g: number, write: (key: StateKey, value: unknown) => void): void {
    const list = this.groupUsers[g];
    if (!list) return;
    const w = this.writer;
    w.begin();
    let n = 0;
    for (const u of list) {
      const x = this.groupOf.get(u);
      if (x & HAS_KEY) write(['open', this.ctx.vocab.users.value(u)], undefined);
      if (this.owner.get(u) === this.instance && this.writeUser(w, u)) {
        this.groupOf.set(u, (x & GROUP_BITS) | IN_GROUP);
        list[n++] = u;
      } else {
        this.groupOf.set(u, x & GROUP_BITS);
        if (this.owner.get(u) === this.instance && this.slot.get(u) === LISTED_NONE) this.slot.set(u, NONE);
      }
    }
    list.length = n;
    if (n === 0) this.groupUsers[g] = undefined;
    write(['openGroup', g], n === 0 ? undefined : w.take());
    const delta = this.deltaUsers[g];
    if (delta) for (const u of delta) this.groupOf.set(u, this.groupOf.get(u) & ~IN_DELTA);
    this.deltaUsers[g] = undefined;
    if (this.deltaStored[g]) {
      this.deltaStored[g] = 0;
      write(['openDelta', g], undefined);
    }
  }

  /** Lists a user (not in it yet) in group g's delta. */
  private addToDelta(g: number, user: number): void {
    this.setStoreFlags(user, IN_DELTA, 0);
    const list = this.deltaUsers[g];
    if (list) list.push(user);
    else this.deltaUsers[g] = [user];
  }

  /** Writes a group's delta: every user changed since the group was last written whole (an empty entry: none open). */
  private writeDelta(g: number, write: (key: StateKey, value: unknown) => void): void {
    const list = this.deltaUsers[g];
    if (!list || list.length === 0) return;
    const w = this.writer;
    const users = this.ctx.vocab.users;
    w.begin();
    // Every user listed here is this instance's: an instance's records are never claimed while it is open.
    for (const u of list) {
      const x = this.groupOf.get(u);
      if (x & HAS_KEY) {
        write(['open', users.value(u)], undefined);
        this.groupOf.set(u, x & ~HAS_KEY);
      }
      if (!this.writeUser(w, u)) {
        w.interned(users, u);
        w.u16(0);
      }
    }
    this.deltaStored[g] = 1;
    write(['openDelta', g], w.take());
  }

  /** A user's entry of its group; false (nothing written) when the user has no open session. */
  private writeUser(w: GroupWriter, u: number): boolean {
    const users = this.ctx.vocab.users;
    if (this.owner.get(u) === this.instance && this.slot.get(u) === INLINE) {
      const ps = this.rPlatformsStages.get(u);
      const mask = ps & PLATFORM_MASK;
      let platforms = this.platformBytes.get(mask);
      if (!platforms) {
        platforms = encodePlatformNames(symbolsOfMask(mask).map((p) => this.ctx.vocab.sym(p)).sort());
        this.platformBytes.set(mask, platforms);
      }
      w.interned(users, u);
      w.u16(1);
      writeSession(w, this.rStart.get(u), this.rEnd.get(u), this.rUsd.get(u), this.rEvents.get(u), this.rPageViews.get(u), this.rTransactions.get(u), ps >>> RECORD_PLATFORMS, platforms);
      return true;
    }
    const list = this.listOf(u);
    if (list.length === 0) return false;
    w.interned(users, u);
    w.u16(list.length);
    for (const s of list) {
      const names = encodePlatformNames(s.platforms.map((p) => this.ctx.vocab.sym(p)).sort());
      writeSession(w, s.start, s.end, s.usd, s.events, s.pageViews, s.transactions, s.stages, names);
    }
    return true;
  }

  /**
   * Not idempotent: the group lists, deltas and store flags change as the writes are made, before
   * the transaction is known to have committed. A failed commit must therefore never be retried on
   * the same instances: the worker discards the shard's memory and the dispatcher reopens it from
   * its last commit (shard-worker.ts), where the restore rebuilds them from the store.
   */
  collectWrites(write: (key: StateKey, value: unknown) => void): void {
    const users = this.ctx.vocab.users;
    // Groups in key order: neighbouring puts land on the same or the next B-tree page.
    this.dirtyGroups.sort((a, b) => a - b);
    for (const g of this.dirtyGroups) {
      const listed = this.groupUsers[g]?.length ?? 0;
      const inDelta = (this.deltaUsers[g]?.length ?? 0) + this.groupDirtyUsers[g];
      if (listed > 0 && this.wholeShare <= 1 && inDelta >= this.wholeShare * listed) {
        this.writeGroup(g, write);
        this.groupWhole[g] = this.epoch;
      }
    }
    for (const u of this.dirtyUsers) {
      if (this.owner.get(u) !== this.instance) {
        // Another instance's record: always an own key (see groupUsers).
        write(['open', users.value(u)], this.storedOpen(u) ?? []);
        this.foreignKeys.add(u);
        continue;
      }
      const x = this.groupOf.get(u);
      const g = x & GROUP_BITS;
      if (this.groupWhole[g] === this.epoch) continue;
      if ((x & IN_DELTA) === 0) this.addToDelta(g, u);
      if (this.deltaWritten[g] !== this.epoch) {
        this.deltaWritten[g] = this.epoch;
        this.deltaGroups.push(g);
      }
    }
    this.deltaGroups.sort((a, b) => a - b);
    for (const g of this.deltaGroups) this.writeDelta(g, write);
    for (const [user, s] of this.closedToWrite) {
      write(['closed', users.value(user), s.start], this.encodeClosed(s));
      // Secondary index by end time, so retention deletes old sessions without a full scan.
      write(['closedByEnd', s.end, users.value(user), s.start], 1);
    }
    for (const hour of this.dirtyFunnel) write(['funnel', hour], this.funnel.get(hour));
  }

  committed(): void {
    this.dirtyGroups.length = 0;
    this.deltaGroups.length = 0;
    this.dirtyUsers.length = 0;
    this.epoch = nextEpoch();
    this.closedToWrite.length = 0;
    this.dirtyFunnel.clear();
    // Funnel hours stay in memory only while sessions may still close into them.
    if (this.funnel.size > 48) {
      const hours = [...this.funnel.keys()].sort((a, b) => a - b);
      for (const h of hours.slice(0, hours.length - 48)) this.funnel.delete(h);
    }
  }

  /** Open sessions and funnel hours: closed sessions (and their index) stay in the store. */
  restoreRanges(): KeyRange[] {
    // Groups, then deltas, then own keys: each is newer than the one before (see OPEN_GROUPS).
    return [
      { start: ['funnel'], end: ['funnel\u0000'] }, { start: ['openGroup'], end: ['openGroup\u0000'] },
      { start: ['openDelta'], end: ['openDelta\u0000'] }, { start: ['open'], end: ['open\u0000'] },
    ];
  }

  private restoreUser(userId: string, stored: StoredSession[]): number {
    const user = this.ctx.vocab.users.internString(userId);
    const list: Session[] = stored.map((s) => ({
      start: s.start, end: s.end, events: s.events, pageViews: s.pageViews, transactions: s.transactions, usd: s.usd,
      platforms: [...new Set(s.platforms.map((p) => this.ctx.vocab.symOf(p)))], stages: s.stages, lastPlatform: -1, bucket: -1,
    }));
    for (const s of list) this.schedule(user, s);
    this.setList(user, list);
    this.lastBucket = -1;
    return user;
  }

  restore(key: StateKey, value: unknown, _streamTime: number): void {
    if (key[0] === 'openGroup') {
      for (const [userId, sessions] of openGroupEntries(value)) {
        const user = this.restoreUser(userId, sessions);
        if (this.owner.get(user) === this.instance) this.setStoreFlags(user, IN_GROUP, 0);
        // Another instance's record: its own key must say what the group entry no longer may.
        else this.markDirty(user);
      }
    } else if (key[0] === 'openDelta') {
      const g = key[1] as number;
      this.deltaStored[g] = 1;
      for (const [userId, sessions] of openGroupEntries(value)) {
        const user = this.restoreUser(userId, sessions);
        if (this.owner.get(user) === this.instance) {
          const x = this.groupOf.get(user);
          if (x < 0 || (x & IN_DELTA) === 0) this.addToDelta(g, user);
        } else if (sessions.length > 0) {
          // Another instance's record (a free one was claimed above): its own key must say what the
          // delta's entry no longer may. An empty entry of a user not claimed is not needed: no
          // entry of the group was restored for the user (that would have claimed it, or marked it).
          this.markDirty(user);
        }
      }
    } else if (key[0] === 'open') {
      const user = this.restoreUser(key[1] as string, openSessionsOf(value));
      if (this.owner.get(user) === this.instance) this.setStoreFlags(user, HAS_KEY, 0);
      else this.foreignKeys.add(user);
    } else if (key[0] === 'funnel') {
      this.funnel.set(key[1] as number, value as FunnelStats);
    }
  }

  get dirtyCount(): number {
    return this.dirtyUsers.length + this.closedToWrite.length;
  }
}
