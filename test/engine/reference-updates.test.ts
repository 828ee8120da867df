import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { Engine, MemorySink, ReferenceStore, type EventSource, type OffsetMap, type RawMessage, type SourceHandler } from '../../engine/index.js';
import { EventBatchEncoder } from '../../engine/codec/encode.js';
import type { TransactionEvent } from '../../engine/codec/types.js';
import { partitionOf } from '../../engine/source/embedded.js';
import { TOPIC_CODES } from '../../engine/workers/protocol.js';
import { tempDir } from './harness.js';

const PARTITIONS = 2;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** A source the test feeds by hand. */
class HandSource implements EventSource {
  readonly name = 'hand';
  private handler: SourceHandler | null = null;
  private offset = 0;
  async start(handler: SourceHandler, _resume: OffsetMap): Promise<void> {
    this.handler = handler;
  }
  send(events: TransactionEvent[]): void {
    const enc = new EventBatchEncoder();
    for (const e of events) enc.add(e);
    const topic = Number(Object.entries(TOPIC_CODES).find(([, n]) => n === 'transaction-events')![0]);
    const m: RawMessage = { topic, partition: partitionOf(events[0]!.userId, PARTITIONS), offset: this.offset++, value: enc.finish() };
    this.handler!.onMessages([m]);
  }
  end(): void {
    this.handler!.onEnd();
  }
  pause(): void {}
  resume(): void {}
  commit(): void {}
  async stop(): Promise<void> {}
}

function purchase(userId: string, ts: number, amount: number): TransactionEvent {
  return {
    source: 'TRANSACTION', transactionId: `t-${ts}`, userId, sessionId: 's-1', timestamp: ts, type: 'COMPLETED', platform: 'WEB',
    amount, currency: 'USD', merchantId: 'm-1', paymentMethod: 'CARD', productId: 'p-1', quantity: 1, metadata: {},
  } as TransactionEvent;
}

describe('reference table updates', () => {
  it('regression: a profile update reaches the join at once (workers re-read a cached profile whose user changed)', async () => {
    const dir = tempDir('refupd');
    dirs.push(dir);
    const ref = ReferenceStore.open(dir);
    await ref.putProfiles([{ userId: 'user-7', tier: 'GOLD', segment: 'REGULAR', country: 'FR', region: 'EU', signupTime: 0 }]);
    const source = new HandSource();
    const engine = await Engine.start({ dataDir: dir, partitions: PARTITIONS, shards: 1, workers: 1, commitIntervalMs: 100 }, source, new MemorySink());
    const t0 = Date.UTC(2026, 10, 29, 12, 0, 0);
    source.send([purchase('user-7', t0, 10)]);
    await engine.dispatcher.drain();
    await ref.putProfiles([{ userId: 'user-7', tier: 'PLATINUM', segment: 'REGULAR', country: 'FR', region: 'EU', signupTime: 0 }]);
    source.send([purchase('user-7', t0 + 1000, 20)]);
    source.end();
    await engine.finished();
    const windows = engine.query.revenue({ from: t0 - 10 * 60_000, to: t0 + 10 * 60_000 });
    const w = windows.find((x) => x.windowStart === Math.floor(t0 / 60_000) * 60_000)!;
    expect(w.byTier).toEqual({ GOLD: 10, PLATINUM: 20 });
    await engine.stop();
    await ref.close();
  }, 60_000);
});
