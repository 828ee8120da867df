import * as hdr from 'hdr-histogram-js';

/**
 * Latency histograms shared by loadgen and the benches: microsecond values, 3 significant
 * digits, up to one hour. Plain JS (no WebAssembly) so that histograms can be encoded, sent
 * between processes and added together.
 */
export type Histogram = hdr.Histogram;

export function latencyHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/** Adds an encoded histogram (from another thread or process) into `into`. */
export function addEncoded(into: Histogram, encoded: string): void {
  const h = hdr.decodeFromCompressedBase64(encoded, 32, false);
  into.add(h);
  h.destroy();
}

/** Value at percentile q in milliseconds (2 decimals), for a microsecond histogram. */
export function ms(h: Histogram, q: number): number {
  return h.totalCount === 0 ? 0 : Math.round(h.getValueAtPercentile(q) / 10) / 100;
}

/**
 * HdrHistogram's percentile distribution text (.hgrm), values in milliseconds: the format the
 * usual HdrHistogram plotters load (HistogramLogAnalyzer, hdrhistogram.github.io/HdrHistogram/plotFiles.html).
 */
export function hgrm(h: Histogram): string {
  return h.outputPercentileDistribution(5, 1000);
}
