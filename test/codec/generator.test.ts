import { describe, expect, it } from 'vitest';
import { EventGenerator } from '../../engine/source/generator.js';
import type { EventRecord } from '../../engine/codec/index.js';

function actionOf(e: EventRecord): string {
  switch (e.source) {
    case 'TRANSACTION': return e.type;
    case 'IOT': return e.sensorType;
    default: return e.action;
  }
}

describe('event generator', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    const a = new EventGenerator({ seed: 7 }).take(5000);
    const b = new EventGenerator({ seed: 7 }).take(5000);
    const c = new EventGenerator({ seed: 8 }).take(5000);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('numbers each user id\'s events 1, 2, 3... in order (ownerless IoT events share the empty id)', () => {
    const events = new EventGenerator({ seed: 3, users: 500 }).take(50_000);
    const last = new Map<string, number>();
    for (const e of events) {
      const expected = (last.get(e.userId) ?? 0) + 1;
      expect(e.seq).toBe(expected);
      last.set(e.userId, expected);
    }
    expect(last.get('')).toBeGreaterThan(0);
    expect(last.size).toBeGreaterThan(100);
  });

  it('funnel continuation and error rates match the configuration', () => {
    const funnel = { productView: 0.7, addToCart: 0.5, checkout: 0.5, complete: 0.8 };
    const concurrentSessions = 200;
    const g = new EventGenerator({ seed: 1, eventsPerSecond: 20, concurrentSessions, errorRate: 0.04, funnel, outOfOrderRate: 0, lateRate: 0 });
    const events = g.take(300_000);
    // Count only sessions that started inside the run (the first ones are staggered mid-way).
    const stages = new Map<string, Set<string>>();
    let browse = 0, errors = 0;
    for (const e of events) {
      if (e.source !== 'WEB' && e.source !== 'MOBILE' && e.source !== 'TRANSACTION') continue;
      const n = Number(e.sessionId.split('-')[2]);
      if (n <= concurrentSessions) continue;
      const a = actionOf(e);
      if (e.source !== 'TRANSACTION') {
        browse++;
        if (a === 'ERROR') errors++;
      }
      const set = stages.get(a) ?? new Set();
      set.add(e.sessionId);
      stages.set(a, set);
    }
    const count = (a: string) => stages.get(a)?.size ?? 0;
    const sessions = count('PAGE_VIEW');
    expect(sessions).toBeGreaterThan(1500);
    const within = (x: number, want: number) => expect(Math.abs(x - want)).toBeLessThan(0.05);
    within(count('PRODUCT_VIEW') / sessions, funnel.productView);
    within(count('ADD_TO_CART') / count('PRODUCT_VIEW'), funnel.addToCart);
    within(count('CHECKOUT') / count('ADD_TO_CART'), funnel.checkout);
    within(count('COMPLETED') / (count('COMPLETED') + count('FAILED')), funnel.complete);
    // Funnel steps are not errors; the error share is of browsing events.
    within(errors / browse, 0.04);
  });

  it('runs at the configured event-time rate, with sessions of 1-60 minutes', () => {
    const g = new EventGenerator({ seed: 2, eventsPerSecond: 1000, outOfOrderRate: 0, lateRate: 0 });
    const events = g.take(200_000);
    const span = (events[events.length - 1].timestamp - events[0].timestamp) / 1000;
    expect(events.length / span).toBeGreaterThan(900);
    expect(events.length / span).toBeLessThan(1100);
    const bounds = new Map<string, [number, number]>();
    for (const e of events) {
      if (!('sessionId' in e) || !e.sessionId) continue;
      const b = bounds.get(e.sessionId);
      if (b) b[1] = e.timestamp;
      else bounds.set(e.sessionId, [e.timestamp, e.timestamp]);
    }
    for (const [, [s, t]] of bounds) expect(t - s).toBeLessThanOrEqual(60 * 60_000);
  });

  it('produces anomalies, IoT spikes, failed logins and late events at their rates', () => {
    const g = new EventGenerator({ seed: 4, eventsPerSecond: 2000, iotSpikeRate: 0.01, lateRate: 0.001 });
    const events = g.take(300_000);
    const iot = events.filter((e) => e.source === 'IOT');
    const spikes = iot.filter((e) => e.source === 'IOT' && ((e.sensorType === 'TEMPERATURE' && e.value > 80) || (e.sensorType === 'VIBRATION' && e.value > 20)));
    expect(iot.length / events.length).toBeGreaterThan(0.06);
    expect(spikes.length).toBeGreaterThan(0);
    const failed = events.filter((e) => e.source === 'USER_ACTION' && e.action === 'LOGIN_FAILED');
    expect(failed.length).toBeGreaterThan(100);
    let late = 0, maxSeen = 0;
    for (const e of events) {
      if (e.timestamp < maxSeen - 5 * 60_000) late++;
      maxSeen = Math.max(maxSeen, e.timestamp);
    }
    expect(late / events.length).toBeGreaterThan(0.0005);
    expect(late / events.length).toBeLessThan(0.002);
  });
});
