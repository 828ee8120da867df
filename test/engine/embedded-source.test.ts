import { describe, expect, it } from 'vitest';
import { EmbeddedSource } from '../../engine/index.js';
import { EmbeddedProducer } from '../../engine/source/embedded-producer.js';
import type { OffsetMap, RawMessage, SourceHandler } from '../../engine/source/types.js';
import { TEST_GENERATOR } from './harness.js';

const OPTS = { partitions: 4, eventsPerMessage: 100, maxBatchEventTimeMs: 1000, generator: TEST_GENERATOR };

/** What the generator thread must deliver: the producer run directly on this thread. */
function expected(total: number, resumeAfter: OffsetMap = {}): RawMessage[] {
  const p = new EmbeddedProducer(OPTS, resumeAfter);
  const out: RawMessage[] = [];
  p.produce(total, out);
  p.flush(out);
  return out;
}

const summary = (ms: RawMessage[]) => ms.map((m) => `${m.partition}/${m.offset}/${Buffer.from(m.value).toString('base64')}`);

/** Runs a bounded source to its end; `onBatch` may pause it (backpressure), resumed after a few ms. */
function collect(source: EmbeddedSource, resumeAfter: OffsetMap = {}, pauseEvery = 0): Promise<{ messages: RawMessage[]; deliveredWhilePaused: number; endedWithHeld: boolean; pauses: number }> {
  return new Promise((resolve, reject) => {
    const messages: RawMessage[] = [];
    let paused = false;
    let deliveredWhilePaused = 0;
    let calls = 0;
    let pauses = 0;
    const handler: SourceHandler = {
      onMessages: (m) => {
        if (paused) deliveredWhilePaused++;
        messages.push(...m);
        if (pauseEvery && ++calls % pauseEvery === 0) {
          paused = true;
          pauses++;
          source.pause();
          setTimeout(() => {
            paused = false;
            source.resume();
          }, 5);
        }
      },
      onEnd: () => resolve({ messages, deliveredWhilePaused, endedWithHeld: paused, pauses }),
      onError: reject,
    };
    void source.start(handler, resumeAfter);
  });
}

describe('the embedded source generates on its own thread', () => {
  it('delivers exactly the event model\'s messages, in order, then ends', async () => {
    const source = new EmbeddedSource({ ...OPTS, rate: Infinity, totalEvents: 20_000 });
    const { messages } = await collect(source);
    expect(messages.length).toBeGreaterThan(100);
    expect(summary(messages)).toEqual(summary(expected(20_000)));
    await source.stop();
  });

  it('backpressure: nothing is handed over while paused; held messages follow on resume, none lost or reordered', async () => {
    // At a fixed rate the thread posts every few hundred events: many pauses land between posts.
    const source = new EmbeddedSource({ ...OPTS, rate: 100_000, totalEvents: 30_000 });
    const r = await collect(source, {}, 3);
    expect(r.pauses).toBeGreaterThan(10);
    expect(r.deliveredWhilePaused).toBe(0);
    expect(r.endedWithHeld).toBe(false);
    expect(summary(r.messages)).toEqual(summary(expected(30_000)));
    await source.stop();
  });

  it('skips the messages a restarted engine\'s state already counted', async () => {
    const resumeAfter: OffsetMap = { 0: { 0: 10 }, 2: { 0: 3 } };
    const source = new EmbeddedSource({ ...OPTS, rate: Infinity, totalEvents: 10_000 });
    const { messages } = await collect(source, resumeAfter);
    expect(messages.some((m) => m.partition === 0 && m.offset <= 10)).toBe(false);
    expect(messages.some((m) => m.partition === 2 && m.offset === 4)).toBe(true);
    expect(summary(messages)).toEqual(summary(expected(10_000, resumeAfter)));
    await source.stop();
  });

  it('keeps a fixed rate, and stop() ends an unbounded source', async () => {
    const source = new EmbeddedSource({ ...OPTS, rate: 5_000 });
    let messages = 0;
    const t0 = performance.now();
    await source.start({ onMessages: (m) => (messages += m.length), onEnd: () => undefined, onError: (e) => { throw e; } }, {});
    await new Promise((r) => setTimeout(r, 1000));
    const seconds = (performance.now() - t0) / 1000;
    const produced = source.eventsProduced;
    await source.stop();
    const after = messages;
    await new Promise((r) => setTimeout(r, 100));
    expect(messages).toBe(after);
    expect(messages).toBeGreaterThan(0);
    // Generated in slices of at most 250 events against the wall clock since start.
    expect(produced).toBeLessThanOrEqual(5_000 * seconds + 250);
    expect(produced).toBeGreaterThan(5_000 * 0.5);
  });
});
