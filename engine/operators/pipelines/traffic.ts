import { EventKind } from '../../codec/types.js';
import type { ScratchEvent } from '../../workers/scratch.js';
import { MemberLog, WindowedPipeline, singleKeyCodec, symbolKeyCodec, type PipelineContext, type StateKey } from '../api.js';
import type { UserColumn } from '../../workers/symbols.js';
import type { WindowEntry } from '../keyed-windows.js';
import { MINUTE, tumblingStart } from '../windows.js';
import { IntSet } from '../int-set.js';

/** Events carrying user activity (IoT readings are a device's, not a user's). */
export function isUserActivity(e: ScratchEvent): boolean {
  return e.user >= 0 && e.kind !== EventKind.IOT;
}

interface ActiveUsers {
  users: IntSet;
  byPlatform: Map<number, IntSet>;
  /** Members added since the last commit, as (platform, user) pairs; platform -1: the user set. */
  log: MemberLog;
}

/** A stored window of active users: counts in the value, the user sets in member chunks. */
interface StoredActiveUsers {
  n: number;
  p: Record<string, number>;
}

/** A member chunk (and the value as stored before member chunks): user ids, per platform too. */
interface ActiveUsersChunk {
  u: string[];
  p: Record<string, string[]>;
}

/** Active users per 1-minute tumbling window, exact, with a platform breakdown. */
export class ActiveUsersPipeline extends WindowedPipeline<ActiveUsers> {
  // Hot path: a user already counted in this minute on this platform changes nothing. The columns
  // remember, per user, the minute (tagged with the partition) and the platforms counted in it.
  private readonly seenMinute: UserColumn;
  private readonly seenPartition: UserColumn;
  private readonly seenMask: UserColumn;

  constructor(ctx: PipelineContext) {
    super('active_users', ctx, MINUTE, singleKeyCodec<ActiveUsers>(
      () => ({ users: new IntSet(), byPlatform: new Map(), log: new MemberLog(ctx.config.memberChunkMerge) }),
      (v) => ({ n: v.users.size, p: Object.fromEntries([...v.byPlatform].map(([p, s]) => [ctx.vocab.sym(p), s.size])) }) satisfies StoredActiveUsers,
      (x) => {
        const v: ActiveUsers = { users: new IntSet(), byPlatform: new Map(), log: new MemberLog(ctx.config.memberChunkMerge) };
        // Stored before member chunks: the sets themselves. Now: counts, and the sets come in chunks.
        if (x !== undefined && 'u' in (x as object)) {
          this.addChunk(v, x as ActiveUsersChunk);
          v.log.needsFull = true;
        }
        return v;
      },
    ));
    this.seenMinute = ctx.vocab.column('active_users.minute');
    this.seenPartition = ctx.vocab.column('active_users.partition');
    this.seenMask = ctx.vocab.column('active_users.mask', 0);
  }

  private addChunk(v: ActiveUsers, c: ActiveUsersChunk): void {
    const users = this.ctx.vocab.users;
    for (const s of c.u) v.users.add(users.internString(s));
    for (const [p, list] of Object.entries(c.p)) {
      const sym = this.ctx.vocab.symOf(p);
      let set = v.byPlatform.get(sym);
      if (!set) v.byPlatform.set(sym, (set = new IntSet()));
      for (const s of list) set.add(users.internString(s));
    }
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (!isUserActivity(e)) return;
    const ws = tumblingStart(e.ts, MINUTE);
    const minute = ws / MINUTE;
    const bit = e.platform < 31 ? 1 << e.platform : 0;
    const u = e.user;
    const p = this.ctx.partition;
    const seen = this.seenMinute.get(u) === minute && this.seenPartition.get(u) === p;
    if (bit !== 0 && seen && (this.seenMask.get(u) & bit) !== 0 && !this.store.isLate(ws, streamTime)) return;
    const entry = this.store.entryFor(ws, 0, streamTime);
    if (!entry) return;
    const v = entry.value;
    if (v.users.add(u)) v.log.fresh.push(-1, u);
    let s = v.byPlatform.get(e.platform);
    if (!s) v.byPlatform.set(e.platform, (s = new IntSet()));
    if (s.add(u)) v.log.fresh.push(e.platform, u);
    if (seen) this.seenMask.set(u, this.seenMask.get(u) | bit);
    else {
      this.seenMinute.set(u, minute);
      this.seenPartition.set(u, p);
      this.seenMask.set(u, bit);
    }
  }

