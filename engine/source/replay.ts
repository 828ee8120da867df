import type { EventSource, OffsetMap, RawMessage, SourceHandler } from './types.js';

/**
 * Replays a fixed list of raw messages as fast as the engine takes them (respecting
 * backpressure): benchmarks pre-encode their input so they measure the engine, not the generator.
 */
export class ReplaySource implements EventSource {
  readonly name = 'replay';
  private handler: SourceHandler | null = null;
  private next = 0;
  private paused = false;
  private stopped = false;
  private scheduled = false;
  private skip: OffsetMap = {};

  /**
   * `chunk`: messages handed over per turn of the event loop. Small, as a consumer's poll: a turn
   * that copies 64 messages (7.5 MB) into slabs keeps the workers' results waiting, and a worker
   * with no next batch idles (8 was 4 % faster than 64 in the sustained bench:engine run).
   */
  constructor(private readonly messages: RawMessage[], private readonly chunk = 8) {}

  async start(handler: SourceHandler, resumeAfter: OffsetMap): Promise<void> {
    this.handler = handler;
    this.skip = resumeAfter;
    this.schedule();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.schedule();
  }

  commit(): void {}

  async stop(): Promise<void> {
    this.stopped = true;
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.tick();
    });
  }

  private tick(): void {
    if (this.paused || this.stopped || !this.handler) return;
    const end = Math.min(this.messages.length, this.next + this.chunk);
    const out: RawMessage[] = [];
    for (; this.next < end; this.next++) {
      const m = this.messages[this.next];
      const done = this.skip[m.partition]?.[String(m.topic)];
      if (done === undefined || m.offset > done) out.push(m);
    }
    if (out.length) this.handler.onMessages(out);
    if (this.next >= this.messages.length) this.handler.onEnd();
    else this.schedule();
  }
}
