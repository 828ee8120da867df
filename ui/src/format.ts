/**
 * Number and time formatting for people: Intl formatters, created once per locale (creating
 * them is the expensive part). `locale` undefined = the browser's locale; tests pass one.
 */
const cache = new Map<string, Intl.NumberFormat>();

function nf(locale: string | undefined, key: string, options: Intl.NumberFormatOptions): Intl.NumberFormat {
  const k = `${locale ?? ''}|${key}`;
  let f = cache.get(k);
  if (!f) cache.set(k, (f = new Intl.NumberFormat(locale, options)));
  return f;
}

const DASH = '—';
const ok = (n: number | null | undefined): n is number => typeof n === 'number' && Number.isFinite(n);

/** 1234567 -> "1,234,567" */
export function fmtInt(n: number | null | undefined, locale?: string): string {
  return ok(n) ? nf(locale, 'int', { maximumFractionDigits: 0 }).format(n) : DASH;
}

/** 1234567 -> "1.2M" (tiles on a wall screen) */
export function fmtCompact(n: number | null | undefined, locale?: string): string {
  if (!ok(n)) return DASH;
  if (Math.abs(n) < 10_000) return fmtInt(n, locale);
  return nf(locale, 'compact', { notation: 'compact', maximumFractionDigits: 1 }).format(n);
}

/** Money in its currency: 1234.5, 'EUR' -> "€1,234.50"; unknown codes fall back to "1,234.50 XYZ". */
export function fmtMoney(n: number | null | undefined, currency = 'USD', locale?: string): string {
  if (!ok(n)) return DASH;
  try {
    return nf(locale, `cur-${currency}`, { style: 'currency', currency, maximumFractionDigits: 2, minimumFractionDigits: 2 }).format(n);
  } catch {
    return `${nf(locale, 'dec2', { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(n)} ${currency}`;
  }
}

/** Whole dollars for axes and tiles over 10k: 12345.67 -> "$12,346" */
export function fmtUsdShort(n: number | null | undefined, locale?: string): string {
  if (!ok(n)) return DASH;
  if (Math.abs(n) < 10_000) return fmtMoney(n, 'USD', locale);
  return nf(locale, 'usd0', { style: 'currency', currency: 'USD', maximumFractionDigits: 0 }).format(n);
}

/** Axis ticks: 12500 -> "$12.5K", 800 -> "$800" */
export function fmtUsdCompact(n: number | null | undefined, locale?: string): string {
  if (!ok(n)) return DASH;
  return nf(locale, 'usdc', { style: 'currency', currency: 'USD', notation: 'compact', maximumFractionDigits: 1 }).format(n);
}

/** A ratio as a percentage: 0.0123 -> "1.23%"; digits adapt so small rates stay visible. */
export function fmtPercent(ratio: number | null | undefined, locale?: string, digits?: number): string {
  if (!ok(ratio)) return DASH;
  const d = digits ?? (Math.abs(ratio) < 0.1 ? 2 : 1);
  return nf(locale, `pct${d}`, { style: 'percent', minimumFractionDigits: d, maximumFractionDigits: d }).format(ratio);
}

/** Events per second: 1234.56 -> "1,235/s", 12.34 -> "12.3/s" */
export function fmtRate(perSec: number | null | undefined, locale?: string): string {
  if (!ok(perSec)) return DASH;
  return `${perSec >= 100 ? fmtInt(perSec, locale) : nf(locale, 'dec1', { maximumFractionDigits: 1 }).format(perSec)}/s`;
}

/** Milliseconds: 950 -> "950 ms", 2380 -> "2.38 s" */
export function fmtMs(ms: number | null | undefined, locale?: string): string {
  if (!ok(ms)) return DASH;
  if (ms < 1000) return `${fmtInt(ms, locale)} ms`;
  return `${nf(locale, 'dec2', { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(ms / 1000)} s`;
}

/** How long ago, for freshness: 400 -> "just now", 12_000 -> "12 s ago", 190_000 -> "3 min ago" */
export function fmtAgo(ms: number): string {
  if (!(ms >= 0) || ms < 1000) return 'just now';
  if (ms < 60_000) return `${Math.floor(ms / 1000)} s ago`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ago`;
  return `${Math.floor(ms / 3_600_000)} h ago`;
}

/** Event time of day: "14:05:09" (24 h), and a date when it is not today. */
export function fmtTime(ts: number | null | undefined, locale?: string): string {
  if (!ok(ts) || ts <= 0) return DASH;
  return new Date(ts).toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

export function fmtDateTime(ts: number | null | undefined, locale?: string): string {
  if (!ok(ts) || ts <= 0) return DASH;
  return new Date(ts).toLocaleString(locale, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

/** A duration: 90_000 -> "1 min 30 s" */
export function fmtDuration(ms: number | null | undefined): string {
  if (!ok(ms) || ms < 0) return DASH;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
