import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';

/** Client-side routes; the server answers every extension-less path with index.html. */
export type Route =
  | { name: 'overview' }
  | { name: 'user'; id: string }
  | { name: 'product'; id: string }
  | { name: 'country'; code: string }
  | { name: 'revenue' }
  | { name: 'funnel' }
  | { name: 'alerts' }
  | { name: 'not-found'; path: string };

export function matchRoute(path: string): Route {
  const parts = path.replace(/\/+$/, '').split('/').filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
  if (parts.length === 0) return { name: 'overview' };
  const [a, b] = parts;
  if (parts.length === 2 && a === 'users') return { name: 'user', id: b };
  if (parts.length === 2 && a === 'products') return { name: 'product', id: b };
  if (parts.length === 2 && a === 'countries') return { name: 'country', code: b };
  if (parts.length === 1 && a === 'revenue') return { name: 'revenue' };
  if (parts.length === 1 && a === 'funnel') return { name: 'funnel' };
  if (parts.length === 1 && a === 'alerts') return { name: 'alerts' };
  return { name: 'not-found', path };
}

export const paths = {
  user: (id: string) => `/users/${encodeURIComponent(id)}`,
  product: (id: string) => `/products/${encodeURIComponent(id)}`,
  country: (code: string) => `/countries/${encodeURIComponent(code)}`,
};

const listeners = new Set<() => void>();

export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, '', to);
  listeners.forEach((l) => l());
  window.scrollTo?.(0, 0);
}

export function useLocationPath(): string {
  const [path, setPath] = useState(() => location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return path;
}

/** A real link (keyboard, middle-click and "open in new tab" work); plain clicks stay in the page. */
export function Link(props: { href: string; children: ComponentChildren; class?: string; 'aria-label'?: string; title?: string }): JSX.Element {
  const onClick = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.href);
  };
  return <a {...props} onClick={onClick}>{props.children}</a>;
}
