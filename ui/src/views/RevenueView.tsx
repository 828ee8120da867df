import { useState } from 'preact/hooks';
import { TimeChart } from '../components/TimeChart.js';
import { Bar, Loading, Table } from '../components/Table.js';
import { fmtInt, fmtMoney, fmtPercent, fmtUsdCompact } from '../format.js';
import { useApi } from '../hooks.js';
import type { RevenueWindow } from '../live/index.js';
import { PageHead, RangePicker, Stat } from './common.js';

interface Revenue {
  windows: RevenueWindow[];
}

function sum(windows: RevenueWindow[]): { usd: number; count: number; byCurrency: Record<string, number>; byTier: Record<string, number> } {
  const t = { usd: 0, count: 0, byCurrency: {} as Record<string, number>, byTier: {} as Record<string, number> };
  for (const w of windows) {
    t.usd += w.usd;
    t.count += w.count;
    for (const [k, v] of Object.entries(w.byCurrency)) t.byCurrency[k] = (t.byCurrency[k] ?? 0) + v;
    for (const [k, v] of Object.entries(w.byTier)) t.byTier[k] = (t.byTier[k] ?? 0) + v;
  }
  return t;
}

const TIER_ORDER = ['PLATINUM', 'GOLD', 'SILVER', 'FREE', 'UNKNOWN'];

export function RevenueView() {
  const [hours, setHours] = useState(1);
  const minute = useApi<Revenue>(`/metrics/revenue?hours=${hours}&granularity=minute`, 10_000);
  // Totals over the range from windows that tile it (hourly sums of non-overlapping 5-min windows).
  const total = useApi<Revenue>(`/metrics/revenue?hours=${hours}&granularity=hour`, 10_000);
  const ws = minute.data?.windows ?? [];
  const t = total.data ? sum(total.data.windows) : null;
  const currencies = t ? Object.entries(t.byCurrency).sort((a, b) => b[1] - a[1]) : [];
  const tiers = t ? Object.entries(t.byTier).sort((a, b) => TIER_ORDER.indexOf(a[0]) - TIER_ORDER.indexOf(b[0])) : [];
  const maxTier = Math.max(0, ...tiers.map(([, v]) => v));
  return (
    <>
      <PageHead title="Revenue" sub="Completed transactions; USD through the engine's fixed currency table, breakdown by currency in each currency">
        <RangePicker hours={hours} options={[1, 6, 24]} onChange={setHours} />
      </PageHead>
      {!minute.data ? (
        <Loading what="revenue" error={minute.error} />
      ) : (
        <TimeChart
          id="chart-revenue-detail"
          title="Revenue per 5-minute window (advancing 1 minute)"
          unit="USD"
          series={[{ label: 'revenue', color: 2 }]}
          x={ws.map((w) => w.windowStart)}
          ys={[ws.map((w) => w.usd)]}
          format={(v) => fmtUsdCompact(v)}
          summary={`${ws.length} windows.`}
          height={260}
          bars
        />
      )}
      {t ? (
        <>
          <section class="card">
            <dl class="stats">
              <Stat label={`Revenue, last ${hours} h`} value={fmtMoney(t.usd)} testid="revenue-total" />
              <Stat label="Transactions" value={fmtInt(t.count)} />
              <Stat label="Average transaction" value={fmtMoney(t.count ? t.usd / t.count : 0)} />
            </dl>
          </section>
          <div class="cards">
            <section class="card">
              <Table
                caption="By currency (amounts in their own currency)"
                head={['Currency', { label: 'Amount', num: true }]}
                rows={currencies.map(([c, v]) => [c, fmtMoney(v, c)])}
                id="revenue-by-currency"
              />
            </section>
            <section class="card">
              <Table
                caption="By customer tier (USD)"
                head={['Tier', { label: 'Revenue', num: true }, { label: 'Share', num: true }]}
                rows={tiers.map(([k, v]) => [k, <Bar value={v} max={maxTier} label={fmtMoney(v)} />, fmtPercent(t.usd ? v / t.usd : 0)])}
                id="revenue-by-tier"
              />
            </section>
          </div>
        </>
      ) : (
        <Loading what="revenue totals" error={total.error} />
      )}
    </>
  );
}
