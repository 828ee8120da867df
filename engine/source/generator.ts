import { Rng, Zipf } from './random.js';
import type { EventRecord, Product, UserProfile } from '../codec/types.js';

/**
 * The event model: an in-process generator of realistic traffic, seeded and deterministic.
 *
 * A fixed number of concurrent sessions run in event time. Each session belongs to a
 * Zipf-chosen user, lasts 1-60 minutes, starts with a PAGE_VIEW and walks the funnel
 * PAGE_VIEW -> PRODUCT_VIEW -> ADD_TO_CART -> CHECKOUT -> TRANSACTION_COMPLETED, continuing at
 * each step with the configured probability (browsing events fill the time in between). When a
 * session ends another starts, so the event rate stays at `eventsPerSecond` of event time.
 * IoT readings and user actions (logins, failed logins, settings) are independent streams.
 * Anomalous transaction amounts, errors, platform and location switches and IoT spikes occur at
 * the configured rates; a few events arrive out of order and a few arrive late.
 */

export interface FunnelConfig {
  /** Probability of each step given the previous one was reached. */
  productView: number;
  addToCart: number;
  checkout: number;
  /** Probability that a checkout's transaction completes (else it FAILs). */
  complete: number;
}

export interface GeneratorConfig {
  seed: number;
  users: number;
  products: number;
  /** Event time of the first event (epoch ms). */
  startTime: number;
  /** Events per second of event time (all sources together). */
  eventsPerSecond: number;
  concurrentSessions: number;
  funnel: FunnelConfig;
  /** Share of web/mobile events that are ERROR. */
  errorRate: number;
  /** Share of completed transactions with an anomalous amount (20-50x the usual). */
  anomalyRate: number;
  /** Share of all events that are IoT readings. */
  iotShare: number;
  /** Share of IoT readings that spike over their sensor's threshold. */
  iotSpikeRate: number;
  /** Share of all events that are user actions (logins etc.). */
  userActionShare: number;
  /** Share of user actions that are LOGIN_FAILED; some come in bursts from one user. */
  loginFailRate: number;
  /** Share of sessions whose events jump between platforms and locations (shared accounts). */
  switchRate: number;
  /** Share of events stamped up to `outOfOrderMs` earlier than their position in the stream. */
  outOfOrderRate: number;
  outOfOrderMs: number;
  /** Share of events stamped `lateMs` earlier: later than any grace period. */
  lateRate: number;
  lateMs: number;
  zipfExponent: number;
}

export const DEFAULT_GENERATOR_CONFIG: GeneratorConfig = {
  seed: 42,
  users: 100_000,
  products: 2_000,
  startTime: Date.UTC(2026, 0, 1),
  eventsPerSecond: 10_000,
  concurrentSessions: 5_000,
  funnel: { productView: 0.6, addToCart: 0.4, checkout: 0.6, complete: 0.9 },
  errorRate: 0.02,
  anomalyRate: 0.003,
  iotShare: 0.08,
  iotSpikeRate: 0.002,
  userActionShare: 0.05,
  loginFailRate: 0.05,
  switchRate: 0.01,
  outOfOrderRate: 0.02,
  outOfOrderMs: 5_000,
  lateRate: 0.0005,
  lateMs: 10 * 60_000,
  zipfExponent: 1.0,
};

