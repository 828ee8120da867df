import { EventKind } from '../../codec/types.js';
import type { ScratchEvent } from '../../workers/scratch.js';
import { WindowedPipeline, singleKeyCodec, symbolKeyCodec, type PipelineContext } from '../api.js';
import type { UserColumn } from '../../workers/symbols.js';
import type { WindowEntry } from '../keyed-windows.js';
import { MINUTE, tumblingStart } from '../windows.js';

/** Events carrying user activity (IoT readings are a device's, not a user's). */
export function isUserActivity(e: ScratchEvent): boolean {
  return e.user >= 0 && e.kind !== EventKind.IOT;
}

interface ActiveUsers {
  users: Set<number>;
  byPlatform: Map<number, Set<number>>;
}

/** Active users per 1-minute tumbling window, exact, with a platform breakdown. */
export class ActiveUsersPipeline extends WindowedPipeline<ActiveUsers> {
  // Hot path: a user already counted in this minute on this platform changes nothing. The columns
  // remember, per user, the minute (tagged with the partition) and the platforms counted in it.
  private readonly seenMinute: UserColumn;
  private readonly seenPartition: UserColumn;
  private readonly seenMask: UserColumn;

  constructor(ctx: PipelineContext) {
    const users = ctx.vocab.users;
    super('active_users', ctx, MINUTE, singleKeyCodec<ActiveUsers>(
      () => ({ users: new Set(), byPlatform: new Map() }),
      (v) => ({
        u: [...v.users].map((u) => users.values[u]),
        p: Object.fromEntries([...v.byPlatform].map(([p, s]) => [ctx.vocab.sym(p), [...s].map((u) => users.values[u])])),
      }),
      (x) => {
        const o = x as { u: string[]; p: Record<string, string[]> };
        return {
          users: new Set(o.u.map((s) => users.internString(s))),
          byPlatform: new Map(Object.entries(o.p).map(([p, list]) => [ctx.vocab.symOf(p), new Set(list.map((s) => users.internString(s)))])),
        };
      },
    ));
    this.seenMinute = ctx.vocab.column('active_users.minute');
    this.seenPartition = ctx.vocab.column('active_users.partition');
    this.seenMask = ctx.vocab.column('active_users.mask', 0);
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
    const entry = this.entryFor(ws, 0, streamTime);
    if (!entry) return;
    const v = entry.value;
    v.users.add(u);
    let s = v.byPlatform.get(e.platform);
    if (!s) v.byPlatform.set(e.platform, (s = new Set()));
    s.add(u);
    if (seen) this.seenMask.set(u, this.seenMask.get(u) | bit);
    else {
      this.seenMinute.set(u, minute);
      this.seenPartition.set(u, p);
      this.seenMask.set(u, bit);
    }
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
    const entry = this.entryFor(tumblingStart(e.ts, MINUTE), e.platform, streamTime);
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
    const entry = this.entryFor(tumblingStart(e.ts, ErrorRatePipeline.SIZE), 0, streamTime);
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
    const entry = this.entryFor(tumblingStart(e.ts, MINUTE), e.action, streamTime);
    if (entry) entry.value.n++;
  }
}
