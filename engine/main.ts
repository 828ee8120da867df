#!/usr/bin/env node
/**
 * `npm start`: the engine on the embedded source (the default), with structured logs.
 * Options: flags > environment (RTA_*) > defaults; unknown flags are errors.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import fs from 'node:fs';
import os from 'node:os';
import v8 from 'node:v8';
import { pino } from 'pino';
import { Engine, EmbeddedSource, MemorySink, ReferenceStore, ConfigError, type EventSource, type OutputSink } from './index.js';
import { ensureTopics } from './kafka/topics.js';
import { ReferenceLoader } from './kafka/reference-loader.js';
import { KafkaSource } from './source/kafka.js';
import { KafkaSink } from './sink/kafka-sink.js';
import { ChangelogRestorer, ChangelogWriter } from './kafka/changelog.js';
import type { ScaleOut } from './engine.js';
import { InstanceRegistry } from './kafka/instances.js';
import { LivePartials } from './kafka/live-partials.js';
import { DashboardServer, WS_COMPRESSION } from '../server/server.js';
import { AccessPolicy, ServerConfigError } from '../server/security.js';
import { MINUTE } from './operators/windows.js';

const log = pino({ name: 'rta-engine' });

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${v}"`);
    return n;
  };
}
function num(name: string) {
  return (v: string): number => {
    const n = v === 'max' ? Infinity : Number(v);
    if (!(n > 0)) throw new InvalidArgumentError(`${name} must be a positive number (or "max"), got "${v}"`);
    return n;
  };
}

function kv(v: string, prev: Record<string, string>): Record<string, string> {
  const i = v.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`--kafka expects key=value (a librdkafka setting), got "${v}"`);
  return { ...prev, [v.slice(0, i)]: v.slice(i + 1) };
}

/** librdkafka settings from the environment: KAFKA_SETTING_SOCKET_TIMEOUT_MS=... -> socket.timeout.ms. */
function kafkaEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('KAFKA_SETTING_') && v !== undefined) out[k.slice(14).toLowerCase().replace(/_/g, '.')] = v;
  }
  return out;
}

