#!/usr/bin/env node
/**
 * loadgen: writes the realistic event model to Kafka as FlatBuffers EventBatches keyed by user,
 * at a target rate, open loop: sends are scheduled by the clock, not by acknowledgements, and
 * delivery latency is measured from the intended send time (coordinated-omission correction).
 * Flags follow Kafka's kafka-producer-perf-test where they overlap. With --threads N (default:
 * one per 80,000 events/s, at most the cores), N processes each run their own producer with a
 * share of the rate and of the users; this process merges their histograms and progress.
 *
 *   npm run loadgen -- --bootstrap-server 127.0.0.1:9092 --throughput 100000 --duration 60s
 *   npm run loadgen -- --num-records 1000000 --throughput -1 --threads 2 --producer-props linger.ms=5 acks=all
 *
 * Progress on stderr every --reporting-interval; then kafka-producer-perf-test's summary line and,
 * last, the same as JSON. SIGINT or SIGTERM stops the schedule early: what was generated is sent,
 * its delivery reports are awaited, and the summary covers it ("stopped": true); a second signal
 * quits at once.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { ensureTopics } from '../engine/kafka/topics.js';
import { addEncoded, latencyHistogram, ms } from './histogram.js';
import { parseLoadgenOptions, type LoadgenOptions } from './options.js';
import { runShare, type ShareConfig, type ShareCounters, type ShareMessage } from './share.js';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

interface ShareHandle {
  send(m: unknown): void;
  child: ChildProcess | null;
}

export async function runLoadgen(o: LoadgenOptions): Promise<number> {
  if (o.timestamps === 'wall' && o.throughput < 0) throw new Error('--timestamps wall needs a --throughput (the schedule gives each event its time)');
  if (o.target === 'kafka') await ensureTopics(o.bootstrapServer, o.topicPrefix, o.partitions);
  const n = o.threads;
  const reportMs = Math.min(1000, o.reportingIntervalMs);
  const total = latencyHistogram();
  const interval = latencyHistogram();
  const counters: ShareCounters[] = Array.from({ length: n }, () => ({ sent: 0, acked: 0, errors: 0, bytes: 0, messages: 0, behindMs: 0 }));
  const seconds: number[] = new Array(n).fill(0);
  const failures: string[] = [];
  let ready = 0;
  let done = 0;
  let onReady: () => void = () => undefined;
  let onDone: () => void = () => undefined;
  const allReady = new Promise<void>((r) => (onReady = r));
  const allDone = new Promise<void>((r) => (onDone = r));
  const finish = () => {
    if (++done === n) onDone();
  };
  const receive = (m: ShareMessage) => {
    switch (m.type) {
      case 'ready':
        if (++ready === n) onReady();
        break;
      case 'stats':
      case 'done':
        counters[m.index] = m.counters;
        addEncoded(interval, m.histogram);
        addEncoded(total, m.histogram);
        if (m.type === 'done') {
          seconds[m.index] = m.seconds;
          finish();
        }
        break;
      case 'failed':
        failures.push(`thread ${m.index}: ${m.message}`);
        if (++ready === n) onReady();
        finish();
        break;
    }
  };

  const handles: ShareHandle[] = [];
  const stop = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals > 1) process.exit(130);
    console.error(`loadgen: ${sig}: stopping the schedule, waiting for delivery reports (${sig} again quits at once)`);
    stop.abort();
    for (const h of handles) if (h.child?.connected) h.child.send({ type: 'stop' });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let resolveGo: (startAt: number) => void = () => undefined;
  const go = new Promise<number>((r) => (resolveGo = r));
  for (let i = 0; i < n; i++) {
    const cfg: ShareConfig = { ...o, index: i, count: n };
    if (n === 1) {
      // One thread runs in this process: nothing to fork.
      void runShare(cfg, receive, go, reportMs, stop.signal);
      handles.push({ send: (m) => resolveGo((m as { startAt: number }).startAt), child: null });
      continue;
    }
    const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let finished = false;
    child.on('message', (m: ShareMessage) => {
      if (m.type === 'done' || m.type === 'failed') finished = true;
      receive(m);
    });
    child.on('exit', (code) => {
      if (!finished) receive({ type: 'failed', index: i, message: `process exited with code ${code} before finishing` });
    });
    child.send({ type: 'config', cfg, reportMs });
    handles.push({ send: (m) => child.send(m as object), child });
  }
  await allReady;
  if (failures.length) {
    for (const h of handles) h.child?.kill();
    throw new Error(failures.join('; '));
  }
  const startAt = o.startAt > 0 ? o.startAt : Date.now() + 100;
  for (const h of handles) h.send({ type: 'go', startAt });
  if (o.referenceOnly) {
    await allDone;
    const c = counters.reduce((a, b) => a + b.messages, 0);
    console.log(JSON.stringify({ bench: 'loadgen', referenceRecords: c, errors: counters.reduce((a, b) => a + b.errors, 0) }));
    return failures.length ? 1 : 0;
  }

  const sum = (k: keyof ShareCounters) => counters.reduce((a, c) => a + c[k], 0);
  let last = { t: performance.now(), acked: 0, bytes: 0 };
  const startedPerf = startAt - performance.timeOrigin;
  const progress = setInterval(() => {
    const now = performance.now();
    const secs = (now - last.t) / 1000;
    const acked = sum('acked');
    const bytes = sum('bytes');
    console.error(`${acked - last.acked} records acked in ${secs.toFixed(1)} s: ${Math.round((acked - last.acked) / secs)} records/sec (${((bytes - last.bytes) / secs / 1e6).toFixed(2)} MB/sec), delivery latency p50 ${ms(interval, 50).toFixed(1)} ms, p99 ${ms(interval, 99).toFixed(1)} ms, ${sum('errors')} errors, ${Math.max(...counters.map((c) => c.behindMs)).toFixed(0)} ms behind schedule${n > 1 ? ` (${n} threads)` : ''}`);
    interval.reset();
    last = { t: now, acked, bytes };
  }, o.reportingIntervalMs);
  await allDone;
  clearInterval(progress);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  // Each thread's time from the schedule's start to its last delivery report.
  const elapsed = Math.max(...seconds) || Math.max(0.001, (performance.now() - startedPerf) / 1000);
  const acked = sum('acked');
  const bytes = sum('bytes');
  const rate = o.throughput;
  console.log(`${acked} records sent, ${(acked / elapsed).toFixed(1)} records/sec (${(bytes / elapsed / 1e6).toFixed(2)} MB/sec), ${(total.mean / 1000).toFixed(2)} ms avg latency, ${(total.maxValue / 1000).toFixed(2)} ms max latency, ${ms(total, 50)} ms 50th, ${ms(total, 95)} ms 95th, ${ms(total, 99)} ms 99th, ${ms(total, 99.9)} ms 99.9th.`);
  console.log(JSON.stringify({
    bench: 'loadgen', offeredPerSec: rate, records: acked, recordsPerSec: Math.round(acked / elapsed), mbPerSec: Math.round((bytes / elapsed / 1e6) * 100) / 100,
    messages: sum('messages'), errors: sum('errors'), avgMs: Math.round(total.mean / 10) / 100, maxMs: Math.round(total.maxValue / 10) / 100,
    p50Ms: ms(total, 50), p95Ms: ms(total, 95), p99Ms: ms(total, 99), p999Ms: ms(total, 99.9), seconds: Math.round(elapsed * 100) / 100,
    threads: n, target: o.target, timestamps: o.timestamps, startAt, stopped: stop.signal.aborted, perThread: counters.map((c) => ({ sent: c.sent, acked: c.acked, errors: c.errors })),
    ...(failures.length ? { failures } : {}),
  }));
  return failures.length > 0 || sum('errors') > 0 || acked < sum('sent') ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let opts: LoadgenOptions;
  try {
    opts = parseLoadgenOptions(process.argv.slice(2));
  } catch (e) {
    process.exit(e instanceof CommanderError ? e.exitCode : 2);
  }
  runLoadgen(opts).then((code) => {
    process.exitCode = code;
  }, (e) => {
    console.error(`loadgen failed: ${(e as Error).message}`);
    process.exit(1);
  });
}
