import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine, EmbeddedSource, MemorySink, ReferenceStore, partitionOf, keyOf, EventGenerator, type EngineOptions, type GeneratorConfig } from '../../engine/index.js';
import type { EventRecord } from '../../engine/codec/types.js';
import { parseEngineConfig } from '../../engine/index.js';
import { referenceModel } from './reference-model.js';
import { expect } from 'vitest';
import { AlertStore, QueryLayer } from '../../engine/index.js';
import { sharingOf } from '../../engine/operators/pipelines/alerts.js';

export const TEST_GENERATOR: Partial<GeneratorConfig> = {
  seed: 7,
  users: 400,
  products: 200,
  eventsPerSecond: 20,
  concurrentSessions: 300,
  funnel: { productView: 0.9, addToCart: 0.8, checkout: 0.9, complete: 0.95 },
  outOfOrderRate: 0.05,
  outOfOrderMs: 20_000,
  lateRate: 0.005,
  lateMs: 10 * 60_000,
  anomalyRate: 0.05,
  iotSpikeRate: 0.01,
  switchRate: 0.05,
  loginFailRate: 0.2,
};

export function tempDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `rta-${name}-`));
}

/** The exact event list the embedded source produces for this generator and count. */
export function generateEvents(gen: Partial<GeneratorConfig>, n: number): EventRecord[] {
  return new EventGenerator(gen).take(n);
}

export async function runEmbedded(dataDir: string, gen: Partial<GeneratorConfig>, totalEvents: number, options: EngineOptions = {}, sink = new MemorySink()): Promise<Engine> {
  const engine = await startEmbedded(dataDir, gen, totalEvents, { rate: Infinity, eventsPerMessage: 200 }, options, sink);
  await engine.finished();
  return engine;
}

/** An engine on the embedded source (reference tables bootstrapped first), running: stop it or await `finished`. */
export async function startEmbedded(
  dataDir: string, gen: Partial<GeneratorConfig>, totalEvents: number, feed: { rate: number; eventsPerMessage: number }, options: EngineOptions = {}, sink = new MemorySink(),
): Promise<Engine> {
  const partitions = options.partitions ?? 8;
  const source = new EmbeddedSource({ partitions, rate: feed.rate, totalEvents, generator: gen, eventsPerMessage: feed.eventsPerMessage });
  const ref = ReferenceStore.open(dataDir);
  await source.bootstrap(ref);
  await ref.close();
  return Engine.start({ dataDir, partitions, ...options }, source, sink);
}

export function partitioner(partitions: number) {
  return (e: EventRecord) => partitionOf(keyOf(e), partitions);
}

/**
 * The reference model of `events` under the engine's default thresholds (and `graceMs`), for
 * TEST_GENERATOR-like streams over `partitions` partitions.
 */
export function referenceFor(events: EventRecord[], opts: { partitions?: number; graceMs?: number; gen?: Partial<GeneratorConfig> } = {}) {
  const partitions = opts.partitions ?? 8;
  const gen = opts.gen ?? TEST_GENERATOR;
  const cfg = parseEngineConfig({ partitions, ...(opts.graceMs !== undefined ? { graceMs: opts.graceMs } : {}) });
  return referenceModel(events, {
    partitions, partitionOf: partitioner(partitions), graceMs: cfg.graceMs, sessionGapMs: cfg.sessionGapMs, fxToUsd: cfg.fxToUsd,
    seed: gen.seed!, startTime: Date.UTC(2026, 0, 1), users: gen.users!, loginFailures: cfg.alerts.loginFailures,
    maxLocationsPer10Min: cfg.alerts.maxLocationsPer10Min, maxPlatformsPer10Min: cfg.alerts.maxPlatformsPer10Min, iot: cfg.alerts.iot,
    anomalyZScore: cfg.alerts.anomalyZScore, anomalyMinTransactions: cfg.alerts.anomalyMinTransactions,
  });
}

const ALL = { from: 0, to: Number.MAX_SAFE_INTEGER };

/** The committed numbers every exactly-once test checks: active users, events per platform, revenue windows and counts, user actions, funnel. */
export function expectCoreNumbers(q: QueryLayer, model: ReturnType<typeof referenceFor>): void {
  expect(q.activeUsers(ALL).map((r) => ({ windowStart: r.windowStart, users: r.users }))).toEqual(model.activeUsers);
  const ev: Record<string, number> = {};
  for (const r of q.platformEvents(ALL)) ev[`${r.windowStart}|${r.platform}`] = r.events;
  expect(ev).toEqual(model.platformEvents);
  expect(q.revenue(ALL).map((r) => [r.windowStart, r.count])).toEqual(model.revenue.map((r) => [r.windowStart, r.count]));
  expect(q.userActions(ALL)).toEqual(model.userActions);
  const f = q.funnel(ALL);
  expect([f.sessions, ...f.steps.map((s) => s.sessions)]).toEqual([model.funnel.sessions, ...model.funnel.reached]);
}

