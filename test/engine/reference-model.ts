/**
 * The reference model: a plain, obviously correct recomputation of every pipeline's numbers from
 * the raw event list. It shares no code with the engine's operators: only the definitions of
 * DESIGN.md (event time, per-partition stream time, windows, grace, sessions, thresholds) and the
 * source's partitioning (which partition an event went to) are common.
 */
import type { EventRecord } from '../../engine/codec/types.js';
import { profileOf } from '../../engine/source/generator.js';

export interface ModelConfig {
  partitions: number;
  partitionOf: (e: EventRecord) => number;
  graceMs: number;
  sessionGapMs: number;
  fxToUsd: Record<string, number>;
  seed: number;
  startTime: number;
  users: number;
  loginFailures: number;
  maxLocationsPer10Min: number;
  maxPlatformsPer10Min: number;
  iot: Record<string, number>;
  anomalyZScore: number;
  anomalyMinTransactions: number;
}

const MIN = 60_000;
const HOUR = 3_600_000;

function actionOf(e: EventRecord): string {
  return e.source === 'TRANSACTION' ? e.type : e.source === 'IOT' ? e.sensorType : e.action;
}
function platformOf(e: EventRecord): string {
  if (e.source === 'WEB') return 'WEB';
  if (e.source === 'MOBILE') return 'MOBILE';
  if (e.source === 'IOT') return 'IOT';
  return e.platform || 'WEB';
}
function locationOf(e: EventRecord): string {
  if (e.source === 'MOBILE' || e.source === 'USER_ACTION' || e.source === 'IOT') return e.location;
  return '';
}
function inc(m: Map<string, number>, k: string, by = 1): void {
  m.set(k, (m.get(k) ?? 0) + by);
}

