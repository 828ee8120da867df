import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import type { Dashboard } from './live/index.js';
import { api } from './api.js';

export const DashboardContext = createContext<Dashboard | null>(null);

/** The live dashboard; re-renders the caller on every applied message and status change. */
export function useDashboard(): Dashboard {
  const d = useContext(DashboardContext);
  if (!d) throw new Error('useDashboard outside <DashboardContext.Provider>');
  const [, setVersion] = useState(0);
  useEffect(() => d.subscribe(() => setVersion((n) => n + 1)), [d]);
  return d;
}

/** The wall clock, re-read every intervalMs (freshness labels). */
export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(t);
  }, [intervalMs]);
  return now;
}

export type Loadable<T> = { loading: true; data?: T; error?: undefined } | { loading: false; data: T; error?: undefined } | { loading: false; data?: T; error: Error };

/** GET a REST path; refreshMs re-fetches (keeping the old data visible meanwhile). */
export function useApi<T>(path: string | null, refreshMs = 0): Loadable<T> {
  const [state, setState] = useState<Loadable<T>>({ loading: true });
  useEffect(() => {
    if (!path) return;
    let alive = true;
    const ctl = new AbortController();
    const load = () =>
      api.get<T>(path, ctl.signal).then(
        (data) => alive && setState({ loading: false, data }),
        (error: Error) => alive && error.name !== 'AbortError' && setState((s) => ({ loading: false, data: s.data, error })),
      );
    setState({ loading: true });
    void load();
    const t = refreshMs > 0 ? setInterval(load, refreshMs) : null;
    return () => {
      alive = false;
      ctl.abort();
      if (t) clearInterval(t);
    };
  }, [path, refreshMs]);
  return state;
}
