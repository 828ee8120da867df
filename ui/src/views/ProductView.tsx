import { useState } from 'preact/hooks';
import { Bar, Loading, Table } from '../components/Table.js';
import { fmtInt, fmtMoney, fmtPercent } from '../format.js';
import { useApi } from '../hooks.js';
import { PageHead, RangePicker, Stat } from './common.js';

interface ProductStats {
  productId: string;
  views: number;
  carts: number;
  checkouts: number;
  purchases: number;
  units: number;
  usd: number;
}
interface TopProducts {
  products: Array<{ productId: string; name: string; category: string }>;
}

export function ProductView({ id }: { id: string }) {
  const [hours, setHours] = useState(24);
  const r = useApi<ProductStats>(`/products/${encodeURIComponent(id)}?hours=${hours}`, 15_000);
  // The product route has no name or category; the top list (which joins the catalog) does.
  const top = useApi<TopProducts>(`/products/top?hours=${hours}&limit=1000`);
  const meta = top.data?.products.find((p) => p.productId === id);
  const p = r.data;
  const steps = p ? [['Viewed', p.views], ['Added to cart', p.carts], ['Checked out', p.checkouts], ['Purchased', p.purchases]] as const : [];
  return (
    <>
      <PageHead title={meta ? meta.name : `Product ${id}`} sub={meta ? `${meta.category} · ${id}` : id}>
        <RangePicker hours={hours} options={[1, 6, 24]} onChange={setHours} />
      </PageHead>
      {!p ? (
        <Loading what={`product ${id}`} error={r.error} />
      ) : (
        <>
          <section class="card">
            <dl class="stats">
              <Stat label="Revenue" value={fmtMoney(p.usd)} testid="product-usd" />
              <Stat label="Units sold" value={fmtInt(p.units)} />
              <Stat label="Purchases" value={fmtInt(p.purchases)} />
              <Stat label="View to purchase" value={fmtPercent(p.views ? p.purchases / p.views : 0)} />
            </dl>
          </section>
          <section class="card">
            <Table
              caption={`Product funnel, last ${hours} h`}
              head={['Step', { label: 'Count', num: true }, { label: 'From previous step', num: true }]}
              rows={steps.map(([label, n], i) => [label, <Bar value={n} max={steps[0][1]} label={fmtInt(n)} />, i === 0 ? '—' : fmtPercent(steps[i - 1][1] ? n / steps[i - 1][1] : 0)])}
            />
          </section>
        </>
      )}
    </>
  );
}
