import { EventKind } from '../../codec/types.js';
import type { ScratchEvent } from '../../workers/scratch.js';
import { WindowedPipeline, singleKeyCodec, type PipelineContext } from '../api.js';
import type { WindowEntry } from '../keyed-windows.js';
import { MINUTE, hoppingStarts } from '../windows.js';

export interface Revenue {
  /** Sum of completed transaction amounts converted to USD. */
  usd: number;
  count: number;
  /** Amounts in their own currency. */
  byCurrency: Record<string, number>;
  /** USD by the user's tier (UNKNOWN for users without a profile). */
  byTier: Record<string, number>;
}

/** Revenue in 5-minute windows advancing 1 minute, with currency and tier breakdowns. */
export class RevenuePipeline extends WindowedPipeline<Revenue> {
  static readonly SIZE = 5 * MINUTE;
  static readonly ADVANCE = MINUTE;
  private readonly starts: number[] = [];

  constructor(ctx: PipelineContext) {
    super('revenue', ctx, RevenuePipeline.SIZE, singleKeyCodec<Revenue>(() => ({ usd: 0, count: 0, byCurrency: {}, byTier: {} })));
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (e.kind !== EventKind.TRANSACTION || e.action !== this.ctx.vocab.COMPLETED) return;
    const usd = e.amount * this.ctx.fx(e.currency);
    const currency = this.ctx.vocab.sym(e.currency) || 'UNKNOWN';
    const tier = this.ctx.vocab.sym(this.ctx.profile(e.user).tier);
    const n = hoppingStarts(e.ts, RevenuePipeline.SIZE, RevenuePipeline.ADVANCE, this.starts);
    for (let i = 0; i < n; i++) {
      const entry = this.store.entryFor(this.starts[i], 0, streamTime);
      if (!entry) continue;
      const v = entry.value;
      v.usd += usd;
      v.count++;
      v.byCurrency[currency] = (v.byCurrency[currency] ?? 0) + e.amount;
      v.byTier[tier] = (v.byTier[tier] ?? 0) + usd;
    }
  }

  protected override onClose(ws: number, entries: Map<number, WindowEntry<Revenue>>): void {
    const v = entries.get(0)!.value;
    const breakdown: Record<string, string> = {};
    for (const [c, a] of Object.entries(v.byCurrency)) breakdown[`currency.${c}`] = a.toFixed(2);
    for (const [t, a] of Object.entries(v.byTier)) breakdown[`tier.${t}`] = a.toFixed(2);
    breakdown.count = String(v.count);
    this.ctx.output({
      topic: 'dashboard-metrics',
      key: `revenue|p${this.ctx.partition}|${ws}`,
      value: { metric: 'revenue_usd', key: `p${this.ctx.partition}`, windowStart: ws, windowEnd: ws + RevenuePipeline.SIZE, value: Math.round(v.usd * 100) / 100, breakdown },
    });
  }
}
