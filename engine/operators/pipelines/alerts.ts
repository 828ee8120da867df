import { EventKind, type Alert } from '../../codec/types.js';
import type { ScratchEvent } from '../../workers/scratch.js';
import { WindowedPipeline, alertId, userKeyCodec, type Pipeline, type PipelineContext, type StateKey } from '../api.js';
import { MINUTE, tumblingStart } from '../windows.js';
import type { UserColumn } from '../../workers/symbols.js';

function severityByRatio(ratio: number): Alert['severity'] {
  return ratio >= 4 ? 'CRITICAL' : ratio >= 2 ? 'HIGH' : 'MEDIUM';
}

/** Repeated LOGIN_FAILED: more than the threshold per user in a 5-minute window, once per window. */
export class LoginFailuresPipeline extends WindowedPipeline<{ n: number; alerted: boolean }> {
  static readonly SIZE = 5 * MINUTE;

  constructor(ctx: PipelineContext) {
    super('login_failures', ctx, LoginFailuresPipeline.SIZE, userKeyCodec(ctx, () => ({ n: 0, alerted: false })));
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (e.kind !== EventKind.USER_ACTION || e.action !== this.ctx.vocab.LOGIN_FAILED) return;
    const ws = tumblingStart(e.ts, LoginFailuresPipeline.SIZE);
    const entry = this.entryFor(ws, e.user, streamTime);
    if (!entry) return;
    const v = entry.value;
    v.n++;
    const threshold = this.ctx.config.alerts.loginFailures;
    if (!v.alerted && v.n >= threshold) {
      v.alerted = true;
      const userId = this.ctx.vocab.users.values[e.user];
      this.ctx.alert({
        alertId: alertId('REPEATED_LOGIN_FAILURE', userId, ws), type: 'REPEATED_LOGIN_FAILURE', severity: v.n >= threshold * 3 ? 'HIGH' : 'MEDIUM',
        key: userId, windowStart: ws, timestamp: e.ts, message: `${v.n} failed logins for ${userId} within 5 minutes`, value: v.n, threshold, userId,
      });
    }
  }
}

/** Platforms and locations of one user in one window: a handful each, so arrays, not Sets. */
interface Sharing {
  platforms: number[];
  locations: number[];
  alertedPlatforms: boolean;
  alertedLocations: boolean;
}

/** More than N platforms or M locations for one user within a 10-minute window (account sharing). */
export class AccountSharingPipeline extends WindowedPipeline<Sharing> {
  static readonly SIZE = 10 * MINUTE;
  // Hot path: an event whose platform and location the user's current window already holds
  // changes nothing. Columns per user: window index, partition, platform bits, two locations.
  private readonly cWindow: UserColumn;
  private readonly cPartition: UserColumn;
  private readonly cMask: UserColumn;
  private readonly cLoc1: UserColumn;
  private readonly cLoc2: UserColumn;

  constructor(ctx: PipelineContext) {
    super('account_sharing', ctx, AccountSharingPipeline.SIZE, userKeyCodec<Sharing>(
      ctx,
      () => ({ platforms: [], locations: [], alertedPlatforms: false, alertedLocations: false }),
      (v) => ({ p: v.platforms.map((x) => ctx.vocab.sym(x)), l: v.locations.map((x) => ctx.vocab.sym(x)), ap: v.alertedPlatforms, al: v.alertedLocations }),
      (x) => {
        const o = x as { p: string[]; l: string[]; ap: boolean; al: boolean };
        return { platforms: [...new Set(o.p.map((s) => ctx.vocab.symOf(s)))], locations: [...new Set(o.l.map((s) => ctx.vocab.symOf(s)))], alertedPlatforms: o.ap, alertedLocations: o.al };
      },
    ));
    const v = ctx.vocab;
    this.cWindow = v.column('sharing.window');
    this.cPartition = v.column('sharing.partition');
    this.cMask = v.column('sharing.mask', 0);
    this.cLoc1 = v.column('sharing.loc1');
    this.cLoc2 = v.column('sharing.loc2');
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (e.user < 0 || e.kind === EventKind.IOT) return;
    const ws = tumblingStart(e.ts, AccountSharingPipeline.SIZE);
    const u = e.user;
    const w = ws / AccountSharingPipeline.SIZE;
    const loc = e.location === this.ctx.vocab.EMPTY ? -1 : e.location;
    const bit = e.platform < 31 ? 1 << e.platform : 0;
    const current = this.cWindow.get(u) === w && this.cPartition.get(u) === this.ctx.partition;
    if (current && bit !== 0 && (this.cMask.get(u) & bit) !== 0 && (loc === -1 || loc === this.cLoc1.get(u) || loc === this.cLoc2.get(u)) && !this.store.isLate(ws, streamTime)) return;
    const entry = this.entryFor(ws, u, streamTime);
    if (!entry) return;
    const v = entry.value;
    if (!v.platforms.includes(e.platform)) v.platforms.push(e.platform);
    if (loc !== -1 && !v.locations.includes(loc)) v.locations.push(loc);
    if (!current) {
      this.cWindow.set(u, w);
      this.cPartition.set(u, this.ctx.partition);
      this.cMask.set(u, bit);
      this.cLoc1.set(u, loc);
      this.cLoc2.set(u, -1);
    } else {
      this.cMask.set(u, this.cMask.get(u) | bit);
      if (loc !== -1 && loc !== this.cLoc1.get(u) && loc !== this.cLoc2.get(u)) {
        if (this.cLoc1.get(u) === -1) this.cLoc1.set(u, loc);
        else if (this.cLoc2.get(u) === -1) this.cLoc2.set(u, loc);
      }
    }
    const a = this.ctx.config.alerts;
    const userId = this.ctx.vocab.users.values[e.user];
    if (!v.alertedPlatforms && v.platforms.length > a.maxPlatformsPer10Min) {
      v.alertedPlatforms = true;
      this.ctx.alert({
        alertId: alertId('MULTIPLE_PLATFORMS', userId, ws), type: 'MULTIPLE_PLATFORMS', severity: 'MEDIUM', key: userId, windowStart: ws, timestamp: e.ts,
        message: `${userId} used ${v.platforms.length} platforms within 10 minutes`, value: v.platforms.length, threshold: a.maxPlatformsPer10Min, userId,
      });
    }
    if (!v.alertedLocations && v.locations.length > a.maxLocationsPer10Min) {
      v.alertedLocations = true;
      this.ctx.alert({
        alertId: alertId('MULTIPLE_LOCATIONS', userId, ws), type: 'MULTIPLE_LOCATIONS', severity: 'HIGH', key: userId, windowStart: ws, timestamp: e.ts,
        message: `${userId} appeared in ${v.locations.length} locations within 10 minutes (${v.locations.map((l) => this.ctx.vocab.sym(l)).join(', ')})`,
        value: v.locations.length, threshold: a.maxLocationsPer10Min, userId,
      });
    }
  }
}

