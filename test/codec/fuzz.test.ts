import { describe, expect, it } from 'vitest';
import { CodecError, EventBatchReader, encodeEventBatch } from '../../engine/codec/index.js';
import { EventGenerator } from '../../engine/source/generator.js';
import { Rng } from '../../engine/source/random.js';

/** Reads everything the pipelines can read from a verified message. */
function visitAll(r: EventBatchReader): number {
  let acc = 0;
  for (let i = 0; i < r.count; i++) {
    const kind = r.select(i);
    if (kind === 0) continue;
    acc += r.timestamp();
    r.userId();
    acc += r.strHash();
    r.action();
    acc += r.strLen;
    acc += r.toRecord().timestamp;
  }
  return acc;
}

describe('verifier fuzz: mutated and truncated messages decode or give CodecError', () => {
  const g = new EventGenerator({ seed: 5, eventsPerSecond: 800 });
  const valid = Array.from({ length: 20 }, (_, i) => encodeEventBatch(g.take(1 + i * 7)));
  const rng = new Rng(99);
  const r = new EventBatchReader();

  function check(bytes: Uint8Array, start: number, len: number): 'ok' | 'rejected' {
    try {
      r.reset(bytes, start, len);
    } catch (e) {
      expect(e).toBeInstanceOf(CodecError);
      return 'rejected';
    }
    // A message that verifies must be fully readable without any throw.
    visitAll(r);
    return 'ok';
  }

  it('10,000 random byte mutations', () => {
    const seen = { ok: 0, rejected: 0 };
    for (let n = 0; n < 10_000; n++) {
      const src = valid[rng.int(valid.length)];
      const b = src.slice();
      const flips = 1 + rng.int(8);
      for (let k = 0; k < flips; k++) {
        const p = rng.int(b.length);
        b[p] = rng.chance(0.3) ? 0xff : rng.int(256);
      }
      seen[check(b, 0, b.length)]++;
    }
    expect(seen.ok + seen.rejected).toBe(10_000);
    expect(seen.rejected).toBeGreaterThan(100);
  });

  it('every truncation of a message, inside a larger slab of garbage', () => {
    const src = valid[3];
    let rejected = 0;
    for (let len = 0; len < src.length; len++) {
      const slab = new Uint8Array(src.length + 64);
      for (let i = 0; i < slab.length; i++) slab[i] = rng.int(256);
      slab.set(src.subarray(0, len), 17);
      if (check(slab, 17, len) === 'rejected') rejected++;
    }
    // Nearly every truncation cuts off something the message points at.
    expect(rejected).toBeGreaterThan(src.length * 0.9);
    expect(check(src, 0, src.length)).toBe('ok');
  });

  it('random garbage with the right identifier', () => {
    for (let n = 0; n < 5_000; n++) {
      const b = new Uint8Array(8 + rng.int(400));
      for (let i = 0; i < b.length; i++) b[i] = rng.int(256);
      b.set([0x52, 0x54, 0x41, 0x31], 4);
      check(b, 0, b.length);
    }
  });

  it('huge declared vector length and out-of-slab ranges are typed errors', () => {
    const b = valid[0].slice();
    // Point the root at a vector declaring 2^31 events.
    const r2 = new EventBatchReader();
    const view = new DataView(b.buffer);
    const root = view.getUint32(0, true);
    const vt = root - view.getInt32(root, true);
    const fo = view.getUint16(vt + 4, true);
    const vec = root + fo + view.getUint32(root + fo, true);
    view.setUint32(vec, 0x7fffffff, true);
    expect(() => r2.reset(b, 0, b.length)).toThrowError(CodecError);
    expect(() => r2.reset(b, 10, b.length)).toThrowError(/outside/);
    expect(() => r2.reset(new Uint8Array(0), 0, 0)).toThrowError(CodecError);
    const big = new Uint8Array(5 * 1024 * 1024);
    big.set([0x52, 0x54, 0x41, 0x31], 4);
    expect(() => r2.reset(big, 0, big.length)).toThrowError(/exceeds/);
    expect(() => r2.reset(new TextEncoder().encode('{"userId":"u"}'), 0, 14)).toThrowError(/identifier/);
  });
});

describe('regression: verification cost is linear in the message size', () => {
  it('a message whose references all point at the same tables is rejected quickly (not n*m work)', async () => {
    const flatbuffers = await import('flatbuffers');
    const { EventBatch, EventBody, KeyValue, WebEvent } = await import('../../engine/codec/generated/rta/wire.js');
    const b = new flatbuffers.Builder(1024);
    const kv = KeyValue.createKeyValue(b, b.createString('k'), b.createString('v'));
    const m = 20_000;
    b.startVector(4, m, 4);
    for (let i = 0; i < m; i++) b.addOffset(kv);
    const cd = b.endVector();
    const uid = b.createString('user-1');
    WebEvent.startWebEvent(b);
    WebEvent.addUserId(b, uid);
    WebEvent.addTimestamp(b, 1);
    WebEvent.addCustomData(b, cd);
    const ev = WebEvent.endWebEvent(b);
    const n = 20_000;
    const types = EventBatch.createEventsTypeVector(b, new Array(n).fill(EventBody.WebEvent));
    const evs = EventBatch.createEventsVector(b, new Array(n).fill(ev));
    b.finish(EventBatch.createEventBatch(b, types, evs), 'RTA1');
    const bytes = b.asUint8Array();
    const t0 = performance.now();
    expect(() => new EventBatchReader().reset(bytes, 0, bytes.length)).toThrowError(/more table references/);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
