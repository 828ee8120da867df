import type { Alert } from '../codec/types.js';

/**
 * CRITICAL alerts go to a notification webhook at once: POSTed as JSON, retried with exponential
 * backoff, failures counted. It never blocks processing: deliveries run in the background with a
 * bounded queue (the oldest undelivered notification is dropped, and counted, when it is full).
 */
export class WebhookNotifier {
  readonly stats = { sent: 0, failed: 0, retries: 0, dropped: 0, lastError: '' as string, lastSuccessAt: 0 };
  private readonly queue: Alert[] = [];
  private running = false;
  private closed = false;

  constructor(
    private readonly url: string | undefined,
    private readonly opts = { maxAttempts: 5, baseDelayMs: 200, maxQueue: 1000, timeoutMs: 5000 },
  ) {}

  /** Notifications waiting to be delivered (bounded by maxQueue). */
  get pending(): number {
    return this.queue.length;
  }

  get enabled(): boolean {
    return this.url !== undefined;
  }

  notify(alert: Alert): void {
    if (!this.url || this.closed) return;
    this.queue.push(alert);
    if (this.queue.length > this.opts.maxQueue) {
      this.queue.shift();
      this.stats.dropped++;
    }
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.queue.length && !this.closed) {
      const alert = this.queue.shift()!;
      let delay = this.opts.baseDelayMs;
      for (let attempt = 1; ; attempt++) {
        try {
          const res = await fetch(this.url!, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(alert),
            signal: AbortSignal.timeout(this.opts.timeoutMs),
          });
          if (!res.ok) throw new Error(`webhook answered ${res.status}`);
          this.stats.sent++;
          this.stats.lastSuccessAt = Date.now();
          break;
        } catch (err) {
          this.stats.lastError = (err as Error).message;
          if (attempt >= this.opts.maxAttempts || this.closed) {
            this.stats.failed++;
            break;
          }
          this.stats.retries++;
          await new Promise((r) => setTimeout(r, delay));
          delay *= 2;
        }
      }
    }
    this.running = false;
  }

  close(): void {
    this.closed = true;
  }
}