export const TIERS = ['FREE', 'SILVER', 'GOLD', 'PLATINUM'] as const;
const TIER_WEIGHTS = [70, 18, 9, 3];
const SEGMENTS = ['new', 'casual', 'regular', 'power', 'enterprise'];
const COUNTRIES: ReadonlyArray<readonly [string, string, number]> = [
  ['US', 'NA', 30], ['CA', 'NA', 5], ['BR', 'SA', 6], ['GB', 'EU', 8], ['DE', 'EU', 8], ['FR', 'EU', 6],
  ['IN', 'APAC', 12], ['JP', 'APAC', 7], ['AU', 'APAC', 4], ['SG', 'APAC', 3], ['ZA', 'AF', 2], ['MX', 'NA', 4],
];
const CATEGORIES = ['electronics', 'books', 'fashion', 'home', 'sports', 'toys', 'beauty', 'grocery'];
const CURRENCY_BY_REGION: Record<string, string> = { NA: 'USD', SA: 'BRL', EU: 'EUR', APAC: 'USD', AF: 'USD' };
const PAGES = ['/', '/search', '/category', '/deals', '/account', '/help'];
const BROWSE_ACTIONS = ['PAGE_VIEW', 'CLICK', 'SEARCH'];
const BROWSE_WEIGHTS = [5, 3, 2];
const PAYMENT_METHODS = ['CARD', 'PAYPAL', 'APPLE_PAY', 'BANK_TRANSFER'];
const DEVICE_TYPES = ['IOS', 'ANDROID'];
/** Sensor types with their normal range and alert threshold (the engine's defaults match). */
export const SENSORS: ReadonlyArray<{ type: string; unit: string; min: number; max: number; threshold: number }> = [
  { type: 'TEMPERATURE', unit: 'C', min: 15, max: 35, threshold: 80 },
  { type: 'HUMIDITY', unit: '%', min: 20, max: 70, threshold: 95 },
  { type: 'PRESSURE', unit: 'hPa', min: 980, max: 1040, threshold: 1100 },
  { type: 'VIBRATION', unit: 'mm/s', min: 0, max: 5, threshold: 20 },
];
const USER_ACTIONS = ['LOGIN', 'LOGOUT', 'SETTINGS_CHANGE', 'PASSWORD_CHANGE'];

const STAGES = ['PAGE_VIEW', 'PRODUCT_VIEW', 'ADD_TO_CART', 'CHECKOUT', 'TRANSACTION'] as const;

interface Session {
  t: number; // next event time
  id: string;
  user: number;
  platform: 'WEB' | 'MOBILE';
  deviceType: string;
  location: string;
  switching: boolean;
  gap: number;
  remaining: number; // events left
  /** Event indexes (counted from the end) at which the funnel steps happen. */
  stagePlan: number[];
  stage: number; // next funnel stage index to emit
  product: number;
  quantity: number;
}

interface Clocked {
  t: number;
}

export function userIdOf(i: number): string {
  return `user-${i}`;
}
export function productIdOf(i: number): string {
  return `product-${i}`;
}

export class EventGenerator {
  readonly config: GeneratorConfig;
  private readonly rng: Rng;
  private readonly userZipf: Zipf;
  private readonly productZipf: Zipf;
  private readonly heap: (Session | Clocked)[] = [];
  private readonly iot: Clocked;
  private readonly actions: Clocked;
  private sessionCounter = 0;
  private eventCounter = 0;
  private readonly sessionRate: number;
  /** Per-user sequence numbers by user index (the last slot is the empty user id of ownerless IoT events). */
  private readonly seqByUser: Int32Array;
  /** User index of the event being built (set by each event builder; users = no user id). */
  private eventUser = 0;
  private failBurst: { user: number; left: number } | null = null;
  /** Event time of the most recent emission (before jitter). */
  now: number;

  constructor(config: Partial<GeneratorConfig> = {}) {
    this.config = { ...DEFAULT_GENERATOR_CONFIG, ...config, funnel: { ...DEFAULT_GENERATOR_CONFIG.funnel, ...config.funnel } };
    const c = this.config;
    if (!(c.users >= 1) || !(c.products >= 1) || !(c.eventsPerSecond > 0) || !(c.concurrentSessions >= 1)) {
      throw new RangeError('generator: users, products, concurrentSessions must be >= 1 and eventsPerSecond > 0');
    }
    this.rng = new Rng(c.seed);
    this.userZipf = new Zipf(c.users, c.zipfExponent);
    this.productZipf = new Zipf(c.products, c.zipfExponent);
    this.seqByUser = new Int32Array(c.users + 1);
    this.now = c.startTime;
    const sessionShare = Math.max(0, 1 - c.iotShare - c.userActionShare);
    this.sessionRate = (c.eventsPerSecond * sessionShare) / c.concurrentSessions; // events/s per session
    this.iot = { t: c.startTime + this.expGap(c.eventsPerSecond * c.iotShare) };
    this.actions = { t: c.startTime + this.expGap(c.eventsPerSecond * c.userActionShare) };
    if (sessionShare > 0) {
      for (let i = 0; i < c.concurrentSessions; i++) {
        const s = this.newSession(c.startTime);
        // Stagger the first sessions so they do not all start and end together.
        s.remaining = 1 + this.rng.int(s.remaining);
        s.stage = s.stagePlan.filter((at) => at > s.remaining).length;
        s.t = c.startTime + this.rng.next() * s.gap;
        this.push(s);
      }
    }
    if (c.iotShare > 0) this.push(this.iot);
    if (c.userActionShare > 0) this.push(this.actions);
  }