export function referenceModel(events: EventRecord[], c: ModelConfig) {
  const profile = (u: string) => {
    const i = Number(u.split('-')[1]);
    return u.startsWith('user-') && i >= 0 && i < c.users ? profileOf(c.seed, i, c.startTime) : null;
  };
  const fx = (cur: string) => c.fxToUsd[cur] ?? 1;
  const streamTime = new Array(c.partitions).fill(0);
  const late = new Map<string, number>();
  const activeUsers = new Map<number, Set<string>>();
  const activeByPlatform = new Map<string, Set<string>>();
  const platformEvents = new Map<string, number>();
  const platformErrors = new Map<string, number>();
  const errorWin = new Map<number, { n: number; errors: number }>();
  const userActions = new Map<string, number>();
  const revenue = new Map<number, { usd: number; count: number; byCurrency: Map<string, number>; byTier: Map<string, number> }>();
  const products = new Map<string, { views: number; carts: number; checkouts: number; purchases: number; units: number; usd: number }>();
  const geo = new Map<string, { events: number; users: Set<string>; usd: number }>();
  const loadTimes = new Map<string, number[]>();
  const iot = new Map<string, { n: number; min: number; max: number; over: number }>();
  const alerts = new Set<string>();
  const loginWin = new Map<string, number>();
  const sharing = new Map<string, { platforms: Set<string>; locations: Set<string>; ap: boolean; al: boolean }>();
  const iotAlerted = new Set<string>();
  const baselines = new Map<string, { n: number; mean: number; m2: number }>();
  type S = { user: string; start: number; end: number; stages: number; partition: number; events: number; pageViews: number; transactions: number; usd: number; platforms: Set<string> };
  const openSessions = new Map<string, S[]>();
  const closedSessions: S[] = [];

  const isLate = (p: number, ws: number, size: number, name: string) => {
    if (ws + size + c.graceMs <= streamTime[p]) {
      inc(late, name);
      return true;
    }
    return false;
  };

  for (const e of events) {
    const p = c.partitionOf(e);
    streamTime[p] = Math.max(streamTime[p], e.timestamp);
    const st = streamTime[p];
    const t = e.timestamp;
    const action = actionOf(e);
    const platform = platformOf(e);
    const user = e.userId;
    const userActivity = user !== '' && e.source !== 'IOT';
    const m1 = Math.floor(t / MIN) * MIN;
    const m5 = Math.floor(t / (5 * MIN)) * 5 * MIN;
    const m10 = Math.floor(t / (10 * MIN)) * 10 * MIN;
    const h1 = Math.floor(t / HOUR) * HOUR;
    const prof = user ? profile(user) : null;

    if (userActivity && !isLate(p, m1, MIN, 'active_users')) {
      if (!activeUsers.has(m1)) activeUsers.set(m1, new Set());
      activeUsers.get(m1)!.add(user);
      const k = `${m1}|${platform}`;
      if (!activeByPlatform.has(k)) activeByPlatform.set(k, new Set());
      activeByPlatform.get(k)!.add(user);
    }
    if (!isLate(p, m1, MIN, 'platform_events')) {
      inc(platformEvents, `${m1}|${platform}`);
      if (action === 'ERROR') inc(platformErrors, `${m1}|${platform}`);
    }
    if ((e.source === 'WEB' || e.source === 'MOBILE') && !isLate(p, m5, 5 * MIN, 'error_rate')) {
      const w = errorWin.get(m5) ?? { n: 0, errors: 0 };
      w.n++;
      if (action === 'ERROR') w.errors++;
      errorWin.set(m5, w);
    }
    if (e.source === 'USER_ACTION' && !isLate(p, m1, MIN, 'user_actions')) inc(userActions, action);
    if (e.source === 'TRANSACTION' && e.type === 'COMPLETED') {
      const usd = e.amount * fx(e.currency);
      for (let ws = Math.floor(t / MIN) * MIN - 4 * MIN; ws <= t; ws += MIN) {
        if (!(ws <= t && t < ws + 5 * MIN)) continue;
        if (isLate(p, ws, 5 * MIN, 'revenue')) continue;
        const r = revenue.get(ws) ?? { usd: 0, count: 0, byCurrency: new Map(), byTier: new Map() };
        r.usd += usd;
        r.count++;
        inc(r.byCurrency, e.currency || 'UNKNOWN', e.amount);
        inc(r.byTier, prof?.tier ?? 'UNKNOWN', usd);
        revenue.set(ws, r);
      }
    }
    // products
    let productId = '';
    if (e.source === 'TRANSACTION') productId = e.type === 'COMPLETED' ? e.productId : '';
    else if ((e.source === 'WEB' || e.source === 'MOBILE') && ['PRODUCT_VIEW', 'ADD_TO_CART', 'CHECKOUT'].includes(action)) productId = e.customData.productId ?? '';
    if (productId && !isLate(p, h1, HOUR, 'products')) {
      const s = products.get(productId) ?? { views: 0, carts: 0, checkouts: 0, purchases: 0, units: 0, usd: 0 };
      if (e.source === 'TRANSACTION') {
        s.purchases++;
        s.units += e.quantity;
        s.usd += e.amount * fx(e.currency);
      } else if (action === 'PRODUCT_VIEW') s.views++;
      else if (action === 'ADD_TO_CART') s.carts++;
      else s.checkouts++;
      products.set(productId, s);
    }
    if (userActivity && !isLate(p, h1, HOUR, 'geo')) {
      const country = prof?.country ?? 'UNKNOWN';
      const g = geo.get(country) ?? { events: 0, users: new Set(), usd: 0 };
      g.events++;
      g.users.add(user);
      if (e.source === 'TRANSACTION' && e.type === 'COMPLETED') g.usd += e.amount * fx(e.currency);
      geo.set(country, g);
    }
    if ((e.source === 'WEB' || e.source === 'MOBILE') && e.customData.loadTimeMs !== undefined && !isLate(p, m1, MIN, 'performance')) {
      const page = e.source === 'WEB' ? (e.page.startsWith('/product/') && e.page.length > 9 ? '/product/:id' : e.page) : '';
      const k = `${platform}|${page}`;
      if (!loadTimes.has(k)) loadTimes.set(k, []);
      loadTimes.get(k)!.push(Number(e.customData.loadTimeMs));
    }
    if (e.source === 'IOT') {
      if (!isLate(p, m1, MIN, 'iot')) {
        const s = iot.get(e.sensorType) ?? { n: 0, min: Infinity, max: -Infinity, over: 0 };
        s.n++;
        s.min = Math.min(s.min, e.value);
        s.max = Math.max(s.max, e.value);
        if (c.iot[e.sensorType] !== undefined && e.value > c.iot[e.sensorType]) s.over++;
        iot.set(e.sensorType, s);
      }
      const th = c.iot[e.sensorType];
      if (th !== undefined && e.value > th && !isLate(p, m1, MIN, 'iot_threshold')) {
        const id = `IOT_THRESHOLD:${e.deviceId}:${m1}`;
        if (!iotAlerted.has(id)) {
          iotAlerted.add(id);
          alerts.add(id);
        }
      }
    }
    if (e.source === 'USER_ACTION' && e.action === 'LOGIN_FAILED' && !isLate(p, m5, 5 * MIN, 'login_failures')) {
      const k = `${user}|${m5}`;
      inc(loginWin, k);
      if (loginWin.get(k) === c.loginFailures) alerts.add(`REPEATED_LOGIN_FAILURE:${user}:${m5}`);
    }
    if (userActivity && !isLate(p, m10, 10 * MIN, 'account_sharing')) {
      const k = `${user}|${m10}`;
      const s = sharing.get(k) ?? { platforms: new Set(), locations: new Set(), ap: false, al: false };
      s.platforms.add(platform);
      if (locationOf(e)) s.locations.add(locationOf(e));
      if (!s.ap && s.platforms.size > c.maxPlatformsPer10Min) {
        s.ap = true;
        alerts.add(`MULTIPLE_PLATFORMS:${user}:${m10}`);
      }
      if (!s.al && s.locations.size > c.maxLocationsPer10Min) {
        s.al = true;
        alerts.add(`MULTIPLE_LOCATIONS:${user}:${m10}`);
      }
      sharing.set(k, s);
    }
    if (e.source === 'TRANSACTION' && e.type === 'COMPLETED') {
      const usd = e.amount * fx(e.currency);
      const b = baselines.get(user) ?? { n: 0, mean: 0, m2: 0 };
      baselines.set(user, b);
      let anomaly = false;
      if (b.n >= c.anomalyMinTransactions) {
        const sd = Math.sqrt(b.m2 / (b.n - 1));
        const z = sd > 0 ? (usd - b.mean) / sd : usd > b.mean * 2 ? Infinity : 0;
        if (z > c.anomalyZScore) {
          alerts.add(`TRANSACTION_ANOMALY:${user}:${t}`);
          anomaly = true;
        }
      }
      if (!anomaly) {
        b.n++;
        const d = usd - b.mean;
        b.mean += d / b.n;
        b.m2 += d * (usd - b.mean);
      }
    }
    // sessions: close what is due, then merge
    if (userActivity) {
      if (t + c.sessionGapMs + c.graceMs <= st) inc(late, 'sessions');
      else {
        const list = openSessions.get(user) ?? [];
        openSessions.set(user, list);
        let merged: S | null = null;
        for (let i = 0; i < list.length; i++) {
          const s = list[i];
          if (s.end + c.sessionGapMs + c.graceMs <= st) continue;
          if (t > s.start - c.sessionGapMs && t < s.end + c.sessionGapMs) {
            if (!merged) merged = s;
            else {
              merged.start = Math.min(merged.start, s.start);
              merged.end = Math.max(merged.end, s.end);
              merged.stages |= s.stages;
              merged.events += s.events;
              merged.pageViews += s.pageViews;
              merged.transactions += s.transactions;
              merged.usd += s.usd;
              for (const x of s.platforms) merged.platforms.add(x);
              list.splice(i, 1);
              i--;
            }
          }
        }
        if (!merged) {
          merged = { user, start: t, end: t, stages: 0, partition: p, events: 0, pageViews: 0, transactions: 0, usd: 0, platforms: new Set() };
          list.push(merged);
        }
        merged.start = Math.min(merged.start, t);
        merged.end = Math.max(merged.end, t);
        merged.events++;
        merged.platforms.add(platform);
        if (e.source === 'TRANSACTION' && e.type === 'COMPLETED') {
          merged.stages |= 16;
          merged.transactions++;
          merged.usd += e.amount * fx(e.currency);
        }
        if ((e.source === 'WEB' || e.source === 'MOBILE') && action === 'PAGE_VIEW') merged.pageViews++;
        if (e.source === 'WEB' || e.source === 'MOBILE') {
          const bit = { PAGE_VIEW: 1, PRODUCT_VIEW: 2, ADD_TO_CART: 4, CHECKOUT: 8 }[action as 'PAGE_VIEW'];
          if (bit) merged.stages |= bit;
        }
      }
    }
  }
  // A session is closed once its partition's final stream time passed end + gap + grace.
  const stillOpen: S[] = [];
  for (const list of openSessions.values()) {
    for (const s of list) (s.end + c.sessionGapMs + c.graceMs <= streamTime[s.partition] ? closedSessions : stillOpen).push(s);
  }
  const sessionView = (s: S) => ({
    user: s.user, start: s.start, end: s.end, events: s.events, pageViews: s.pageViews, transactions: s.transactions, usd: s.usd, platforms: [...s.platforms].sort(), stages: s.stages,
  });
  const reached = [0, 0, 0, 0, 0];
  for (const s of closedSessions) {
    for (let k = 0; k < 5 && (s.stages & (1 << k)); k++) reached[k]++;
  }
  const percentile = (xs: number[], q: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.max(0, Math.ceil((q / 100) * s.length) - 1)];
  };
  return {
    streamTime,
    late: Object.fromEntries(late),
    activeUsers: [...activeUsers].sort((a, b) => a[0] - b[0]).map(([ws, s]) => ({ windowStart: ws, users: s.size })),
    activeByPlatform: Object.fromEntries([...activeByPlatform].map(([k, s]) => [k, s.size])),
    platformEvents: Object.fromEntries(platformEvents),
    platformErrors: Object.fromEntries(platformErrors),
    errorWindows: Object.fromEntries(errorWin),
    userActions: Object.fromEntries(userActions),
    revenue: [...revenue].sort((a, b) => a[0] - b[0]).map(([ws, r]) => ({
      windowStart: ws, usd: r.usd, count: r.count, byCurrency: Object.fromEntries(r.byCurrency), byTier: Object.fromEntries(r.byTier),
    })),
    products: Object.fromEntries(products),
    geo: Object.fromEntries([...geo].map(([k, g]) => [k, { events: g.events, users: g.users.size, usd: g.usd }])),
    loadTimes: Object.fromEntries([...loadTimes].map(([k, xs]) => [k, { count: xs.length, p50: percentile(xs, 50), p99: percentile(xs, 99) }])),
    iot: Object.fromEntries(iot),
    alerts,
    funnel: { sessions: closedSessions.length, reached },
    /** Every session, closed or still open at the end, in its merged form. */
    sessions: { closed: closedSessions.map(sessionView), open: stillOpen.map(sessionView) },
    /** Every account-sharing window of every user: `user|windowStart` -> platforms, locations (sorted), alert flags. */
    sharing: new Map([...sharing].map(([k, v]) => [k, { platforms: [...v.platforms].sort(), locations: [...v.locations].sort(), ap: v.ap, al: v.al }])),
  };
}
