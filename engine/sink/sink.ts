import type { Alert } from '../codec/types.js';
import type { OutputRecord } from '../operators/api.js';
import type { DeadLetter } from '../workers/protocol.js';

/**
 * Where outputs go: final window values, closed sessions, alerts and dead letters. Records carry
 * deterministic keys, so a replay after a crash re-emits identical records (idempotent for
 * compacted topics and upserting consumers). Kafka producers implement this in the Kafka issue;
 * embedded mode keeps them in memory.
 */
export interface OutputSink {
  /** Delivery counters, when the sink delivers somewhere (Kafka): failures are surfaced in health. */
  readonly stats?: { produced: number; delivered: number; retried: number; failed: number; lastError: string };
  outputs(records: OutputRecord[]): void;
  alerts(alerts: Alert[]): void;
  deadLetters(letters: DeadLetter[]): void;
  /** Resolves once everything handed over so far has been delivered (rejects when that fails or times out). */
  delivered?(): Promise<void>;
  close(): Promise<void>;
}

/** In-memory sink: keeps the latest value per key (an upsert, as a compacted topic would). */
export class MemorySink implements OutputSink {
  readonly byKey = new Map<string, OutputRecord>();
  readonly alertsById = new Map<string, Alert>();
  readonly dead: DeadLetter[] = [];
  emitted = 0;

  constructor(private readonly maxKeys = 1_000_000, private readonly maxDeadLetters = 10_000) {}

  outputs(records: OutputRecord[]): void {
    for (const r of records) {
      this.emitted++;
      this.byKey.delete(r.key);
      this.byKey.set(r.key, r);
      if (this.byKey.size > this.maxKeys) this.byKey.delete(this.byKey.keys().next().value!);
    }
  }

  alerts(alerts: Alert[]): void {
    for (const a of alerts) this.alertsById.set(a.alertId, a);
  }

  deadLetters(letters: DeadLetter[]): void {
    for (const d of letters) {
      this.dead.push(d);
      if (this.dead.length > this.maxDeadLetters) this.dead.shift();
    }
  }

  async close(): Promise<void> {}
}