  /** User profiles of the reference table (deterministic for the seed). */
  *profiles(): Generator<UserProfile> {
    for (let i = 0; i < this.config.users; i++) yield profileOf(this.config.seed, i, this.config.startTime);
  }

  /** Product catalog of the reference table (deterministic for the seed). */
  *catalog(): Generator<Product> {
    for (let i = 0; i < this.config.products; i++) yield productOf(this.config.seed, i);
  }

  /** Produces the next `n` events. */
  take(n: number): EventRecord[] {
    const out: EventRecord[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next();
    return out;
  }

  next(): EventRecord {
    const item = this.heap[0];
    this.now = Math.max(this.now, item.t);
    let e: EventRecord;
    if (item === this.iot) {
      e = this.iotEvent(item.t);
      item.t += this.expGap(this.config.eventsPerSecond * this.config.iotShare);
      this.siftDown(0);
    } else if (item === this.actions) {
      e = this.userAction(item.t);
      item.t += this.expGap(this.config.eventsPerSecond * this.config.userActionShare);
      this.siftDown(0);
    } else {
      const s = item as Session;
      e = this.sessionEvent(s);
      s.remaining--;
      if (s.remaining <= 0) {
        const n = this.newSession(s.t + s.gap);
        this.heap[0] = n;
      } else {
        s.t += s.gap;
      }
      this.siftDown(0);
    }
    e.timestamp = Math.round(this.jitter(e.timestamp));
    e.seq = ++this.seqByUser[this.eventUser];
    return e;
  }

  private jitter(t: number): number {
    const r = this.rng.next();
    if (r < this.config.lateRate) return t - this.config.lateMs;
    if (r < this.config.lateRate + this.config.outOfOrderRate) return t - this.rng.next() * this.config.outOfOrderMs;
    return t;
  }

  private expGap(ratePerSec: number): number {
    if (!(ratePerSec > 0)) return Infinity;
    return (-Math.log(1 - this.rng.next()) / ratePerSec) * 1000;
  }

  private newSession(start: number): Session {
    const c = this.config;
    const rng = this.rng;
    const user = this.userZipf.sample(rng);
    const durationMs = (1 + rng.next() * 59) * 60_000;
    const f = c.funnel;
    let depth = 1; // PAGE_VIEW always
    if (rng.chance(f.productView)) {
      depth = 2;
      if (rng.chance(f.addToCart)) {
        depth = 3;
        if (rng.chance(f.checkout)) depth = 5; // checkout then its transaction
      }
    }
    const planned = Math.max(depth + 1, Math.round((durationMs / 1000) * this.sessionRate));
    const gap = durationMs / planned;
    // Funnel steps spread over the session, in order; counted as "events remaining" when they fire.
    const stagePlan: number[] = [planned];
    for (let k = 1; k < depth; k++) stagePlan.push(Math.max(1, Math.round(planned * (1 - k / depth))));
    for (let k = 1; k < stagePlan.length; k++) if (stagePlan[k] >= stagePlan[k - 1]) stagePlan[k] = stagePlan[k - 1] - 1;
    const profile = profileOf(c.seed, user, c.startTime);
    const platform = rng.chance(0.6) ? 'WEB' : 'MOBILE';
    return {
      t: start,
      id: `session-${c.seed}-${++this.sessionCounter}`,
      user,
      platform,
      deviceType: rng.pick(DEVICE_TYPES),
      location: profile.country,
      switching: rng.chance(c.switchRate),
      gap,
      remaining: planned,
      stagePlan,
      stage: 0,
      product: this.productZipf.sample(rng),
      quantity: 1 + (rng.chance(0.2) ? rng.int(4) : 0),
    };
  }

  private sessionEvent(s: Session): EventRecord {
    const rng = this.rng;
    const c = this.config;
    const t = s.t;
    let action: string;
    const isStage = s.stage < s.stagePlan.length && s.remaining <= s.stagePlan[s.stage];
    if (isStage) {
      action = STAGES[s.stage++];
      if (action === 'TRANSACTION') return this.transaction(s, t);
    } else if (rng.chance(c.errorRate)) {
      action = 'ERROR';
    } else {
      action = rng.weighted(BROWSE_ACTIONS, BROWSE_WEIGHTS);
    }
    let platform = s.platform;
    let location = s.location;
    if (s.switching) {
      // A shared account: consecutive events from other platforms and countries.
      platform = rng.chance(0.5) ? 'WEB' : 'MOBILE';
      location = rng.pick(COUNTRIES)[0];
    }
    const userId = userIdOf(s.user);
    this.eventUser = s.user;
    const eventId = `evt-${c.seed}-${++this.eventCounter}`;
    const productId = action === 'PRODUCT_VIEW' || action === 'ADD_TO_CART' || action === 'CHECKOUT' ? productIdOf(s.product) : '';
    const loadTimeMs = String(Math.round(action === 'ERROR' ? rng.logNormal(2500, 0.6) : rng.logNormal(320, 0.5)));
    const customData: Record<string, string> = { loadTimeMs };
    if (productId) customData.productId = productId;
    if (platform === 'WEB' && !s.switching) {
      return {
        source: 'WEB', eventId, userId, sessionId: s.id, timestamp: t, action,
        page: productId ? `/product/${productId}` : rng.pick(PAGES), referrer: rng.chance(0.3) ? 'https://search.example' : '',
        userAgent: 'Mozilla/5.0', ipAddress: `10.${s.user % 250}.${(s.user >> 8) % 250}.${s.user % 7}`,
        customData,
      };
    }
    if (platform === 'WEB') {
      customData.country = location;
      return {
        source: 'WEB', eventId, userId, sessionId: s.id, timestamp: t, action, page: rng.pick(PAGES), referrer: '',
        userAgent: 'Mozilla/5.0', ipAddress: '192.0.2.1', customData,
      };
    }
    return {
      source: 'MOBILE', eventId, userId, sessionId: s.id, timestamp: t, action, appVersion: '5.2.1',
      deviceType: s.deviceType, osVersion: s.deviceType === 'IOS' ? '18.1' : '15', location, customData,
    };
  }

  private transaction(s: Session, t: number): EventRecord {
    const rng = this.rng;
    const c = this.config;
    const product = productOf(c.seed, s.product);
    const profile = profileOf(c.seed, s.user, c.startTime);
    let amount = Math.round(product.price * s.quantity * 100) / 100;
    const completed = rng.chance(c.funnel.complete);
    if (completed && rng.chance(c.anomalyRate)) amount = Math.round(amount * (20 + rng.next() * 30) * 100) / 100;
    this.eventUser = s.user;
    return {
      source: 'TRANSACTION', transactionId: `txn-${c.seed}-${++this.eventCounter}`, userId: userIdOf(s.user),
      sessionId: s.id, timestamp: t, type: completed ? 'COMPLETED' : 'FAILED', platform: s.platform, amount,
      currency: CURRENCY_BY_REGION[profile.region] ?? 'USD', merchantId: `merchant-${s.product % 50}`,
      paymentMethod: rng.pick(PAYMENT_METHODS), productId: productIdOf(s.product), quantity: s.quantity,
      metadata: { country: s.location },
    };
  }

  private iotEvent(t: number): EventRecord {
    const rng = this.rng;
    const c = this.config;
    const device = rng.int(Math.max(1, Math.floor(c.users / 20)));
    const sensor = SENSORS[device % SENSORS.length];
    const spike = rng.chance(c.iotSpikeRate);
    const value = spike ? sensor.threshold * (1.05 + rng.next() * 0.5) : sensor.min + rng.next() * (sensor.max - sensor.min);
    const owner = device * 20;
    const owned = owner < c.users && device % 3 !== 0;
    this.eventUser = owned ? owner : c.users;
    return {
      source: 'IOT', eventId: `evt-${c.seed}-${++this.eventCounter}`, deviceId: `device-${device}`,
      userId: owned ? userIdOf(owner) : '',
      timestamp: t, sensorType: sensor.type, value: Math.round(value * 100) / 100, unit: sensor.unit,
      location: COUNTRIES[device % COUNTRIES.length][0],
    };
  }

  private userAction(t: number): EventRecord {
    const rng = this.rng;
    const c = this.config;
    let user: number;
    let action: string;
    if (this.failBurst && this.failBurst.left > 0) {
      user = this.failBurst.user;
      this.failBurst.left--;
      action = 'LOGIN_FAILED';
    } else if (rng.chance(c.loginFailRate)) {
      user = this.userZipf.sample(rng);
      action = 'LOGIN_FAILED';
      // One failed login in ten starts a burst (credential stuffing against one account).
      if (rng.chance(0.1)) this.failBurst = { user, left: 3 + rng.int(5) };
    } else {
      user = this.userZipf.sample(rng);
      action = rng.pick(USER_ACTIONS);
    }
    const profile = profileOf(c.seed, user, c.startTime);
    this.eventUser = user;
    return {
      source: 'USER_ACTION', eventId: `evt-${c.seed}-${++this.eventCounter}`, userId: userIdOf(user),
      sessionId: '', timestamp: t, action, platform: rng.chance(0.6) ? 'WEB' : 'MOBILE', location: profile.country,
    };
  }

  // ---- binary heap by next event time ----
  // The keys live in a Float64Array beside the items (heapT[i] === heap[i].t): comparisons read
  // contiguous memory instead of one object per level, and sifting moves a hole, not pairs.
  private heapT = new Float64Array(16);

  private push(x: Session | Clocked): void {
    const h = this.heap;
    if (h.length === this.heapT.length) {
      const grown = new Float64Array(this.heapT.length * 2);
      grown.set(this.heapT);
      this.heapT = grown;
    }
    const ht = this.heapT;
    const t = x.t;
    let i = h.length;
    h.push(x);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (ht[p] <= t) break;
      h[i] = h[p];
      ht[i] = ht[p];
      i = p;
    }
    h[i] = x;
    ht[i] = t;
  }

