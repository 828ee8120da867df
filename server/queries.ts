import type { QueryLayer } from '../engine/query/query.js';

/**
 * The dashboard's REST queries, as plain functions of the query layer and already-validated
 * parameters: the server parses and validates on its event loop (400s), and runs these on its
 * query thread so a long merge never holds up other requests or the live stream.
 */
export class QueryNotFound extends Error {
  readonly code = 'ERR_NOT_FOUND';
}

type Params = Record<string, unknown>;

function range(q: QueryLayer, hours: number): { from: number; to: number } {
  const to = q.latestStreamTime() + 1;
  return { from: to - hours * 3_600_000, to };
}

export const DASHBOARD_QUERIES = {
  activeUsers(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    const windows = q.activeUsers(range(q, hours));
    return { hours, windows, current: windows.at(-1) ?? null };
  },
  revenue(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    const granularity = p.granularity as 'minute' | 'hour';
    return { hours, granularity, currency: 'USD', windows: q.revenue(range(q, hours), granularity) };
  },
  funnel(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    return { hours, ...q.funnel(range(q, hours)) };
  },
  geo(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    return { hours, countries: q.geo(range(q, hours)) };
  },
  performance(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    const r = range(q, hours);
    return { hours, unit: 'ms', pages: q.performance(r), iot: q.iot(r) };
  },
  topProducts(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    const limit = p.limit as number;
    return { hours, limit, products: q.topProducts(range(q, hours), limit) };
  },
  product(q: QueryLayer, p: Params) {
    const id = p.id as string;
    const hours = p.hours as number;
    const stats = q.products(range(q, hours)).get(id);
    if (!stats) throw new QueryNotFound(`product ${id} has no activity in the last ${hours} h`);
    return { productId: id, hours, ...stats };
  },
  user(q: QueryLayer, p: Params) {
    return q.user(p.id as string);
  },
  alerts(q: QueryLayer, p: Params) {
    const hours = p.hours as number;
    return { hours, ...q.alerts({ since: range(q, hours).from, severity: p.severity as 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW' | undefined, limit: p.limit as number }) };
  },
} as const;

export type DashboardQuery = keyof typeof DASHBOARD_QUERIES;
