import Kafka from 'node-rdkafka';
import { INPUT_TOPICS } from '../kafka/topics.js';
import type { EventSource, OffsetMap, RawMessage, SourceHandler } from './types.js';

export interface KafkaSourceOptions {
  brokers: string;
  groupId: string;
  topicPrefix: string;
  /** librdkafka settings passed through (`--kafka key=value`). */
  kafkaConfig: Record<string, string | number | boolean>;
  /** Messages per consume call: one call per message costs ~7 us through the binding. */
  batchSize: number;
  /**
   * How long a partition waits for a lagging input topic before going on without it (Kafka
   * Streams' max.task.idle.ms). A topic that is caught up (nothing more on the broker) is never
   * waited for.
   */
  maxTaskIdleMs?: number;
}

const EMPTY = Buffer.alloc(0);

/** librdkafka's RD_KAFKA_OFFSET_BEGINNING. */
const OFFSET_BEGINNING = -2;

/** The consumer's `max.partition.fetch.bytes` (see where it is set). */
export const FETCH_BYTES_PER_PARTITION = 8 * 1024 * 1024;

/**
 * A consumer error after which librdkafka's consumer is unusable and must be replaced: a fatal
 * error (RD_KAFKA_RESP_ERR__FATAL, e.g. a static member fenced by "another" member with its own
 * group.instance.id, which librdkafka does to itself when it rejoins after a coordinator restart),
 * or FENCED_INSTANCE_ID on a commit. node-rdkafka 3.6 reports error callbacks with code -1, so the
 * message is matched too.
 */
function isFatalConsumerError(err: { code?: number; message: string }): boolean {
  return err.code === Kafka.CODES.ERRORS.ERR__FATAL || err.code === 82 /* FENCED_INSTANCE_ID */ || /fatal error|fatal consumer error|fenced by other consumer/i.test(err.message);
}

interface Queued {
  raw: RawMessage;
  ts: number;
}

/**
 * The Kafka source: a node-rdkafka consumer in a consumer group (cooperative-sticky), consuming
 * in batches. The five input topics are co-partitioned: partition p of each is state partition p,
 * and their messages are merged per partition in timestamp order (the message timestamp, which
 * producers set to the batch's event time), as Kafka Streams does for the partitions of a task,
 * so stream time does not jump ahead because one topic happened to be fetched first. Offsets are never stored or committed automatically: the engine calls `commit` with
 * the offsets its LMDB state already holds (durable), and on assignment each partition resumes
 * after the offset stored in LMDB, so Kafka's committed offset is only a hint for other tools.
 */
export class KafkaSource implements EventSource {
  readonly name = 'kafka';
  private consumer: Kafka.KafkaConsumer | null = null;
  /** The consumer object, kept until disconnect completes (for the final rebalance callback). */
  private client: Kafka.KafkaConsumer | null = null;
  private handler: SourceHandler | null = null;
  private resumeAfter: OffsetMap = {};
  private paused = false;
  private stopped = false;
  private consuming = false;
  private readonly codeOf = new Map<string, number>();
  /** Per state partition, per topic code: messages fetched but not yet released, in offset order. */
  private readonly queues = new Map<number, Map<number, Queued[]>>();
  /** Per "topic:partition": highest offset fetched, and since when its queue has been empty. */
  private readonly fetched = new Map<string, number>();
  private readonly emptySince = new Map<string, number>();
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly topicOf = new Map<number, string>();
  /** brokersDownSince: when librdkafka reported every broker connection down (ms since epoch); 0 while connected. */
  readonly stats = { consumed: 0, commits: 0, commitErrors: 0, rebalances: 0, revokeDrains: 0, lastError: '', lag: 0, brokersDownSince: 0, restoring: 0, consumerFailedSince: 0, consumerReplacements: 0 };
  /** Bumped by every assignment and revocation: a restore that finishes after a newer one is dropped. */
  private assignGen = 0;
  /** consumerFailedSince: when the consumer hit a fatal error (ms since epoch); 0 once its replacement has its partitions. */
  private replacing = false;
  private brokerProbe: NodeJS.Timeout | null = null;
  /** Partitions currently assigned, as "topic:partition". */
  readonly assigned = new Set<string>();
  /** Partitions being given up: their processed work is committed, nothing new is handed over. */
  private readonly revoking = new Set<string>();
  /** Latest offsets handed to commit, re-committed synchronously on stop. */
  private readonly pendingCommit = new Map<string, Kafka.TopicPartitionOffset>();

