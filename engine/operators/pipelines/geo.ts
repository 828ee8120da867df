import { EventKind } from '../../codec/types.js';
import type { ScratchEvent } from '../../workers/scratch.js';
import { MemberLog, WindowedPipeline, type PipelineContext, type StateKey } from '../api.js';
import { HOUR, tumblingStart } from '../windows.js';
import { IntSet } from '../int-set.js';
import { isUserActivity } from './traffic.js';
import type { UserColumn } from '../../workers/symbols.js';

export interface GeoStats {
  events: number;
  users: IntSet;
  usd: number;
  region: number;
  /** Users added since the last commit (stored as member chunks). */
  log: MemberLog;
}

/** Events, exact users and revenue per country (region alongside), per 1-hour window. */
export class GeoPipeline extends WindowedPipeline<GeoStats> {
  private readonly seenHour: UserColumn;
  private readonly seenPartition: UserColumn;
  private readonly seenCountry: UserColumn;

  constructor(ctx: PipelineContext) {
    const users = ctx.vocab.users;
    super('geo', ctx, HOUR, {
      create: () => ({ events: 0, users: new IntSet(), usd: 0, region: ctx.vocab.UNKNOWN, log: new MemberLog(ctx.config.memberChunkMerge) }),
      keyToString: (k) => ctx.vocab.sym(k),
      keyFromString: (s) => ctx.vocab.symOf(s),
      // The users are in member chunks; `n` is their number.
      encode: (v) => ({ events: v.events, n: v.users.size, usd: v.usd, region: ctx.vocab.sym(v.region) }),
      decode: (x) => {
        const o = (x ?? { events: 0, usd: 0, region: 'UNKNOWN' }) as { events: number; users?: string[]; usd: number; region: string };
        // Stored before member chunks: the users in the value.
        const set = new IntSet();
        for (const s of o.users ?? []) set.add(users.internString(s));
        const log = new MemberLog(ctx.config.memberChunkMerge);
        log.needsFull = o.users !== undefined;
        return { events: o.events, users: set, usd: o.usd, region: ctx.vocab.symOf(o.region), log };
      },
    });
    this.seenHour = ctx.vocab.column('geo.hour');
    this.seenPartition = ctx.vocab.column('geo.partition');
    this.seenCountry = ctx.vocab.column('geo.country');
  }

  protected override readonly members = {
    log: (v: GeoStats) => v.log,
    delta: (_v: GeoStats, fresh: number[]) => fresh.map((u) => this.ctx.vocab.users.value(u)),
    full: (v: GeoStats) => v.users.toArray().map((u) => this.ctx.vocab.users.value(u)),
  };

  override restore(key: StateKey, value: unknown, streamTime: number): void {
    if (key.length < 3) return super.restore(key, value, streamTime);
    const [ws, country, chunk] = key as [number, string, number];
    if (this.store.isLate(ws, streamTime)) return;
    const k = this.ctx.vocab.symOf(country);
    if (!this.store.windows.get(ws)?.has(k)) this.store.restore(ws, country, undefined);
    const v = this.store.windows.get(ws)!.get(k)!.value;
    for (const s of value as string[]) v.users.add(this.ctx.vocab.users.internString(s));
    v.log.restored(chunk);
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (!isUserActivity(e)) return;
    const p = this.ctx.profile(e.user);
    const ws = tumblingStart(e.ts, HOUR);
    const entry = this.store.entryFor(ws, p.country, streamTime);
    if (!entry) return;
    const v = entry.value;
    v.events++;
    // Counted once per (hour, partition, country): the columns remember the last one per user.
    const hour = ws / HOUR;
    if (this.seenHour.get(e.user) !== hour || this.seenPartition.get(e.user) !== this.ctx.partition || this.seenCountry.get(e.user) !== p.country) {
      if (v.users.add(e.user)) v.log.add(e.user);
      this.seenHour.set(e.user, hour);
      this.seenPartition.set(e.user, this.ctx.partition);
      this.seenCountry.set(e.user, p.country);
    }
    v.region = p.region;
    if (e.kind === EventKind.TRANSACTION && e.action === this.ctx.vocab.COMPLETED) v.usd += e.amount * this.ctx.fx(e.currency);
  }
}