const program = new Command()
  .name('rta-engine')
  .description('Real-time analytics engine: event streams -> windowed analytics and alerts -> dashboard')
  .addOption(new Option('--source <source>', 'event source').choices(['embedded', 'kafka']).default('embedded').env('RTA_SOURCE'))
  .addOption(new Option('--brokers <list>', 'Kafka bootstrap servers (host:port,...)').default('127.0.0.1:9092').env('KAFKA_BROKERS'))
  .addOption(new Option('--kafka <key=value...>', 'librdkafka settings passed through (repeatable)').argParser(kv).default({}))
  .addOption(new Option('--group-id <id>', 'Kafka consumer group').default('rta-engine').env('RTA_GROUP_ID'))
  .addOption(new Option('--topic-prefix <prefix>', 'prefix of every Kafka topic name').default('').env('RTA_TOPIC_PREFIX'))
  .addOption(new Option('--changelog', 'scale out: several processes in one consumer group; state changes go to the <prefix>state-changelog topic and assigned partitions are restored from it (Kafka source only)').default(false).env('RTA_CHANGELOG'))
  .addOption(new Option('--advertised-url <url>', 'scaled out: the URL other instances reach this one\'s query API at (default: the server\'s own URL)').env('RTA_ADVERTISED_URL'))
  .addOption(new Option('--instance-id <id>', 'scaled out: this instance\'s name in the <prefix>instances topic (default: host-pid)').env('RTA_INSTANCE_ID'))
  .addOption(new Option('--data-dir <dir>', 'state directory (LMDB)').default('data').env('RTA_DATA_DIR'))
  .addOption(new Option('--workers <n>', 'worker threads (default: cores - 1)').argParser(int('--workers')).env('RTA_WORKERS'))
  .addOption(new Option('--partitions <n>', 'input partitions').argParser(int('--partitions')).default(8).env('RTA_PARTITIONS'))
  .addOption(new Option('--shards <n>', 'state shards (fixed for a data directory; default 8, or --partitions if lower)').argParser(int('--shards')).env('RTA_SHARDS'))
  .addOption(new Option('--rate <eventsPerSec>', 'embedded source: events per second of wall time, or "max"').argParser(num('--rate')).default(5000).env('RTA_RATE'))
  .addOption(new Option('--time-scale <x>', 'embedded source: event-time seconds per wall second').argParser(num('--time-scale')).default(1).env('RTA_TIME_SCALE'))
  .addOption(new Option('--events <n>', 'embedded source: stop after this many events').argParser(int('--events')).env('RTA_EVENTS'))
  .addOption(new Option('--users <n>', 'embedded source: distinct users').argParser(int('--users')).default(100_000).env('RTA_USERS'))
  .addOption(new Option('--seed <n>', 'embedded source: random seed').argParser(int('--seed')).default(42).env('RTA_SEED'))
  .addOption(new Option('--commit-interval-ms <ms>', 'state commit interval').argParser(int('--commit-interval-ms')).default(1000).env('RTA_COMMIT_INTERVAL_MS'))
  .addOption(new Option('--worker-max-keys <n>', 'keys (users, devices, products) a worker thread may intern before it is replaced by a fresh one, its shards reopened from a commit: bounds the workers\' memory while an unbounded number of users passes through').argParser(int('--worker-max-keys')).default(1_000_000).env('RTA_WORKER_MAX_KEYS'))
  .addOption(new Option('--store-writemap', 'UNSAFE, for benchmarks: open the shard stores with LMDB\'s MDB_WRITEMAP: cheaper commits with many users, but LMDB then aborts the process in some delete-heavy commits such as retention\'s (see README)').default(false).env('RTA_STORE_WRITEMAP'))
  .addOption(new Option('--store-page-size <bytes>', 'LMDB page size of shard stores created from now on (4096-65536, a power of two; existing stores keep theirs): since open sessions are stored in groups of users, 16384 was 14 % slower with a million users (see README)').argParser(int('--store-page-size')).env('RTA_STORE_PAGE_SIZE'))
  .addOption(new Option('--worker-nice <n>', 'niceness of the worker and query threads (Linux; 0 = same priority as the main thread)').argParser(int('--worker-nice')).default(10).env('RTA_WORKER_NICE'))
  .addOption(new Option('--heap-growing-percent <n>', 'V8 heap growth after each full GC, in percent of the live heap (0 = V8\'s adaptive default; see BENCHMARKS.md, REST)').argParser(int('--heap-growing-percent')).default(300).env('RTA_HEAP_GROWING_PERCENT'))
  .addOption(new Option('--grace-ms <ms>', 'window grace period').argParser(int('--grace-ms')).default(30_000).env('RTA_GRACE_MS'))
  .addOption(new Option('--idle-timeout-ms <ms>', 'a partition without events this long (wall time) stops holding back global windows').argParser(int('--idle-timeout-ms')).default(60_000).env('RTA_IDLE_TIMEOUT_MS'))
  .addOption(new Option('--webhook-url <url>', 'CRITICAL alert webhook').env('RTA_WEBHOOK_URL'))
  .addOption(new Option('--host <host>', 'dashboard server address').default('127.0.0.1').env('RTA_HOST'))
  .addOption(new Option('--port <port>', 'dashboard server port (0: any free port)').argParser(int('--port')).default(8080).env('RTA_PORT'))
  .addOption(new Option('--access-token <token>', 'required on API calls and the WebSocket (mandatory when --host is not loopback); never logged').env('RTA_ACCESS_TOKEN'))
  .addOption(new Option('--allowed-origins <list>', 'browser origins allowed on /dashboard-ws (comma-separated; default: the page\'s own origin; * = any)').default('').env('RTA_ALLOWED_ORIGINS'))
  .addOption(new Option('--ws-compression <mode>', 'live delta compression (see bench:fanout for the measurements)').choices([...WS_COMPRESSION]).default('shared').env('RTA_WS_COMPRESSION'))
  .addOption(new Option('--rest-cache-ms <ms>', 'REST dashboard queries: reuse an answer this long while the state changes').argParser(int('--rest-cache-ms')).default(1000).env('RTA_REST_CACHE_MS'))
  .addOption(new Option('--tick-snapshot <where>', 'where each live-update tick builds the dashboard snapshot (event-loop: as before, for comparison)').choices(['query-thread', 'event-loop']).default('query-thread').env('RTA_TICK_SNAPSHOT'))
  .addOption(new Option('--tick-ms <ms>', 'live update batching interval').argParser(int('--tick-ms')).default(250).env('RTA_TICK_MS'))
  .addOption(new Option('--audit-sequences', 'store per user the sequence numbers of the events counted, to verify per key that nothing is lost or counted twice (tests; off by default)').default(false).env('RTA_AUDIT_SEQUENCES'))
  .addOption(new Option('--status-interval-ms <ms>', 'progress log interval').argParser(int('--status-interval-ms')).default(5000).env('RTA_STATUS_INTERVAL_MS'))
  .allowExcessArguments(false)
  .showHelpAfterError();