  constructor(private readonly opts: KafkaSourceOptions) {
    INPUT_TOPICS.forEach((t, i) => {
      this.codeOf.set(opts.topicPrefix + t, i + 1);
      this.topicOf.set(i + 1, opts.topicPrefix + t);
    });
  }

  async start(handler: SourceHandler, resumeAfter: OffsetMap): Promise<void> {
    this.handler = handler;
    this.resumeAfter = resumeAfter;
    await this.connectConsumer();
  }

  private async connectConsumer(): Promise<void> {
    const handler = this.handler!;
    // Callbacks of a consumer that has been replaced (it still fires a revoke while it closes) act on it alone.
    let self: Kafka.KafkaConsumer | null = null;
    const current = () => self !== null && self === this.client;
    const consumer = new Kafka.KafkaConsumer({
      'metadata.broker.list': this.opts.brokers,
      'group.id': this.opts.groupId,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      // range, not cooperative-sticky: a partition's state merges the same partition number of all
      // five input topics, so they must be assigned together (co-partitioning). The range assignor
      // gives each member the same partition numbers of every topic with equal partition counts;
      // the sticky assignors place topic-partitions one by one and can split them across members.
      'partition.assignment.strategy': 'range',
      // node-rdkafka's consume(n) keeps waiting until it has n messages as long as each arrives
      // within the consume timeout: at 400 messages/s a batch of 1,000 took 2.5 s to return (the
      // dashboard was 1-2 s behind at any moderate rate). With partition EOF events it returns as
      // soon as it has caught up, with what it has.
      'enable.partition.eof': true,
      // A fetch returns at most this much per partition (librdkafka's default: 1 MB, about 30 event
      // batches). With the default the engine waited for fetches: the source was paused by
      // backpressure half of the time and each resume waited ~70 ms for the next fetch, while the
      // workers used a third of their cores. 8 MB: 1.0-1.18 M events/s into the engine instead of
      // 0.79-0.86 M (bench:kafka, BENCHMARKS.md ninth session). Overridable with --kafka.
      'max.partition.fetch.bytes': FETCH_BYTES_PER_PARTITION,
      'socket.keepalive.enable': true,
      rebalance_cb: (err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]) => {
        if (current()) return this.onRebalance(err, assignment);
        try {
          if (self && err.code === Kafka.CODES.ERRORS.ERR__REVOKE_PARTITIONS) self.unassign();
        } catch { /* closing */ }
      },
      offset_commit_cb: (err: Kafka.LibrdKafkaError | null) => {
        if (err) {
          this.stats.commitErrors++;
          this.stats.lastError = err.message;
          if (current() && isFatalConsumerError(err)) this.replaceConsumer(err.message);
        } else this.stats.commits++;
      },
      ...this.opts.kafkaConfig,
    }, { 'auto.offset.reset': 'earliest' });
    self = consumer;
    this.consumer = consumer;
    this.client = consumer;
    consumer.on('event.error', (err) => {
      if (!current()) return;
      this.stats.lastError = err.message;
      if (isFatalConsumerError(err)) this.replaceConsumer(err.message);
      // node-rdkafka 3.6 reports librdkafka's error callbacks with code -1 (ERR_UNKNOWN), so the
      // message is matched too (librdkafka's text for RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN).
      if (err.code === Kafka.CODES.ERRORS.ERR__ALL_BROKERS_DOWN || /all broker connections are down/i.test(err.message)) this.watchBrokers(consumer);
      handler.onError(new Error(`kafka consumer: ${err.message}`));
    });
    await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
    consumer.setDefaultConsumeTimeout(100);
    consumer.subscribe([...this.codeOf.keys()]);
    this.loop();
  }

  /**
   * librdkafka says a fatal consumer error leaves the consumer unusable: without this the engine
   * kept serving with no partition and a lag of 0, consuming nothing, until restarted (found by
   * reliability scenario 3, the broker SIGKILLed under load with static membership). What was
   * handed over is drained and committed as on a revoke; the old consumer is closed without
   * committing (it is fenced); a new one joins the group and resumes every partition after the
   * offsets in LMDB. Health is DEGRADED until the new consumer has its partitions.
   */
  private replaceConsumer(reason: string): void {
    if (this.replacing || this.stopped) return;
    this.replacing = true;
    this.stats.consumerFailedSince = Date.now();
    this.handler?.onError(new Error(`kafka consumer failed (${reason}); replacing it`));
    const old = this.consumer;
    this.consumer = null;
    void (async () => {
      const partitions = [...new Set([...this.assigned].map((k) => Number(k.slice(k.lastIndexOf(':') + 1))))];
      this.assigned.clear();
      this.queues.clear();
      this.fetched.clear();
      this.emptySince.clear();
      this.pendingCommit.clear();
      if (partitions.length) await this.handler?.onPartitionsRevoked?.(partitions)?.catch((e: Error) => (this.stats.lastError = `drain before replacing the consumer: ${e.message}`));
      this.client = null;
      if (old) {
        await Promise.race([new Promise<void>((r) => {
          try {
            old.disconnect(() => r());
          } catch {
            r(); // already disconnected
          }
        }), new Promise((r) => setTimeout(r, 10_000))]);
      }
      for (let wait = 1000; !this.stopped; wait = Math.min(wait * 2, 30_000)) {
        try {
          await this.connectConsumer();
          this.stats.consumerReplacements++;
          break;
        } catch (e) {
          this.stats.lastError = `replacing the consumer: ${(e as Error).message}`;
          await new Promise((r) => setTimeout(r, wait));
        }
      }
      this.replacing = false;
    })();
  }

  private onRebalance(err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]): void {
    // Uses the client even while it disconnects: leaving the group fires a last revoke, and
    // librdkafka waits for its incremental unassign (a known hang when it is skipped).
    const c = this.client!;
    this.stats.rebalances++;
    try {
      if (err.code === Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS) {
        this.stats.consumerFailedSince = 0;
        // Resume each partition right after what the state has already counted.
        const withOffsets = assignment.map((a) => {
          const done = this.resumeAfter[a.partition]?.[String(this.codeOf.get(a.topic))];
          this.assigned.add(`${a.topic}:${a.partition}`);
          // Forget anything fetched before (a partition can come back after a revoke).
          const code = this.codeOf.get(a.topic);
          if (code !== undefined) this.queues.get(a.partition)?.delete(code);
          this.fetched.delete(`${a.topic}:${a.partition}`);
          this.emptySince.delete(`${a.topic}:${a.partition}`);
          // No offset in the state (new or rebuilt shard): replay from the beginning, not from the
          // group's committed offset, so a rebuilt shard gets its whole history back.
          return { topic: a.topic, partition: a.partition, offset: done === undefined ? OFFSET_BEGINNING : done + 1 };
        });
        const gen = ++this.assignGen;
        const assignNow = () => {
          if (this.cooperative(c)) c.incrementalAssign(withOffsets);
          else c.assign(withOffsets);
        };
        const partitions = [...new Set(assignment.map((a) => a.partition))];
        const restore = this.stopped ? undefined : this.handler?.onPartitionsAssigned?.(partitions);
        if (!restore) {
          assignNow();
          return;
        }
        // Scaled out: the partitions' state is restored before anything of them is fetched; the
        // assignment is handed to librdkafka only then, from the offsets the restored state counted.
        // Until then the partitions are not `assigned` here, so nothing of them is handed over.
        for (const a of assignment) this.assigned.delete(`${a.topic}:${a.partition}`);
        this.stats.restoring += assignment.length;
        // After a restore, outside onRebalance's try: an assign that throws (librdkafka refuses it
        // in some consumer states) is reported and tried again while this assignment is current,
        // never left to reject unhandled (that ends the process).
        const assignLater = (tries: number): void => {
          if (gen !== this.assignGen || this.stopped) return;
          try {
            assignNow();
          } catch (e) {
            this.stats.lastError = `assign after restore: ${(e as Error).message}`;
            this.handler?.onError(new Error(`assigning partitions ${partitions.join(',')} after their restore failed (attempt ${tries + 1}): ${(e as Error).message}; retrying`, { cause: e }));
            setTimeout(() => assignLater(tries + 1), Math.min(10_000, 500 * 2 ** Math.min(tries, 4))).unref();
          }
        };
        const attempt = (p: Promise<OffsetMap>, tries: number): void => {
          p.then((offsets) => {
            this.stats.restoring -= assignment.length;
            if (gen !== this.assignGen || this.stopped) return;
            for (const x of withOffsets) {
              const code = String(this.codeOf.get(x.topic));
              const done = offsets[x.partition]?.[code];
              const r = (this.resumeAfter[x.partition] ??= {});
              if (done === undefined) delete r[code];
              else r[code] = done;
              x.offset = done === undefined ? OFFSET_BEGINNING : done + 1;
              this.assigned.add(`${x.topic}:${x.partition}`);
            }
            assignLater(0);
          }, (e: Error) => {
            // Say so (health) and try again: the partitions stay unprocessed (not lost) meanwhile.
            this.stats.lastError = `restore: ${e.message}`;
            this.handler?.onError(new Error(`changelog restore of partitions ${partitions.join(',')} failed (attempt ${tries}): ${e.message}; retrying`, { cause: e }));
            setTimeout(() => {
              if (gen !== this.assignGen || this.stopped || !this.handler?.onPartitionsAssigned) {
                this.stats.restoring -= assignment.length;
                return;
              }
              attempt(this.handler.onPartitionsAssigned(partitions), tries + 1);
            }, Math.min(30_000, 1000 * 2 ** Math.min(tries, 5))).unref();
          });
        };
        attempt(restore, 1);
      } else if (err.code === Kafka.CODES.ERRORS.ERR__REVOKE_PARTITIONS) {
        // An assignment whose restore is still running is cancelled (never handed to librdkafka).
        this.assignGen++;
        for (const a of assignment) {
          this.assigned.delete(`${a.topic}:${a.partition}`);
          this.revoking.add(`${a.topic}:${a.partition}`);
          // Nothing fetched from a revoked partition is handed over afterwards.
          const code = this.codeOf.get(a.topic);
          if (code !== undefined) this.queues.get(a.partition)?.delete(code);
        }
        const giveUp = () => {
          for (const a of assignment) this.revoking.delete(`${a.topic}:${a.partition}`);
          try {
            if (this.cooperative(c)) c.incrementalUnassign(assignment);
            else c.unassign();
          } catch (e) {
            this.stats.lastError = (e as Error).message;
          }
        };
        // What was already handed to the engine for these partitions is processed and committed
        // (state in LMDB, then offsets in Kafka) before they go: the next owner starts exactly
        // after it. Not on shutdown: stop() drains everything and commits itself.
        const drained = this.stopped ? undefined : this.handler?.onPartitionsRevoked?.([...new Set(assignment.map((a) => a.partition))]);
        if (!drained) {
          giveUp();
          return;
        }
        this.stats.revokeDrains++;
        drained.then(() => {
          const keys = new Set(assignment.map((a) => `${a.topic}:${a.partition}`));
          const last = [...this.pendingCommit.values()].filter((x) => keys.has(`${x.topic}:${x.partition}`));
          if (last.length && this.consumer) this.consumer.commitSync(last);
        }).catch((e: Error) => {
          this.stats.commitErrors++;
          this.stats.lastError = `revoke: ${e.message}`;
        }).finally(giveUp);
      } else {
        this.stats.lastError = err.message;
      }
    } catch (e) {
      this.stats.lastError = (e as Error).message;
    }
  }

  /** The group's protocol follows partition.assignment.strategy (which --kafka may override). */
  private cooperative(c: Kafka.KafkaConsumer): boolean {
    try {
      return c.rebalanceProtocol() === 'COOPERATIVE';
    } catch {
      return false;
    }
  }

  private loop(): void {
    if (this.stopped || this.paused || this.consuming || !this.consumer) return;
    this.consuming = true;
    const c = this.consumer;
    c.consume(this.opts.batchSize, (err, messages) => {
      this.consuming = false;
      if (this.stopped) return;
      // A replaced consumer's last batch is dropped: its replacement fetches from the stored offsets.
      if (c !== this.consumer) {
        this.loop();
        return;
      }
      if (err) {
        this.stats.lastError = err.message;
        if (isFatalConsumerError(err)) this.replaceConsumer(err.message);
        setTimeout(() => this.loop(), 100);
        return;
      }
      for (const m of messages) {
        const code = this.codeOf.get(m.topic);
        if (code === undefined) continue;
        // A consume call in flight during a revoke can still return the revoked partition's messages.
        if (!this.assigned.has(`${m.topic}:${m.partition}`)) continue;
        this.fetched.set(`${m.topic}:${m.partition}`, m.offset);
        const done = this.resumeAfter[m.partition]?.[String(code)];
        if (done !== undefined && m.offset <= done) continue;
        // An empty payload arrives as a null value: it is handed over as zero bytes, so the engine
        // dead-letters it ("empty message") and its offset is committed, instead of skipping it unseen.
        this.queue(m.partition, code).push({ raw: { topic: code, partition: m.partition, offset: m.offset, value: m.value ?? EMPTY }, ts: m.timestamp ?? 0 });
        this.emptySince.delete(`${m.topic}:${m.partition}`);
      }
      this.stats.consumed += messages.length;
      this.release();
      setImmediate(() => this.loop());
    });
  }

  private queue(partition: number, code: number): Queued[] {
    let byTopic = this.queues.get(partition);
    if (!byTopic) this.queues.set(partition, (byTopic = new Map()));
    let q = byTopic.get(code);
    if (!q) byTopic.set(code, (q = []));
    return q;
  }

  /** True when nothing more of this topic partition is on the broker (as far as the client knows). */
  private caughtUp(topic: string, partition: number): boolean {
    try {
      const w = this.client!.getWatermarkOffsets(topic, partition);
      if (w.highOffset < 0) return false;
      const last = this.fetched.get(`${topic}:${partition}`) ?? (this.resumeAfter[partition]?.[String(this.codeOf.get(topic))] ?? -1);
      return last + 1 >= w.highOffset;
    } catch {
      return false;
    }
  }

  /**
   * Hands over, per partition, the message with the smallest timestamp among its topics' heads,
   * as long as every assigned topic of the partition has a message waiting, is caught up, or has
   * kept the partition waiting longer than maxTaskIdleMs. Ties go to the lower topic code.
   */
  private release(): void {
    if (this.paused || !this.handler) return;
    const now = Date.now();
    const maxIdle = this.opts.maxTaskIdleMs ?? 5000;
    const out: RawMessage[] = [];
    let waiting = false;
    for (const [partition, byTopic] of this.queues) {
      for (;;) {
        let best: Queued[] | null = null;
        let blocked = false;
        for (const [topic, code] of this.codeOf) {
          if (!this.assigned.has(`${topic}:${partition}`)) continue;
          const q = byTopic.get(code);
          if (q && q.length) {
            if (!best || q[0].ts < best[0].ts) best = q;
            continue;
          }
          const key = `${topic}:${partition}`;
          if (this.caughtUp(topic, partition)) continue;
          const since = this.emptySince.get(key) ?? now;
          this.emptySince.set(key, since);
          if (now - since < maxIdle) blocked = true;
        }
        if (!best || blocked) {
          if (blocked && best) waiting = true;
          break;
        }
        out.push(best.shift()!.raw);
      }
    }
    if (out.length) this.handler.onMessages(out);
    if (waiting && !this.idleTimer) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null;
        this.release();
      }, 50);
    }
  }

  /**
   * Messages on the broker not yet handed to the engine, over the assigned partitions, from the
   * client's cached high watermarks (no request). Updated on each call (health, metrics).
   */
  lag(): number {
    const c = this.client;
    if (!c) return 0;
    let lag = 0;
    for (const key of this.assigned) {
      const i = key.lastIndexOf(':');
      const topic = key.slice(0, i);
      const partition = Number(key.slice(i + 1));
      try {
        const w = c.getWatermarkOffsets(topic, partition);
        if (w.highOffset < 0) continue;
        const code = this.codeOf.get(topic)!;
        const queued = this.queues.get(partition)?.get(code)?.length ?? 0;
        const last = this.fetched.get(key) ?? this.resumeAfter[partition]?.[String(code)] ?? -1;
        lag += Math.max(0, w.highOffset - (last + 1)) + queued;
      } catch {
        // disconnected: no figure
      }
    }
    this.stats.lag = lag;
    return lag;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.release();
    this.loop();
  }

  /** Commits next offsets (processed + 1) for partitions whose state is durable. */
  commit(offsets: OffsetMap): void {
    const c = this.consumer;
    if (!c || this.stopped) return;
    const list: Kafka.TopicPartitionOffset[] = [];
    for (const [p, byTopic] of Object.entries(offsets)) {
      for (const [code, off] of Object.entries(byTopic)) {
        const topic = this.topicOf.get(Number(code));
        if (!topic || !(this.assigned.has(`${topic}:${p}`) || this.revoking.has(`${topic}:${p}`))) continue;
        list.push({ topic, partition: Number(p), offset: off + 1 });
        const r = (this.resumeAfter[Number(p)] ??= {});
        r[code] = Math.max(r[code] ?? -1, off);
      }
    }
    if (list.length === 0) return;
    for (const x of list) this.pendingCommit.set(`${x.topic}:${x.partition}`, x);
    try {
      c.commit(list);
    } catch (e) {
      this.stats.commitErrors++;
      this.stats.lastError = (e as Error).message;
    }
  }

  /**
   * Every broker connection is down (health says DEGRADED meanwhile). librdkafka reconnects by
   * itself but reports nothing when it has, so ask for metadata every second until a broker answers.
   */
  private watchBrokers(c: Kafka.KafkaConsumer): void {
    if (this.stats.brokersDownSince > 0) return;
    this.stats.brokersDownSince = Date.now();
    const probe = () => {
      this.brokerProbe = null;
      if (this.stopped || this.client !== c) return;
      c.getMetadata({ topic: this.topicOf.get(1), timeout: 2000 }, (err) => {
        if (!err) this.stats.brokersDownSince = 0;
        else if (!this.stopped) this.brokerProbe = setTimeout(probe, 1000);
      });
    };
    this.brokerProbe = setTimeout(probe, 1000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.brokerProbe) clearTimeout(this.brokerProbe);
    const c = this.consumer;
    this.consumer = null;
    if (c && c.isConnected()) {
      const last = [...this.pendingCommit.values()].filter((x) => this.assigned.has(`${x.topic}:${x.partition}`));
      try {
        if (last.length) c.commitSync(last);
      } catch (e) {
        this.stats.commitErrors++;
        this.stats.lastError = (e as Error).message;
      }
      await new Promise<void>((resolve) => c.disconnect(() => resolve()));
    }
    this.client = null;
  }
}
