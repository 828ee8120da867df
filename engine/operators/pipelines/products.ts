import { EventKind } from '../../codec/types.js';
import type { ScratchEvent } from '../../workers/scratch.js';
import { WindowedPipeline, type PipelineContext } from '../api.js';
import { HOUR, tumblingStart } from '../windows.js';

export interface ProductStats {
  views: number;
  carts: number;
  checkouts: number;
  purchases: number;
  units: number;
  usd: number;
}

/** Product performance per 1-hour window: views, carts, checkouts, purchases, units, revenue. */
export class ProductsPipeline extends WindowedPipeline<ProductStats> {
  constructor(ctx: PipelineContext) {
    const products = ctx.vocab.products;
    super('products', ctx, HOUR, {
      create: () => ({ views: 0, carts: 0, checkouts: 0, purchases: 0, units: 0, usd: 0 }),
      keyToString: (k) => products.value(k),
      keyFromString: (s) => products.internString(s),
      encode: (v) => v,
      decode: (x) => x as ProductStats,
    });
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (e.product < 0) return;
    const v = this.ctx.vocab;
    if (e.kind === EventKind.TRANSACTION) {
      if (e.action !== v.COMPLETED) return;
      const entry = this.store.entryFor(tumblingStart(e.ts, HOUR), e.product, streamTime);
      if (!entry) return;
      entry.value.purchases++;
      entry.value.units += e.quantity;
      entry.value.usd += e.amount * this.ctx.fx(e.currency);
      return;
    }
    if (e.kind !== EventKind.WEB && e.kind !== EventKind.MOBILE) return;
    const field = e.action === v.PRODUCT_VIEW ? 'views' : e.action === v.ADD_TO_CART ? 'carts' : e.action === v.CHECKOUT ? 'checkouts' : null;
    if (!field) return;
    const entry = this.store.entryFor(tumblingStart(e.ts, HOUR), e.product, streamTime);
    if (entry) entry.value[field]++;
  }
}
