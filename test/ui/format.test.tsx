import { describe, expect, it } from 'vitest';
import { fmtAgo, fmtCompact, fmtDuration, fmtInt, fmtMoney, fmtMs, fmtPercent, fmtRate, fmtUsdCompact, fmtUsdShort } from '../../ui/src/format.js';

const L = 'en-US';

describe('formatting for people', () => {
  it('thousands separators and compact numbers', () => {
    expect(fmtInt(1234567, L)).toBe('1,234,567');
    expect(fmtInt(12.6, L)).toBe('13');
    expect(fmtCompact(9_999, L)).toBe('9,999');
    expect(fmtCompact(1_234_567, L)).toBe('1.2M');
    expect(fmtInt(1234567, 'de-DE')).toBe('1.234.567');
  });

  it('currencies through Intl, in their own currency', () => {
    expect(fmtMoney(1234.5, 'USD', L)).toBe('$1,234.50');
    expect(fmtMoney(1234.5, 'EUR', L)).toBe('€1,234.50');
    expect(fmtMoney(99, 'BRL', L)).toBe('R$99.00');
    expect(fmtMoney(5, 'NOT-A-CODE', L)).toBe('5.00 NOT-A-CODE');
    expect(fmtUsdShort(12345.67, L)).toBe('$12,346');
    expect(fmtUsdCompact(12500, L)).toBe('$12.5K');
  });

  it('percentages keep small rates visible', () => {
    expect(fmtPercent(0.0123, L)).toBe('1.23%');
    expect(fmtPercent(0.5, L)).toBe('50.0%');
    expect(fmtPercent(0.05, L, 0)).toBe('5%');
  });

  it('rates, latencies, durations and ages', () => {
    expect(fmtRate(1234.56, L)).toBe('1,235/s');
    expect(fmtRate(12.34, L)).toBe('12.3/s');
    expect(fmtMs(950, L)).toBe('950 ms');
    expect(fmtMs(2380, L)).toBe('2.38 s');
    expect(fmtDuration(90_000)).toBe('1 min 30 s');
    expect(fmtDuration(2 * 3_600_000 + 5 * 60_000)).toBe('2 h 5 min');
    expect(fmtAgo(400)).toBe('just now');
    expect(fmtAgo(12_000)).toBe('12 s ago');
    expect(fmtAgo(190_000)).toBe('3 min ago');
  });

  it('missing values show a dash, not NaN', () => {
    for (const f of [fmtInt, fmtCompact, fmtPercent, fmtRate, fmtMs]) expect(f(undefined)).toBe('—');
    expect(fmtMoney(Number.NaN)).toBe('—');
  });
});
