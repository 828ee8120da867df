import { EventKind } from '../../codec/types.js';
import type { ScratchEvent } from '../../workers/scratch.js';
import { WindowedPipeline, type PipelineContext } from '../api.js';
import { HOUR, tumblingStart } from '../windows.js';
import { isUserActivity } from './traffic.js';
import type { UserColumn } from '../../workers/symbols.js';

export interface GeoStats {
  events: number;
  users: Set<number>;
  usd: number;
  region: number;
}

/** Events, exact users and revenue per country (region alongside), per 1-hour window. */
export class GeoPipeline extends WindowedPipeline<GeoStats> {
  private readonly seenHour: UserColumn;
  private readonly seenPartition: UserColumn;
  private readonly seenCountry: UserColumn;

  constructor(ctx: PipelineContext) {
    const users = ctx.vocab.users;
    super('geo', ctx, HOUR, {
      create: () => ({ events: 0, users: new Set(), usd: 0, region: ctx.vocab.UNKNOWN }),
      keyToString: (k) => ctx.vocab.sym(k),
      keyFromString: (s) => ctx.vocab.symOf(s),
      encode: (v) => ({ events: v.events, users: [...v.users].map((u) => users.values[u]), usd: v.usd, region: ctx.vocab.sym(v.region) }),
      decode: (x) => {
        const o = x as { events: number; users: string[]; usd: number; region: string };
        return { events: o.events, users: new Set(o.users.map((s) => users.internString(s))), usd: o.usd, region: ctx.vocab.symOf(o.region) };
      },
    });
    this.seenHour = ctx.vocab.column('geo.hour');
    this.seenPartition = ctx.vocab.column('geo.partition');
    this.seenCountry = ctx.vocab.column('geo.country');
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (!isUserActivity(e)) return;
    const p = this.ctx.profile(e.user);
    const ws = tumblingStart(e.ts, HOUR);
    const entry = this.entryFor(ws, p.country, streamTime);
    if (!entry) return;
    const v = entry.value;
    v.events++;
    // Counted once per (hour, partition, country): the columns remember the last one per user.
    const hour = ws / HOUR;
    if (this.seenHour.get(e.user) !== hour || this.seenPartition.get(e.user) !== this.ctx.partition || this.seenCountry.get(e.user) !== p.country) {
      v.users.add(e.user);
      this.seenHour.set(e.user, hour);
      this.seenPartition.set(e.user, this.ctx.partition);
      this.seenCountry.set(e.user, p.country);
    }
    v.region = p.region;
    if (e.kind === EventKind.TRANSACTION && e.action === this.ctx.vocab.COMPLETED) v.usd += e.amount * this.ctx.fx(e.currency);
  }
}
