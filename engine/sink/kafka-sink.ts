import { EngineError } from '../errors.js';
import Kafka from 'node-rdkafka';
import type { Alert } from '../codec/types.js';
import { encodeAlert, encodeDashboardMetric } from '../codec/index.js';
import type { OutputRecord } from '../operators/api.js';
import type { DeadLetter } from '../workers/protocol.js';
import { TOPIC_CODES } from '../workers/protocol.js';
import { DLQ_TOPIC } from '../kafka/topics.js';
import type { OutputSink } from './sink.js';

export interface KafkaSinkOptions {
  brokers: string;
  topicPrefix: string;
  kafkaConfig: Record<string, string | number | boolean>;
  /** Attempts per record before it is counted as failed. */
  maxAttempts: number;
}

/** What is kept of a dead letter whose original is too large to produce. */
const TRUNCATED_BYTES = 64 * 1024;

interface Pending {
  topic: string;
  key: string | null;
  value: Buffer;
  headers?: Kafka.MessageHeader[];
  attempts: number;
}

/**
 * Output producers: closed windows (DashboardMetric, FlatBuffers) to dashboard-metrics, closed
 * sessions (JSON) to user-session-analytics, alerts (Alert, FlatBuffers) to dashboard-alerts and
 * HIGH/MEDIUM/LOW to their priority topics, dead letters (original bytes, with reason, source
 * topic, partition and offset headers) to the dead-letter topic. Keys are deterministic, so a
 * replay re-emits identical records. Delivery reports are checked: a failed record is retried and,
 * after the last attempt, counted and kept for inspection; never dropped silently.
 */
