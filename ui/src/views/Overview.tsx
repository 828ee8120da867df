import { useMemo } from 'preact/hooks';
import type { DashboardState } from '../live/index.js';
import { Tiles } from '../components/Tiles.js';
import { TimeChart } from '../components/TimeChart.js';
import { AlertPanel } from '../components/AlertPanel.js';
import { Bar, Loading, Table } from '../components/Table.js';
import { fmtInt, fmtMs, fmtRate, fmtUsdCompact, fmtCompact, fmtMoney } from '../format.js';
import { useApi, useDashboard } from '../hooks.js';
import { Link, paths } from '../router.js';

function platformsOf(rows: Array<Record<string, number>>): string[] {
  const s = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) s.add(k);
  return [...s].sort().slice(0, 5);
}

function last<T>(xs: T[]): T | undefined {
  return xs[xs.length - 1];
}

/** Windows that have ended in event time: a window still filling would show as a dip at the end. */
function complete<T extends { windowStart: number }>(ws: T[], sizeMs: number, streamTime: number): T[] {
  let n = ws.length;
  while (n > 0 && ws[n - 1].windowStart + sizeMs > streamTime) n--;
  return n === ws.length ? ws : ws.slice(0, n);
}

function Charts({ state }: { state: DashboardState }) {
  const au = complete(state.activeUsers, 60_000, state.streamTime);
  const auPlatforms = useMemo(() => platformsOf(au.map((w) => w.byPlatform)), [au]);
  const pr = complete(state.platformRate, 60_000, state.streamTime);
  const prPlatforms = useMemo(() => platformsOf(pr.map((w) => w.perSec)), [pr]);
  const lat = complete(state.latency, 60_000, state.streamTime);
  const rev = complete(state.revenue, 5 * 60_000, state.streamTime);
  return (
    <div class="charts">
      <TimeChart
        id="chart-active-users"
        title="Active users per minute"
        unit="users"
        series={[{ label: 'all', color: 0 }, ...auPlatforms.map((p, i) => ({ label: p, color: i + 1, dash: true }))]}
        x={au.map((w) => w.windowStart)}
        ys={[au.map((w) => w.users), ...auPlatforms.map((p) => au.map((w) => w.byPlatform[p] ?? null))]}
        format={(v) => fmtCompact(v)}
        summary={`Latest minute: ${fmtInt(last(au)?.users)} users.`}
      />
      <TimeChart
        id="chart-revenue"
        title="Revenue per 5-minute window"
        unit="USD"
        series={[{ label: 'revenue', color: 2 }]}
        x={rev.map((w) => w.windowStart)}
        ys={[rev.map((w) => w.usd)]}
        format={(v) => fmtUsdCompact(v)}
        summary={`Latest window: ${fmtMoney(last(rev)?.usd)}.`}
        bars
      />
      <TimeChart
        id="chart-event-rate"
        title="Event rate by platform"
        unit="events/s"
        series={prPlatforms.map((p, i) => ({ label: p, color: i + 1 }))}
        x={pr.map((w) => w.windowStart)}
        ys={prPlatforms.map((p) => pr.map((w) => w.perSec[p] ?? null))}
        format={(v) => fmtRate(v).replace('/s', '')}
        summary={prPlatforms.map((p) => `${p} ${fmtRate(last(pr)?.perSec[p])}`).join(', ')}
      />
      <TimeChart
        id="chart-latency"
        title="Load time percentiles"
        unit="ms"
        series={[{ label: 'p50', color: 1 }, { label: 'p90', color: 3 }, { label: 'p99', color: 4 }]}
        x={lat.map((w) => w.windowStart)}
        ys={[lat.map((w) => w.p50), lat.map((w) => w.p90), lat.map((w) => w.p99)]}
        format={(v) => fmtInt(v)}
        summary={`Latest minute: p50 ${fmtMs(last(lat)?.p50)}, p99 ${fmtMs(last(lat)?.p99)}.`}
      />
    </div>
  );
}

interface TopProducts {
  products: Array<{ productId: string; name: string; category: string; views: number; purchases: number; usd: number }>;
}
interface Geo {
  countries: Array<{ country: string; region: string; events: number; users: number; usd: number }>;
}

function TopLists() {
  const products = useApi<TopProducts>('/products/top?hours=1&limit=8', 15_000);
  const geo = useApi<Geo>('/analytics/geo?hours=1', 15_000);
  const maxUsd = Math.max(0, ...(products.data?.products ?? []).map((p) => p.usd));
  const countries = (geo.data?.countries ?? []).slice(0, 8);
  const maxEvents = Math.max(0, ...countries.map((c) => c.events));
  return (
    <div class="tops">
      <section class="card" aria-label="Top products, last hour">
        {products.data ? (
          <Table
            caption="Top products, last hour"
            head={['Product', { label: 'Views', num: true }, { label: 'Purchases', num: true }, { label: 'Revenue (USD)', num: true }]}
            rows={products.data.products.map((p) => [
              <Link href={paths.product(p.productId)}>{p.name}</Link>,
              fmtInt(p.views),
              fmtInt(p.purchases),
              <Bar value={p.usd} max={maxUsd} label={fmtMoney(p.usd)} />,
            ])}
          />
        ) : (
          <Loading what="top products" error={products.error} />
        )}
      </section>
      <section class="card" aria-label="Top countries, last hour">
        {geo.data ? (
          <Table
            caption="Top countries, last hour"
            head={['Country', { label: 'Events', num: true }, { label: 'Users', num: true }, { label: 'Revenue (USD)', num: true }]}
            rows={countries.map((c) => [
              <Link href={paths.country(c.country)}>{c.country}</Link>,
              <Bar value={c.events} max={maxEvents} label={fmtInt(c.events)} />,
              fmtInt(c.users),
              fmtMoney(c.usd),
            ])}
          />
        ) : (
          <Loading what="countries" error={geo.error} />
        )}
      </section>
    </div>
  );
}

export function Overview() {
  const d = useDashboard();
  const state = d.state;
  if (!state) return <Loading what="the live snapshot" />;
  return (
    <>
      <Tiles state={state} />
      <div class="overview-main">
        <Charts state={state} />
        <AlertPanel alerts={state.alerts} onAction={(id, action) => d.setAlertStatus(id, action)} limit={12} />
      </div>
      <TopLists />
    </>
  );
}

export function AlertsPage() {
  const d = useDashboard();
  if (!d.state) return <Loading what="alerts" />;
  return <AlertPanel alerts={d.state.alerts} onAction={(id, action) => d.setAlertStatus(id, action)} limit={200} title="All recent alerts" />;
}
