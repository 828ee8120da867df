import { EventKind } from '../../codec/types.js';
import type { ScratchEvent } from '../../workers/scratch.js';
import { WindowedPipeline, type PipelineContext } from '../api.js';
import { HOUR, tumblingStart } from '../windows.js';
import { isUserActivity } from './traffic.js';

export interface GeoStats {
  events: number;
  users: Set<number>;
  usd: number;
  region: number;
}

/** Events, exact users and revenue per country (region alongside), per 1-hour window. */
export class GeoPipeline extends WindowedPipeline<GeoStats> {
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
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (!isUserActivity(e)) return;
    const p = this.ctx.profile(e.user);
    const entry = this.entryFor(tumblingStart(e.ts, HOUR), p.country, streamTime);
    if (!entry) return;
    const v = entry.value;
    v.events++;
    v.users.add(e.user);
    v.region = p.region;
    if (e.kind === EventKind.TRANSACTION && e.action === this.ctx.vocab.COMPLETED) v.usd += e.amount * this.ctx.fx(e.currency);
  }
}