program.parse();
const o = program.opts();
// Before any worker starts (V8 flags are per process). The main thread's live heap is small (about
// 14 MB) and V8's adaptive growth gave it about 10% of headroom: a full GC every 3.4 s whose
// marking steps and final pause (5-15 ms) held the event loop, so REST and WebSocket latency.
if (o.heapGrowingPercent > 0) v8.setFlagsFromString(`--heap-growing-percent=${o.heapGrowingPercent}`);

async function main(): Promise<void> {
  // Refuse an unsafe server setup before anything starts (no token on a public address, weak token).
  try {
    new AccessPolicy({ host: o.host, accessToken: o.accessToken, allowedOrigins: [] });
  } catch (e) {
    if (e instanceof ServerConfigError) {
      log.error({ code: e.code }, e.message);
      process.exit(2);
    }
    throw e;
  }
  if (o.changelog && o.source !== 'kafka') {
    log.error({ code: 'ERR_ENGINE_CONFIG' }, '--changelog needs --source kafka: scaling out is several processes in one Kafka consumer group');
    process.exit(2);
  }
  fs.mkdirSync(o.dataDir, { recursive: true });
  const ref = ReferenceStore.open(o.dataDir);
  let source: EventSource;
  let sink: OutputSink;
  let loader: ReferenceLoader | null = null;
  let scale: ScaleOut | null = null;
  if (o.source === 'kafka') {
    const kafkaConfig = { ...kafkaEnv(), ...o.kafka };
    const topics = await ensureTopics(o.brokers, o.topicPrefix, o.partitions, kafkaConfig, { changelog: Boolean(o.changelog) });
    if (o.changelog) {
      const copts = { brokers: o.brokers, topicPrefix: o.topicPrefix, groupId: o.groupId, kafkaConfig, dataDir: o.dataDir };
      scale = { writer: new ChangelogWriter(copts), restorer: new ChangelogRestorer(copts) };
    }
    log.info({ brokers: o.brokers, created: topics.created }, 'topics ready');
    loader = new ReferenceLoader({ brokers: o.brokers, topicPrefix: o.topicPrefix, partitions: o.partitions, store: ref, kafkaConfig });
    log.info(await loader.bootstrap(), 'reference tables read to their end');
    const kafkaSink = new KafkaSink({ brokers: o.brokers, topicPrefix: o.topicPrefix, kafkaConfig, maxAttempts: 5 });
    await kafkaSink.connected();
    sink = kafkaSink;
    source = new KafkaSource({ brokers: o.brokers, groupId: o.groupId, topicPrefix: o.topicPrefix, kafkaConfig, batchSize: 1000 });
  } else {
    const embedded = new EmbeddedSource({
      partitions: o.partitions,
      rate: o.rate,
      totalEvents: o.events,
      threadNice: o.workerNice,
      generator: { seed: o.seed, users: o.users, startTime: Date.now(), eventsPerSecond: Number.isFinite(o.rate) ? o.rate / o.timeScale : 20_000 },
    });
    log.info(await embedded.bootstrap(ref), 'reference tables bootstrapped');
    source = embedded;
    sink = new MemorySink(100_000);
  }
  let engine: Engine;
  try {
    engine = await Engine.start({
      dataDir: o.dataDir, partitions: o.partitions, ...(o.shards ? { shards: o.shards } : {}), ...(o.workers ? { workers: o.workers } : {}),
      commitIntervalMs: o.commitIntervalMs, workerMaxKeys: o.workerMaxKeys, workerNice: o.workerNice, graceMs: o.graceMs, idleTimeoutMs: o.idleTimeoutMs, webhookUrl: o.webhookUrl, changelog: Boolean(o.changelog), auditSequences: o.auditSequences === true, storeWritemap: o.storeWritemap === true, ...(o.storePageSize ? { storePageSize: o.storePageSize } : {}),
    }, source, sink, scale);
  } catch (e) {
    if (e instanceof ConfigError) {
      log.error({ code: e.code }, e.message);
      process.exit(2);
    }
    throw e;
  }
  // Scaled out: every partition's committed dashboard partials, read to their end before the live
  // stream is served (so a first snapshot is never missing a partition).
  const instanceId = o.instanceId ?? `${os.hostname()}-${process.pid}`;
  let live: LivePartials | null = null;
  if (scale) {
    live = new LivePartials({ brokers: o.brokers, topicPrefix: o.topicPrefix, partitions: o.partitions, instanceId, kafkaConfig: { ...kafkaEnv(), ...o.kafka } });
    await live.start();
    await live.whenReady();
    log.info({ entries: live.size, records: live.stats.records }, 'scaled out: dashboard partials of every partition read to their end');
  }
  const server = await DashboardServer.start(engine, {
    host: o.host, port: o.port, tickMs: o.tickMs, tickSnapshot: o.tickSnapshot, accessToken: o.accessToken, wsCompression: o.wsCompression, restCacheMs: o.restCacheMs,
    allowedOrigins: String(o.allowedOrigins).split(',').map((x: string) => x.trim()).filter(Boolean),
  });
  let registry: InstanceRegistry | null = null;
  if (scale) {
    const kafkaConfig = { ...kafkaEnv(), ...o.kafka };
    registry = new InstanceRegistry({
      brokers: o.brokers, topicPrefix: o.topicPrefix, kafkaConfig,
      instanceId, advertisedUrl: o.advertisedUrl ?? server.url,
    });
    await registry.start();
    const r = registry;
    engine.attachLive(live!, () => r.owners());
    server.attachLive(live!);
    engine.onOwnership((owned) => r.setOwned(owned));
    r.setOwned(engine.ownedPartitions());
    server.attachRegistry(r);
    log.info({ instanceId: r.instanceId, advertisedUrl: o.advertisedUrl ?? server.url }, 'scaled out: query endpoint advertised on the instances topic');
  }
  log.info({ source: o.source, workers: engine.config.workers, shards: engine.config.shards, partitions: engine.config.partitions, dataDir: o.dataDir, cores: os.availableParallelism(), url: server.url },
    `engine started; dashboard API at ${server.url}/api/dashboard/health, live updates at ws://${o.host}:${server.port}/dashboard-ws, metrics at ${server.url}/metrics, dashboard at ${server.assets.available ? `${server.url}/` : 'not built (npm run build:ui)'}`);
  console.error(`\n  Dashboard:     ${server.assets.available ? `${server.url}/` : 'not built (run npm run build:ui)'}\n  Dashboard API: ${server.url}/api/dashboard/health\n  Live updates:  ws://${o.host}:${server.port}/dashboard-ws\n  Metrics:       ${server.url}/metrics\n`);

  let last = { t: performance.now(), events: 0 };
  const status = setInterval(() => {
    const now = performance.now();
    const m = engine.metrics;
    const st = engine.query.latestStreamTime();
    const active = engine.query.activeUsers({ from: st - 2 * MINUTE, to: st + 1 });
    const revenue = engine.query.revenue({ from: st - 6 * MINUTE, to: st + 1 });
    const alerts = engine.query.alerts({ limit: 0 });
    log.info({
      eventsPerSec: Math.round(((m.events - last.events) * 1000) / (now - last.t)),
      events: m.events, committedEvents: engine.committedTotals().events, lateDropped: engine.committedTotals().late, deadLetters: m.deadLetters,
      activeUsersLastMinute: active.at(-1)?.users ?? 0, revenueUsdLast5Min: revenue.at(-1)?.usd ?? 0,
      alerts: alerts.bySeverity, commits: m.commits, streamTime: st ? new Date(st).toISOString() : null,
    }, 'progress');
    last = { t: now, events: m.events };
  }, o.statusIntervalMs);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    clearInterval(status);
    log.info({ signal }, 'stopping: closing the server, draining workers and committing');
    await registry?.stop();
    await server.close();
    await live?.stop();
    const timer = setTimeout(() => {
      log.error('graceful stop took longer than 30 s; exiting');
      process.exit(1);
    }, 30_000);
    await engine.stop();
    await loader?.stop();
    await ref.close();
    clearTimeout(timer);
    log.info({ events: engine.metrics.events }, 'stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  if (o.events !== undefined) {
    await engine.finished();
    await stop('end of bounded run');
  }
}

main().catch((e) => {
  log.fatal({ err: e }, 'engine failed');
  process.exit(1);
});
