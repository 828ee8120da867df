import { Loading, Table } from '../components/Table.js';
import { fmtInt, fmtMoney, fmtPercent } from '../format.js';
import { useApi } from '../hooks.js';
import { Link, paths } from '../router.js';
import { PageHead, Stat } from './common.js';

interface Geo {
  countries: Array<{ country: string; region: string; events: number; users: number; usd: number }>;
}

/** A country, composed from /analytics/geo over several ranges (the API has no per-country route). */
export function CountryView({ code }: { code: string }) {
  const ranges = [1, 6, 24] as const;
  const r1 = useApi<Geo>('/analytics/geo?hours=1', 15_000);
  const r6 = useApi<Geo>('/analytics/geo?hours=6', 30_000);
  const r24 = useApi<Geo>('/analytics/geo?hours=24', 60_000);
  const all = [r1, r6, r24];
  const rows = all.map((r) => r.data?.countries.find((c) => c.country === code));
  const day = r24.data;
  if (!day) return <><PageHead title={`Country ${code}`} /><Loading what="geography" error={r24.error} /></>;
  const c24 = rows[2];
  const totalEvents = day.countries.reduce((a, c) => a + c.events, 0);
  const neighbours = day.countries.filter((c) => c.region === c24?.region && c.country !== code).slice(0, 8);
  return (
    <>
      <PageHead title={`Country ${code}`} sub={c24 ? `region ${c24.region}` : 'no activity in the last 24 h'} />
      <section class="card">
        <dl class="stats">
          <Stat label="Users, last hour" value={r1.data ? fmtInt(rows[0]?.users ?? 0) : '…'} testid="country-users" />
          <Stat label="Revenue, last 24 h" value={fmtMoney(c24?.usd ?? 0)} />
          <Stat label="Share of all events, 24 h" value={fmtPercent(totalEvents && c24 ? c24.events / totalEvents : 0)} />
        </dl>
      </section>
      <section class="card">
        <Table
          caption={`${code} by time range`}
          head={['Range', { label: 'Events', num: true }, { label: 'Users (exact)', num: true }, { label: 'Revenue (USD)', num: true }]}
          rows={ranges.filter((_h, i) => all[i].data).map((h) => {
            const row = rows[ranges.indexOf(h)];
            return [`last ${h} h`, fmtInt(row?.events ?? 0), fmtInt(row?.users ?? 0), fmtMoney(row?.usd ?? 0)];
          })}
        />
      </section>
      {neighbours.length ? (
        <section class="card">
          <Table
            caption={`Other countries in ${c24?.region}, last 24 h`}
            head={['Country', { label: 'Events', num: true }, { label: 'Users', num: true }, { label: 'Revenue (USD)', num: true }]}
            rows={neighbours.map((c) => [<Link href={paths.country(c.country)}>{c.country}</Link>, fmtInt(c.events), fmtInt(c.users), fmtMoney(c.usd)])}
          />
        </section>
      ) : null}
    </>
  );
}
