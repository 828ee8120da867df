import * as hdr from 'hdr-histogram-js';
import { EventKind } from '../../codec/types.js';
import type { ScratchEvent } from '../../workers/scratch.js';
import { WindowedPipeline, type PipelineContext } from '../api.js';
import { MINUTE, tumblingStart } from '../windows.js';

const PAGE_SPAN = 2 ** 21;

/** Histograms record 1 ms .. 1 hour at 3 significant digits; mergeable across partitions. */
export function newLatencyHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000, numberOfSignificantValueDigits: 3, bitBucketSize: 32, useWebAssembly: false });
}

/**
 * Records a whole number of milliseconds in [1, 3,600,000] exactly as the library's recordValue
 * does, with integer bit arithmetic: recordValue computes the counts index with Math.log2, two
 * Math.pow and a division per value, 4 % of a worker's time in bench:engine. For a positive
 * integer below 2^31, floor(log2(v)) is 31 - clz32(v) and floor(v / 2^k) is v >>> k. A value
 * outside the counts array (never, for this histogram's range) takes the library's own path.
 */
export function recordLatency(h: hdr.JsHistogram, v: number): void {
  const bucket = Math.max(0, 31 - Math.clz32(v) - h.subBucketHalfCountMagnitude - h.unitMagnitude);
  const index = ((bucket + 1) << h.subBucketHalfCountMagnitude) + (v >>> (bucket + h.unitMagnitude)) - h.subBucketHalfCount;
  if (index >= h.countsArrayLength) {
    h.recordValue(v);
    return;
  }
  h.incrementCountAtIndex(index);
  h.updateMinAndMax(v);
  h.incrementTotalCount();
}

/**
 * Load/response time percentiles per platform and page per 1-minute window, as HDR histograms
 * (stored compressed, merged at query time: percentiles of a merge are exact at the histogram's
 * precision, unlike averages of percentiles).
 */
export class PerformancePipeline extends WindowedPipeline<hdr.JsHistogram> {
  constructor(ctx: PipelineContext) {
    super('performance', ctx, MINUTE, {
      create: () => newLatencyHistogram() as hdr.JsHistogram,
      // key = platform * 2^21 + page: both symbol ids fit (the table is bounded well below 2^21),
      // and the same formula is used live and on restore.
      keyToString: (k) => `${ctx.vocab.sym(Math.floor(k / PAGE_SPAN))}|${ctx.vocab.sym(k % PAGE_SPAN)}`,
      keyFromString: (s) => {
        const [p, page] = s.split('|');
        return ctx.vocab.symOf(p) * PAGE_SPAN + ctx.vocab.symOf(page);
      },
      encode: (h) => hdr.encodeIntoCompressedBase64(h),
      decode: (x) => hdr.decodeFromCompressedBase64(x as string, 32, false) as hdr.JsHistogram,
    });
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if ((e.kind !== EventKind.WEB && e.kind !== EventKind.MOBILE) || !(e.loadTimeMs >= 0)) return;
    const entry = this.store.entryFor(tumblingStart(e.ts, MINUTE), e.platform * PAGE_SPAN + e.page, streamTime);
    if (entry) recordLatency(entry.value, Math.max(1, Math.min(3_600_000, Math.round(e.loadTimeMs))));
  }
}

export interface SensorStats {
  n: number;
  sum: number;
  min: number;
  max: number;
  over: number;
}

/** IoT readings per sensor type per 1-minute window: count, mean, min, max, readings over threshold. */
export class IotPipeline extends WindowedPipeline<SensorStats> {
  constructor(ctx: PipelineContext) {
    super('iot', ctx, MINUTE, {
      create: () => ({ n: 0, sum: 0, min: Infinity, max: -Infinity, over: 0 }),
      keyToString: (k) => ctx.vocab.sym(k),
      keyFromString: (s) => ctx.vocab.symOf(s),
      encode: (v) => v,
      decode: (x) => x as SensorStats,
    });
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (e.kind !== EventKind.IOT) return;
    const entry = this.store.entryFor(tumblingStart(e.ts, MINUTE), e.action, streamTime);
    if (!entry) return;
    const v = entry.value;
    v.n++;
    v.sum += e.value;
    if (e.value < v.min) v.min = e.value;
    if (e.value > v.max) v.max = e.value;
    const threshold = this.ctx.config.alerts.iot[this.ctx.vocab.sym(e.action)];
    if (threshold !== undefined && e.value > threshold) v.over++;
  }
}
