import { useState } from 'preact/hooks';
import { Loading } from '../components/Table.js';
import { fmtInt, fmtPercent } from '../format.js';
import { useApi } from '../hooks.js';
import { PageHead, RangePicker } from './common.js';

interface Funnel {
  sessions: number;
  steps: Array<{ step: string; sessions: number; conversionFromPrevious: number; conversionFromStart: number }>;
}

const LABEL: Record<string, string> = { PAGE_VIEW: 'Page view', PRODUCT_VIEW: 'Product view', ADD_TO_CART: 'Add to cart', CHECKOUT: 'Checkout', TRANSACTION_COMPLETED: 'Purchase' };

export function FunnelView() {
  const [hours, setHours] = useState(24);
  const r = useApi<Funnel>(`/analytics/funnel?hours=${hours}`, 15_000);
  const f = r.data;
  const max = f ? Math.max(1, f.sessions) : 1;
  return (
    <>
      <PageHead title="Purchase funnel" sub="Closed sessions (30-min inactivity gap) that started in the range, by the furthest step reached in order">
        <RangePicker hours={hours} options={[1, 6, 24, 168]} onChange={setHours} />
      </PageHead>
      {!f ? (
        <Loading what="the funnel" error={r.error} />
      ) : (
        <section class="card">
          <p>
            <b data-testid="funnel-sessions">{fmtInt(f.sessions)}</b> sessions closed in the last {hours} h
            {f.sessions ? `; ${fmtPercent(f.steps.at(-1)!.sessions / f.sessions)} ended in a purchase` : ''}.
          </p>
          {f.sessions === 0 ? <p class="muted">A session counts here once it has closed: 30 minutes of event time after its last event, plus the grace period.</p> : null}
          <ol class="funnel" aria-label="Funnel steps">
            {f.steps.map((s, i) => (
              <li key={s.step} class="funnel-step">
                {i > 0 ? (
                  <div class="funnel-conv" aria-label={`${fmtPercent(s.conversionFromPrevious)} continue from ${LABEL[f.steps[i - 1].step] ?? f.steps[i - 1].step}`}>
                    ↓ {fmtPercent(s.conversionFromPrevious)} continue
                  </div>
                ) : null}
                <div class="funnel-row">
                  <span class="funnel-label">{LABEL[s.step] ?? s.step}</span>
                  <span class="funnel-bar" style={{ width: `${Math.max(0.5, (s.sessions / max) * 100)}%` }} />
                  <span class="funnel-num">
                    {fmtInt(s.sessions)} <span class="muted">({fmtPercent(s.sessions / max)} of sessions)</span>
                  </span>
                </div>
              </li>
            ))}
          </ol>
        </section>
      )}
    </>
  );
}