  protected override readonly members = {
    log: (v: ActiveUsers) => v.log,
    delta: (_v: ActiveUsers, fresh: number[]): ActiveUsersChunk => {
      const users = this.ctx.vocab.users;
      const c: ActiveUsersChunk = { u: [], p: {} };
      for (let i = 0; i < fresh.length; i += 2) {
        const id = users.value(fresh[i + 1]);
        if (fresh[i] === -1) c.u.push(id);
        else (c.p[this.ctx.vocab.sym(fresh[i])] ??= []).push(id);
      }
      return c;
    },
    full: (v: ActiveUsers): ActiveUsersChunk => {
      const users = this.ctx.vocab.users;
      return { u: v.users.toArray().map((u) => users.value(u)), p: Object.fromEntries([...v.byPlatform].map(([p, s]) => [this.ctx.vocab.sym(p), s.toArray().map((u) => users.value(u))])) };
    },
  };

  override restore(key: StateKey, value: unknown, streamTime: number): void {
    if (key.length < 3) return super.restore(key, value, streamTime);
    const [ws, , chunk] = key as [number, string, number];
    if (this.store.isLate(ws, streamTime)) return;
    const entry = this.store.windows.get(ws)?.get(0) ?? this.restoredEntry(ws);
    this.addChunk(entry.value, value as ActiveUsersChunk);
    entry.value.log.restored(chunk);
  }

  /** The entry of a window whose chunks come without its value (not written that way; read defensively). */
  private restoredEntry(ws: number) {
    this.store.restore(ws, '', undefined);
    return this.store.windows.get(ws)!.get(0)!;
  }

  protected override onClose(ws: number, entries: Map<number, WindowEntry<ActiveUsers>>): void {
    const v = entries.get(0)!.value;
    const breakdown: Record<string, string> = {};
    for (const [p, s] of v.byPlatform) breakdown[this.ctx.vocab.sym(p)] = String(s.size);
    this.ctx.output({
      topic: 'dashboard-metrics',
      key: `active_users|p${this.ctx.partition}|${ws}`,
      value: { metric: 'active_users', key: `p${this.ctx.partition}`, windowStart: ws, windowEnd: ws + MINUTE, value: v.users.size, breakdown },
    });
  }
}

interface Count {
  n: number;
  errors: number;
}

/** Events per platform per 1-minute window (events/s by platform), with error counts. */
export class PlatformEventsPipeline extends WindowedPipeline<Count> {
  constructor(ctx: PipelineContext) {
    super('platform_events', ctx, MINUTE, symbolKeyCodec<Count>(ctx, () => ({ n: 0, errors: 0 })));
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    const entry = this.store.entryFor(tumblingStart(e.ts, MINUTE), e.platform, streamTime);
    if (!entry) return;
    entry.value.n++;
    if (e.action === this.ctx.vocab.ERROR) entry.value.errors++;
  }

  protected override onClose(ws: number, entries: Map<number, WindowEntry<Count>>): void {
    for (const [platform, e] of entries) {
      const p = this.ctx.vocab.sym(platform);
      this.ctx.output({
        topic: 'dashboard-metrics',
        key: `platform_events|p${this.ctx.partition}|${p}|${ws}`,
        value: { metric: 'platform_events', key: p, windowStart: ws, windowEnd: ws + MINUTE, value: e.value.n, breakdown: { errors: String(e.value.errors), partition: String(this.ctx.partition) } },
      });
    }
  }
}

/** Error share of web and mobile events per 5-minute window (partials; the alert is global). */
export class ErrorRatePipeline extends WindowedPipeline<Count> {
  static readonly SIZE = 5 * MINUTE;

  constructor(ctx: PipelineContext) {
    super('error_rate', ctx, ErrorRatePipeline.SIZE, singleKeyCodec<Count>(() => ({ n: 0, errors: 0 })));
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (e.kind !== EventKind.WEB && e.kind !== EventKind.MOBILE) return;
    const entry = this.store.entryFor(tumblingStart(e.ts, ErrorRatePipeline.SIZE), 0, streamTime);
    if (!entry) return;
    entry.value.n++;
    if (e.action === this.ctx.vocab.ERROR) entry.value.errors++;
  }
}

/** User actions (LOGIN, LOGOUT, LOGIN_FAILED...) per type per 1-minute window. */
export class UserActionsPipeline extends WindowedPipeline<{ n: number }> {
  constructor(ctx: PipelineContext) {
    super('user_actions', ctx, MINUTE, symbolKeyCodec(ctx, () => ({ n: 0 })));
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (e.kind !== EventKind.USER_ACTION) return;
    const entry = this.store.entryFor(tumblingStart(e.ts, MINUTE), e.action, streamTime);
    if (entry) entry.value.n++;
  }
}
