import { ConnectionBadge } from './components/ConnectionBadge.js';
import { DashboardContext, useDashboard, useNow } from './hooks.js';
import type { Dashboard } from './live/index.js';
import { Link, matchRoute, useLocationPath } from './router.js';
import { ThemeContext, ThemeToggle, useThemeChoice } from './theme.js';
import { AlertsPage, Overview } from './views/Overview.js';
import { UserView } from './views/UserView.js';
import { ProductView } from './views/ProductView.js';
import { CountryView } from './views/CountryView.js';
import { RevenueView } from './views/RevenueView.js';
import { FunnelView } from './views/FunnelView.js';
import { PageHead } from './views/common.js';

function Header(props: { theme: ReturnType<typeof useThemeChoice>; path: string }) {
  const d = useDashboard();
  const now = useNow(1000);
  const nav = [
    ['/', 'Overview'],
    ['/revenue', 'Revenue'],
    ['/funnel', 'Funnel'],
    ['/alerts', 'Alerts'],
  ] as const;
  return (
    <header class="top">
      <a class="skip" href="#main">Skip to content</a>
      <Link href="/" class="brand">rta-engine</Link>
      <nav aria-label="Views" class="nav">
        {nav.map(([href, label]) => (
          <Link key={href} href={href} class={props.path === href ? 'active' : undefined}>{label}</Link>
        ))}
      </nav>
      <span class="spacer" />
      <ConnectionBadge status={d.status} receivedAt={d.state?.receivedAt ?? null} streamTime={d.state?.streamTime ?? null} now={now} onRetry={() => d.connection.retryNow()} stalePartitions={d.state?.stalePartitions} />
      <ThemeToggle choice={props.theme.choice} effective={props.theme.effective} onToggle={props.theme.cycle} />
    </header>
  );
}

function Page({ path }: { path: string }) {
  const r = matchRoute(path);
  switch (r.name) {
    case 'overview': return <Overview />;
    case 'user': return <UserView key={r.id} id={r.id} />;
    case 'product': return <ProductView key={r.id} id={r.id} />;
    case 'country': return <CountryView key={r.code} code={r.code} />;
    case 'revenue': return <RevenueView />;
    case 'funnel': return <FunnelView />;
    case 'alerts': return <AlertsPage />;
    default: return <PageHead title="Not found" sub={`Nothing lives at ${r.path}.`} />;
  }
}

export function App({ dashboard }: { dashboard: Dashboard }) {
  const theme = useThemeChoice();
  const path = useLocationPath();
  return (
    <DashboardContext.Provider value={dashboard}>
      <ThemeContext.Provider value={theme.effective}>
        <Header theme={theme} path={path} />
        <main id="main" tabIndex={-1}>
          <Page path={path} />
        </main>
      </ThemeContext.Provider>
    </DashboardContext.Provider>
  );
}
