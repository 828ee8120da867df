import os from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';

/**
 * loadgen's options: flags > LOADGEN_* environment > defaults; unknown flags are errors.
 * Flag names follow kafka-producer-perf-test where they overlap.
 */
export interface LoadgenOptions {
  bootstrapServer: string;
  /** Events per second over all threads; -1 unthrottled. */
  throughput: number;
  durationMs: number;
  /** Events to send over all threads (Infinity when bounded by --duration). */
  numRecords: number;
  producerProps: Record<string, string>;
  users: number;
  eventsPerBatch: number;
  /** A partial batch is sent when its first event has waited this long (ms). */
  batchLingerMs: number;
  partitions: number;
  topicPrefix: string;
  seed: number;
  target: 'kafka' | 'embedded';
  threads: number;
  /** `model`: the generator's event time; `wall`: each event's intended send time (for event-to-dashboard latency). */
  timestamps: 'model' | 'wall';
  /** Wall-clock time (epoch ms) at which the schedule starts; 0: as soon as every thread is ready. */
  startAt: number;
  reference: boolean;
  referenceOnly: boolean;
  reportingIntervalMs: number;
  /**
   * When set: every acknowledged message is appended to this file (one per thread: `<path>.<thread>`
   * with --threads > 1) as `topic<TAB>partition<TAB>offset<TAB>events<TAB>key:seq,key:seq,...`, the
   * per-key sequence numbers of its events in order; the reliability reconciler reads it. Empty: off.
   */
  ackLog: string;
}

export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`--duration must look like 500ms, 60s, 5m or 1h, got "${v}"`);
  return Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] ?? 1000);
}

function int(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
}