  /** Restores the heap after heap[i].t grew (or heap[i] was replaced by a later item). */
  private siftDown(i: number): void {
    const h = this.heap;
    const ht = this.heapT;
    const n = h.length;
    const x = h[i];
    const t = x.t;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const m = r < n && ht[r] < ht[l] ? r : l;
      if (!(ht[m] < t)) break;
      h[i] = h[m];
      ht[i] = ht[m];
      i = m;
    }
    h[i] = x;
    ht[i] = t;
  }
}

/** A user's profile is a pure function of (seed, index): the catalog needs no memory. */
export function profileOf(seed: number, i: number, startTime: number): UserProfile {
  const r = new Rng((seed * 1_000_003) ^ (i * 2_654_435_761));
  const [country, region] = r.weighted(COUNTRIES, COUNTRIES.map((c) => c[2]));
  return {
    userId: userIdOf(i),
    tier: r.weighted(TIERS, TIER_WEIGHTS),
    segment: r.pick(SEGMENTS),
    country,
    region,
    signupTime: startTime - Math.floor(r.next() * 3 * 365 * 86_400_000),
  };
}

export function productOf(seed: number, i: number): Product {
  const r = new Rng((seed * 7_919) ^ (i * 40_503 + 17));
  return {
    productId: productIdOf(i),
    name: `Product ${i}`,
    category: r.pick(CATEGORIES),
    price: Math.round(r.logNormal(40, 0.8) * 100) / 100,
  };
}