/** An IoT reading over its sensor's threshold: one alert per device per 1-minute window. */
export class IotThresholdPipeline extends WindowedPipeline<{ alerted: boolean }> {
  constructor(ctx: PipelineContext) {
    const devices = ctx.vocab.devices;
    super('iot_threshold', ctx, MINUTE, {
      create: () => ({ alerted: false }),
      keyToString: (k) => devices.values[k],
      keyFromString: (s) => devices.internString(s),
      encode: (v) => v,
      decode: (x) => x as { alerted: boolean },
    });
  }

  onEvent(e: ScratchEvent, streamTime: number): void {
    if (e.kind !== EventKind.IOT) return;
    const sensor = this.ctx.vocab.sym(e.action);
    const threshold = this.ctx.config.alerts.iot[sensor];
    if (threshold === undefined || !(e.value > threshold)) return;
    const ws = tumblingStart(e.ts, MINUTE);
    const entry = this.entryFor(ws, e.device, streamTime);
    if (!entry || entry.value.alerted) return;
    entry.value.alerted = true;
    const deviceId = this.ctx.vocab.devices.values[e.device];
    const userId = e.user >= 0 ? this.ctx.vocab.users.values[e.user] : '';
    this.ctx.alert({
      alertId: alertId('IOT_THRESHOLD', deviceId, ws), type: 'IOT_THRESHOLD', severity: 'CRITICAL', key: deviceId, windowStart: ws, timestamp: e.ts,
      message: `${sensor} reading ${e.value} on ${deviceId} is over its threshold ${threshold}`, value: e.value, threshold, userId,
    });
  }
}

interface Baseline {
  n: number;
  mean: number;
  m2: number;
}

/**
 * Transaction amount anomaly against the user's baseline: running mean and variance (Welford) of
 * the user's completed transactions in USD. An amount more than z standard deviations above the
 * mean, once the user has enough history, alerts; anomalies do not move the baseline.
 */
export class TransactionAnomalyPipeline implements Pipeline {
  readonly name = 'baseline';
  readonly changed = new Set<number>();
  private readonly baselines = new Map<number, Baseline>();
  private readonly dirty = new Set<number>();

  constructor(private readonly ctx: PipelineContext) {}

  onEvent(e: ScratchEvent, _streamTime: number): void {
    if (e.kind !== EventKind.TRANSACTION || e.action !== this.ctx.vocab.COMPLETED) return;
    const usd = e.amount * this.ctx.fx(e.currency);
    let b = this.baselines.get(e.user);
    if (!b) this.baselines.set(e.user, (b = { n: 0, mean: 0, m2: 0 }));
    const a = this.ctx.config.alerts;
    if (b.n >= a.anomalyMinTransactions) {
      const sd = Math.sqrt(b.m2 / (b.n - 1));
      const z = sd > 0 ? (usd - b.mean) / sd : usd > b.mean * 2 ? Infinity : 0;
      if (z > a.anomalyZScore) {
        const userId = this.ctx.vocab.users.values[e.user];
        this.ctx.alert({
          alertId: alertId('TRANSACTION_ANOMALY', userId, e.ts), type: 'TRANSACTION_ANOMALY', severity: severityByRatio(z / a.anomalyZScore), key: userId,
          windowStart: e.ts, timestamp: e.ts,
          message: `transaction of ${usd.toFixed(2)} USD by ${userId} is ${Number.isFinite(z) ? z.toFixed(1) : 'far'} standard deviations above the user's mean of ${b.mean.toFixed(2)} USD`,
          value: Math.round(usd * 100) / 100, threshold: Math.round((b.mean + a.anomalyZScore * sd) * 100) / 100, userId,
        });
        return; // an anomaly does not become part of the baseline
      }
    }
    b.n++;
    const d = usd - b.mean;
    b.mean += d / b.n;
    b.m2 += d * (usd - b.mean);
    this.dirty.add(e.user);
  }

  onStreamTime(): void {}

  collectWrites(write: (key: StateKey, value: unknown) => void): void {
    for (const u of this.dirty) write([this.ctx.vocab.users.values[u]], this.baselines.get(u));
  }

  committed(): void {
    this.dirty.clear();
  }

  restore(key: StateKey, value: unknown): void {
    this.baselines.set(this.ctx.vocab.users.internString(key[0] as string), value as Baseline);
  }

  get dirtyCount(): number {
    return this.dirty.size;
  }
}