/** `key=value` pairs, space-separated in one argument or repeated (`--producer-props linger.ms=5 acks=all`). */
function props(v: string, prev: Record<string, string>): Record<string, string> {
  const out = { ...prev };
  for (const kv of v.split(/\s+/).filter(Boolean)) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new InvalidArgumentError(`--producer-props expects key=value, got "${kv}"`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

/**
 * One thread (process) of loadgen plus the broker reaches about 100,000 events/s on this
 * machine's cores; more threads only help where there are cores to run them.
 */
export const EVENTS_PER_SEC_PER_THREAD = 80_000;

export function defaultThreads(throughput: number, cores = os.availableParallelism()): number {
  if (throughput < 0) return Math.max(1, Math.min(cores, 4));
  return Math.max(1, Math.min(cores, 4, Math.ceil(throughput / EVENTS_PER_SEC_PER_THREAD)));
}

export function loadgenCommand(): Command {
  return new Command()
    .name('loadgen')
    .description('Open-loop producer of the event model (FlatBuffers EventBatches keyed by user) into Kafka')
    .addOption(new Option('--bootstrap-server <list>', 'Kafka bootstrap servers').default('127.0.0.1:9092').env('LOADGEN_BOOTSTRAP_SERVER'))
    .addOption(new Option('--throughput <eventsPerSec>', 'target events/s over all threads; -1 for unthrottled').argParser((v) => {
      const n = Number(v);
      if (!(n === -1 || n > 0)) throw new InvalidArgumentError(`--throughput must be a positive number or -1, got "${v}"`);
      return n;
    }).default(10_000).env('LOADGEN_THROUGHPUT'))
    .addOption(new Option('--duration <d>', 'how long to run (e.g. 60s)').argParser(parseDuration).env('LOADGEN_DURATION'))
    .addOption(new Option('--num-records <n>', 'events to send (instead of --duration)').argParser(int('--num-records', 1)).env('LOADGEN_NUM_RECORDS'))
    .addOption(new Option('--producer-props <k=v...>', 'librdkafka producer settings (env: LOADGEN_PRODUCER_PROPS="k=v k=v")').argParser(props))
    .addOption(new Option('--users <n>', 'distinct users').argParser(int('--users', 1)).default(100_000).env('LOADGEN_USERS'))
    .addOption(new Option('--events-per-batch <n>', 'events per Kafka message (EventBatch)').argParser(int('--events-per-batch', 1)).default(500).env('LOADGEN_EVENTS_PER_BATCH'))
    .addOption(new Option('--batch-linger-ms <ms>', 'send a partial batch once its first event has waited this long').argParser(int('--batch-linger-ms', 0)).default(50).env('LOADGEN_BATCH_LINGER_MS'))
    .addOption(new Option('--partitions <n>', 'partitions of each topic').argParser(int('--partitions', 1)).default(8).env('LOADGEN_PARTITIONS'))
    .addOption(new Option('--topic-prefix <p>', 'topic name prefix').default('').env('LOADGEN_TOPIC_PREFIX'))
    .addOption(new Option('--seed <n>', 'random seed').argParser(int('--seed', 0)).default(42).env('LOADGEN_SEED'))
    .addOption(new Option('--target <t>', 'kafka, or embedded: generate and encode only, no broker (loadgen\'s own ceiling)').choices(['kafka', 'embedded']).default('kafka').env('LOADGEN_TARGET'))
    .addOption(new Option('--threads <n>', `producer processes, each with its own producer and a share of the rate and of the users (default: 1 per ${EVENTS_PER_SEC_PER_THREAD} events/s, at most the cores)`).argParser(int('--threads', 1)).env('LOADGEN_THREADS'))
    .addOption(new Option('--timestamps <mode>', 'event time: the generator\'s model time, or wall = each event\'s intended send time').choices(['model', 'wall']).default('model').env('LOADGEN_TIMESTAMPS'))
    .addOption(new Option('--start-at <epochMs>', 'wall-clock time at which the schedule starts (a harness sets it to know every event\'s creation time)').argParser(int('--start-at', 0)).default(0).env('LOADGEN_START_AT'))
    .addOption(new Option('--no-reference', 'do not write user profiles and the product catalog'))
    .addOption(new Option('--reference-only', 'write user profiles and the product catalog, then exit').default(false))
    .addOption(new Option('--ack-log <path>', 'append every acknowledged message (topic, partition, offset, its events\' key:seq) to this file; <path>.<thread> with --threads > 1').default('').env('LOADGEN_ACK_LOG'))
    .addOption(new Option('--reporting-interval <ms>', 'progress line interval').argParser(int('--reporting-interval', 100)).default(5000).env('LOADGEN_REPORTING_INTERVAL'))
    .allowExcessArguments(false)
    .showHelpAfterError();
}

export function parseLoadgenOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): LoadgenOptions {
  const saved = process.env;
  process.env = env; // commander reads Option.env() from process.env
  let o: Record<string, unknown>;
  try {
    const program = loadgenCommand().exitOverride();
    program.parse(argv, { from: 'user' });
    o = program.opts();
  } finally {
    process.env = saved;
  }
  const envProps = env.LOADGEN_PRODUCER_PROPS ? props(env.LOADGEN_PRODUCER_PROPS, {}) : {};
  const throughput = o.throughput as number;
  const durationMs = (o.duration as number | undefined) ?? Infinity;
  const numRecords = (o.numRecords as number | undefined) ?? (o.duration === undefined ? 1_000_000 : Infinity);
  return {
    bootstrapServer: o.bootstrapServer as string,
    throughput,
    durationMs,
    numRecords,
    producerProps: { ...envProps, ...((o.producerProps as Record<string, string> | undefined) ?? {}) },
    users: o.users as number,
    eventsPerBatch: o.eventsPerBatch as number,
    batchLingerMs: o.batchLingerMs as number,
    partitions: o.partitions as number,
    topicPrefix: o.topicPrefix as string,
    seed: o.seed as number,
    target: o.target as 'kafka' | 'embedded',
    threads: (o.threads as number | undefined) ?? defaultThreads(throughput),
    timestamps: o.timestamps as 'model' | 'wall',
    startAt: o.startAt as number,
    reference: o.reference as boolean,
    referenceOnly: o.referenceOnly as boolean,
    reportingIntervalMs: o.reportingInterval as number,
    ackLog: o.ackLog as string,
  };
}
