import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { Engine, MemorySink, ReferenceStore, EmbeddedSource } from '../../engine/index.js';
import { ReplaySource } from '../../engine/source/replay.js';
import { encodeEventBatch, type EventRecord } from '../../engine/codec/index.js';
import type { RawMessage } from '../../engine/source/types.js';
import { tempDir } from './harness.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const T0 = Date.UTC(2026, 0, 1);
const web = (i: number, over: Partial<EventRecord> = {}): EventRecord => ({
  source: 'WEB', eventId: `e${i}`, userId: `user-${i % 7}`, sessionId: 's', timestamp: T0 + i * 1000, action: 'PAGE_VIEW', page: '/',
  referrer: '', userAgent: 'ua', ipAddress: '', customData: { loadTimeMs: '100' }, ...over,
} as EventRecord);

describe('bad input goes to the dead-letter sink with a reason, and loses nothing else', () => {
  it('truncated, garbled, empty, oversized, wrong-typed JSON and invalid events', async () => {
    const dir = tempDir('dlq');
    dirs.push(dir);
    const good = encodeEventBatch([web(1), web(2), web(3)]);
    const truncated = good.slice(0, good.length - 9);
    const garbled = good.slice();
    garbled.fill(0xff, 20, 40);
    const wrongId = good.slice();
    wrongId.set([0x58, 0x58, 0x58, 0x58], 4);
    const json = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
    const msgs: Array<[Uint8Array, number]> = [
      [good, 3],
      [truncated, 0],
      [garbled, 0],
      [wrongId, 0],
      [new Uint8Array(0), 0],
      [new Uint8Array(10 * 1024 * 1024), 0],
      [json({ eventId: 'j', userId: 'user-1', sessionId: 's', timestamp: 'yesterday', action: 'CLICK', page: '/' }), 0],
      [json({ eventId: 'j2', userId: 'user-2', sessionId: 's', timestamp: T0 + 5000, action: 'CLICK', page: '/' }), 1],
      // a batch with one bad event (no user) and one far in the future: 1 good event counted
      [encodeEventBatch([web(4, { userId: '' }), web(5, { timestamp: Date.now() + 10 * 86_400_000 }), web(6)]), 1],
    ];
    // A user id that is not valid UTF-8 (regression: two such ids decoded to the same text).
    const bad = encodeEventBatch([web(7, { userId: 'user-Z' })]);
    const at = Buffer.from(bad).indexOf('user-Z');
    bad[at + 5] = 0xff;
    msgs.push([bad, 0]);
    const raw: RawMessage[] = msgs.map(([value], i) => ({ topic: 1, partition: 0, offset: i, value }));
    // A partition the engine was not configured for (the topic grew after start).
    raw.push({ topic: 1, partition: 5, offset: 0, value: good });
    const ref = ReferenceStore.open(dir);
    await new EmbeddedSource({ partitions: 1, generator: { users: 10 } }).bootstrap(ref);
    await ref.close();
    const sink = new MemorySink();
    const engine = await Engine.start({ dataDir: dir, partitions: 1, shards: 1, workers: 1 }, new ReplaySource(raw), sink);
    await engine.finished();
    try {
      expect(engine.metrics.events).toBe(msgs.reduce((n, [, k]) => n + k, 0));
      const codes = sink.dead.filter((d) => d.partition === 0).map((d) => d.code);
      expect(codes).toEqual([
        'ERR_CODEC_OUT_OF_BOUNDS', expect.stringMatching(/^ERR_CODEC_/), 'ERR_CODEC_UNKNOWN_FORMAT', 'ERR_CODEC_UNKNOWN_FORMAT', 'ERR_CODEC_TOO_LARGE',
        'ERR_CODEC_JSON_SHAPE', 'ERR_EVENT_INVALID', 'ERR_EVENT_INVALID', 'ERR_EVENT_INVALID',
      ]);
      expect(sink.dead.length).toBe(10);
      for (const d of sink.dead) expect(d.reason.length).toBeGreaterThan(5);
      expect(sink.dead.find((d) => d.offset === 9)!.reason).toBe('userId is not valid UTF-8');
      const unknown = sink.dead.filter((d) => d.partition === 5);
      expect(unknown.map((d) => d.code)).toEqual(['ERR_PARTITION_UNKNOWN']);
      expect(unknown[0].reason).toMatch(/partition 5 is outside/);
      // whole-message rejects carry the original bytes
      expect(Buffer.from(sink.dead.filter((d) => d.partition === 0)[0].bytes).equals(Buffer.from(truncated))).toBe(true);
      expect(sink.dead.find((d) => d.offset === 6)!.reason).toMatch(/"timestamp"/);
      expect(sink.dead.filter((d) => d.offset === 8).map((d) => d.reason)).toEqual(['userId missing', expect.stringMatching(/in the future/)]);
      expect(engine.committedTotals().deadLetters).toBe(9); // the unplaceable message has no state to commit into
    } finally {
      await engine.stop();
    }
  });
});