export class KafkaSink implements OutputSink {
  private readonly producer: Kafka.Producer;
  private readonly backlog: Pending[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  readonly stats = { produced: 0, delivered: 0, retried: 0, failed: 0, lastError: '' };
  readonly failedRecords: Pending[] = [];
  private ready: Promise<void>;

  constructor(private readonly opts: KafkaSinkOptions) {
    this.producer = new Kafka.Producer({
      'metadata.broker.list': opts.brokers,
      dr_cb: true,
      'enable.idempotence': true,
      'linger.ms': 20,
      'compression.type': 'lz4',
      'queue.buffering.max.messages': 200_000,
      ...opts.kafkaConfig,
    });
    this.producer.setPollInterval(50);
    this.producer.on('delivery-report', (err, report) => {
      const p = report.opaque as Pending;
      if (!err) {
        this.stats.delivered++;
        return;
      }
      this.stats.lastError = err.message;
      if (p && p.attempts < this.opts.maxAttempts) {
        this.stats.retried++;
        this.backlog.push(p);
        this.scheduleFlush();
      } else {
        this.stats.failed++;
        if (p && this.failedRecords.length < 10_000) this.failedRecords.push(p);
      }
    });
    this.ready = new Promise((resolve, reject) => this.producer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    this.ready.catch((e: Error) => {
      this.stats.lastError = `cannot connect to ${opts.brokers}: ${e.message}`;
    });
  }

  async connected(): Promise<void> {
    await this.ready;
  }

  outputs(records: OutputRecord[]): void {
    for (const r of records) {
      const value = r.topic === 'dashboard-metrics'
        ? Buffer.from(encodeDashboardMetric(r.value as never))
        : Buffer.from(JSON.stringify(r.value));
      this.send({ topic: this.opts.topicPrefix + r.topic, key: r.key, value, attempts: 0 });
    }
  }

  alerts(alerts: Alert[]): void {
    for (const a of alerts) {
      const value = Buffer.from(encodeAlert(a));
      this.send({ topic: this.opts.topicPrefix + 'dashboard-alerts', key: a.alertId, value, attempts: 0 });
      // CRITICAL goes to the webhook at once (engine); the other severities to their topics.
      const byPriority = a.severity === 'HIGH' ? 'high-priority-alerts' : a.severity === 'MEDIUM' ? 'medium-priority-alerts' : a.severity === 'LOW' ? 'low-priority-alerts' : null;
      if (byPriority) this.send({ topic: this.opts.topicPrefix + byPriority, key: a.alertId, value, attempts: 0 });
    }
  }

  deadLetters(letters: DeadLetter[]): void {
    for (const d of letters) {
      this.send({
        topic: this.opts.topicPrefix + DLQ_TOPIC,
        key: `${d.partition}:${d.topic}:${d.offset}:${d.eventIndex}`,
        value: Buffer.from(d.bytes),
        headers: [
          { reason: d.reason }, { code: d.code }, { 'source-topic': this.opts.topicPrefix + (TOPIC_CODES[d.topic] ?? String(d.topic)) },
          { 'source-partition': String(d.partition) }, { 'source-offset': String(d.offset) }, { 'event-index': String(d.eventIndex) },
        ],
        attempts: 0,
      });
    }
  }

  private send(p: Pending): void {
    if (this.backlog.length) {
      this.backlog.push(p);
      return;
    }
    if (!this.tryProduce(p)) {
      this.backlog.push(p);
      this.scheduleFlush();
    }
  }

  /**
   * True when the record left this process's hands: queued in the producer, or refused for good
   * (counted as failed and shown in health, so nothing behind it waits forever). False only for a
   * full local queue, retried from the backlog.
   */
  private tryProduce(p: Pending): boolean {
    try {
      p.attempts++;
      this.producer.produce(p.topic, null, p.value, p.key, Date.now(), p, p.headers);
      this.stats.produced++;
      return true;
    } catch (e) {
      p.attempts--;
      const err = e as Kafka.LibrdKafkaError;
      this.stats.lastError = err.message;
      if (err.code === Kafka.CODES.ERRORS.ERR__QUEUE_FULL) return false;
      if (err.code === Kafka.CODES.ERRORS.ERR_MSG_SIZE_TOO_LARGE && p.value.length > TRUNCATED_BYTES) {
        // A dead letter larger than the producer accepts keeps its headers (reason, source
        // topic/partition/offset: enough to find the original) and the head of its bytes.
        const size = p.value.length;
        return this.tryProduce({ ...p, value: p.value.subarray(0, TRUNCATED_BYTES), headers: [...(p.headers ?? []), { truncated: String(size) }] });
      }
      this.stats.failed++;
      this.stats.lastError = `${p.topic}: ${err.message} (record not sent)`;
      return true;
    }
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      while (this.backlog.length) {
        if (!this.tryProduce(this.backlog[0])) {
          this.scheduleFlush();
          return;
        }
        this.backlog.shift();
      }
    }, 50);
  }

  /**
   * Waits until every record handed over so far is delivered: the backlog drained and the producer
   * flushed with no new delivery failure. Rejects (ERR_SINK_UNDELIVERED, retriable) otherwise.
   */
  async delivered(timeoutMs = 15_000): Promise<void> {
    const failedBefore = this.stats.failed;
    const deadline = Date.now() + timeoutMs;
    while (this.backlog.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const err = await new Promise<{ message: string } | null>((resolve) => this.producer.flush(Math.max(1, deadline - Date.now()), (e) => resolve(e ?? null)));
    if (err || this.backlog.length || this.stats.failed > failedBefore) {
      throw new EngineError('ERR_SINK_UNDELIVERED', `output records not delivered within ${timeoutMs} ms (${err?.message ?? this.stats.lastError}); they are sent again`, true, { cause: err ?? undefined });
    }
  }

  async close(): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (this.backlog.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise<void>((resolve) => this.producer.flush(10_000, () => resolve()));
    // Let the last delivery reports arrive.
    await new Promise((r) => setTimeout(r, 100));
    await new Promise<void>((resolve) => this.producer.disconnect(() => resolve()));
  }
}