/**
 * Exactly once, against the reference model: every event committed once, the late drops, and the
 * core numbers, sessions and account-sharing windows of the engine's committed state.
 */
export function expectEveryNumberOnce(engine: Engine, model: ReturnType<typeof referenceFor>, events: number): void {
  expect(engine.committedTotals().events).toBe(events);
  expect(engine.committedTotals().late).toEqual(model.late);
  expectCoreNumbers(engine.query, model);
  expectSessions(engine.query, model);
  expectSharingWindows(engine.query, model);
}

/** Runs `check` on a query layer over the committed state of a data directory (8 partitions, 4 shards), closed after. */
export async function withCommittedState(dataDir: string, check: (q: QueryLayer) => void): Promise<void> {
  const alerts = AlertStore.open(dataDir);
  const q = new QueryLayer(parseEngineConfig({ dataDir, partitions: 8, shards: 4 }), alerts);
  try {
    check(q);
  } finally {
    await q.close();
    await alerts.close();
  }
}

type SessionView = { start: number; end: number; events: number; pageViews: number; transactions: number; usd: number; platforms: string[]; stages: number };

/** Every session of the model's users, closed and still open, as the query layer returns it: bounds, counts, revenue (to the cent), platforms, stages. */
export function expectSessions(q: QueryLayer, model: ReturnType<typeof referenceFor>): void {
  const users = new Set([...model.sessions.closed, ...model.sessions.open].map((s) => s.user));
  const got = { closed: new Map<string, SessionView>(), open: new Map<string, SessionView>() };
  for (const user of users) {
    const u = q.user(user);
    for (const s of u.sessions as SessionView[]) got.closed.set(`${user}|${s.start}`, s);
    for (const s of u.openSessions as SessionView[]) got.open.set(`${user}|${s.start}`, s);
  }
  const pick = (v: SessionView) => ({ start: v.start, end: v.end, events: v.events, pageViews: v.pageViews, transactions: v.transactions, platforms: [...v.platforms].sort(), stages: v.stages });
  for (const kind of ['closed', 'open'] as const) {
    expect(got[kind].size, `${kind} sessions`).toBe(model.sessions[kind].length);
    for (const m of model.sessions[kind]) {
      const s = got[kind].get(`${m.user}|${m.start}`);
      expect(s, `${kind} session of ${m.user} from ${m.start}`).toBeDefined();
      expect(pick(s!)).toEqual(pick(m));
      expect(Math.abs(s!.usd - m.usd) <= 0.011 + Math.abs(m.usd) * 1e-9, `revenue of ${m.user}'s session from ${m.start}: ${s!.usd} vs ${m.usd}`).toBe(true);
    }
  }
}

/** Every stored account-sharing window (user, 10 minutes): platforms, locations and alert flags equal the model's. */
export function expectSharingWindows(q: QueryLayer, model: ReturnType<typeof referenceFor>): void {
  const got = new Map<string, { platforms: string[]; locations: string[]; ap: boolean; al: boolean }>();
  for (const w of q.windows('account_sharing', ALL)) {
    const key = `${w.key}|${w.windowStart}`;
    expect(got.has(key), `${key} stored once`).toBe(false);
    const v = sharingOf(w.value);
    got.set(key, { platforms: [...v.platforms].sort(), locations: [...v.locations].sort(), ap: v.alertedPlatforms, al: v.alertedLocations });
  }
  expect(got.size).toBe(model.sharing.size);
  for (const [key, m] of model.sharing) expect(got.get(key), key).toEqual(m);
}

/**
 * Runs a new engine over `dataDir`'s state to the end of the same input (its messages, 5 events
 * each, as a first run with `eventsPerMessage: 5` left them: offsets count messages), then checks
 * every session, account-sharing window and core number against the model.
 */
export async function continueToModel(dataDir: string, n: number, options: EngineOptions, model: ReturnType<typeof referenceFor>): Promise<void> {
  const engine = await startEmbedded(dataDir, TEST_GENERATOR, n, { rate: 40_000, eventsPerMessage: 5 }, options);
  await engine.finished();
  await engine.stop();
  expect(engine.committedTotals().events).toBe(n);
  await withCommittedState(dataDir, (q) => {
    expectSessions(q, model);
    expectSharingWindows(q, model);
    expectCoreNumbers(q, model);
  });
}
