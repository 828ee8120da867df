import { describe, expect, it } from 'vitest';
import * as flatbuffers from 'flatbuffers';
import {
  EventBatchReader, encodeEventBatch, encodeUserProfile, decodeUserProfile, encodeProduct, decodeProduct,
  EventKind, type EventRecord,
} from '../../engine/codec/index.js';
import { EventBatch, WebEvent, TransactionEvent } from '../../engine/codec/generated/rta/wire.js';
import { EventGenerator } from '../../engine/source/generator.js';

const samples: EventRecord[] = [
  { source: 'WEB', seq: 7, eventId: 'e1', userId: 'user-1', sessionId: 's1', timestamp: 1767225600123, action: 'PAGE_VIEW', page: '/', referrer: 'r', userAgent: 'ua', ipAddress: '10.0.0.1', customData: { loadTimeMs: '250', productId: 'product-3', browser: 'firefox' } },
  { source: 'WEB', seq: 8, eventId: 'e1b', userId: 'user-1', sessionId: 's1', timestamp: 1767225600124, action: 'CLICK', page: '/', referrer: '', userAgent: 'ua', ipAddress: '', customData: { loadTimeMs: '0250' } },
  { source: 'MOBILE', seq: 0, eventId: 'e2', userId: 'user-2', sessionId: 's2', timestamp: 1767225600456, action: 'ADD_TO_CART', appVersion: '5.2.1', deviceType: 'IOS', osVersion: '18.1', location: 'DE', customData: {} },
  { source: 'TRANSACTION', seq: 1, transactionId: 't1', userId: 'user-3', sessionId: 's3', timestamp: 1767225600789, type: 'COMPLETED', platform: 'WEB', amount: 129.99, currency: 'EUR', merchantId: 'm1', paymentMethod: 'CARD', productId: 'product-9', quantity: 2, metadata: { country: 'FR' } },
  { source: 'IOT', seq: 4294967295, eventId: 'e3', deviceId: 'device-1', userId: '', timestamp: 1767225600999, sensorType: 'TEMPERATURE', value: -12.5, unit: 'C', location: 'US' },
  { source: 'USER_ACTION', seq: 2, eventId: 'e4', userId: 'user-ü-😀', sessionId: '', timestamp: 1767225601000, action: 'LOGIN_FAILED', platform: 'MOBILE', location: 'JP' },
];

function readAll(bytes: Uint8Array, start = 0, length = bytes.length): EventRecord[] {
  const r = new EventBatchReader().reset(bytes, start, length);
  const out: EventRecord[] = [];
  for (let i = 0; i < r.count; i++) {
    r.select(i);
    out.push(r.toRecord());
  }
  return out;
}

describe('codec round trip', () => {
  it('every event type survives encode -> zero-copy read', () => {
    const bytes = encodeEventBatch(samples);
    expect(readAll(bytes)).toEqual(samples);
  });

  it('the zero-copy accessors agree with the generated accessors', () => {
    const bytes = encodeEventBatch(samples);
    const batch = EventBatch.getRootAsEventBatch(new flatbuffers.ByteBuffer(bytes));
    const r = new EventBatchReader().reset(bytes, 0, bytes.length);
    expect(r.count).toBe(batch.eventsLength());
    expect(r.count).toBe(batch.eventsTypeLength());
    for (let i = 0; i < r.count; i++) {
      const kind = r.select(i);
      expect(kind).toBe(batch.eventsType(i));
      expect(r.timestamp()).toBe(samples[i].timestamp);
      r.userId();
      expect(r.strValue()).toBe(samples[i].userId);
      if (kind === EventKind.WEB) {
        const w = batch.events(i, new WebEvent()) as WebEvent;
        expect(r.string(6)).toBe(w.userId());
        expect(r.seq).toBe(w.seq());
      }
      if (kind === EventKind.TRANSACTION) {
        const t = batch.events(i, new TransactionEvent()) as TransactionEvent;
        expect(r.f64(16)).toBe(t.amount());
        expect(r.seq).toBe(t.seq());
      }
    }
  });

  it('reads string bytes in place: hash, equality and numbers without JS strings', () => {
    const bytes = encodeEventBatch(samples);
    const r = new EventBatchReader().reset(bytes, 0, bytes.length);
    r.select(0);
    expect(r.loadTimeMs()).toBe(250); // hoisted into its typed field
    r.productId();
    expect(r.strValue()).toBe('product-3');
    expect(r.kv(22, new TextEncoder().encode('browser'))).toBe(true);
    expect(r.strValue()).toBe('firefox');
    r.select(1);
    expect(r.loadTimeMs()).toBeNaN(); // '0250' is not canonical: it stays in the map, as text
    expect(r.kv(22, new TextEncoder().encode('loadTimeMs'))).toBe(true);
    expect(r.strNumber()).toBe(250);
    r.select(0);
    expect(r.kv(22, new TextEncoder().encode('missing'))).toBe(false);
    r.action();
    expect(r.strEquals(new TextEncoder().encode('PAGE_VIEW'))).toBe(true);
    expect(r.strEquals(new TextEncoder().encode('PAGE_VIEX'))).toBe(false);
    const h1 = (r.userId(), r.strHash());
    r.select(2);
    const h2 = (r.userId(), r.strHash());
    expect(h1).not.toBe(h2);
  });

  it('generated streams round trip in batches of 1,000', () => {
    const g = new EventGenerator({ seed: 3, eventsPerSecond: 500 });
    const events = g.take(3000);
    for (let i = 0; i < events.length; i += 1000) {
      const chunk = events.slice(i, i + 1000);
      expect(readAll(encodeEventBatch(chunk))).toEqual(chunk.map((e) => ({ ...e })));
    }
  });

  it('reference table records round trip', () => {
    const p = { userId: 'user-1', tier: 'GOLD', segment: 'power', country: 'DE', region: 'EU', signupTime: 1700000000000 };
    expect(decodeUserProfile(encodeUserProfile(p))).toEqual(p);
    const q = { productId: 'product-1', name: 'Lamp', category: 'home', price: 19.5 };
    expect(decodeProduct(encodeProduct(q))).toEqual(q);
  });
});

describe('reader over a slab of many batches at odd offsets', () => {
  it('reads each batch in place with no copy', () => {
    const g = new EventGenerator({ seed: 11, eventsPerSecond: 2000 });
    const batches = Array.from({ length: 25 }, (_, i) => g.take(1 + ((i * 37) % 120)));
    const encoded = batches.map(encodeEventBatch);
    const total = encoded.reduce((n, b) => n + b.length + 3, 1);
    const slab = new Uint8Array(new SharedArrayBuffer(total + 7), 5, total); // odd base offset too
    let pos = 1;
    const where: Array<[number, number]> = [];
    for (const b of encoded) {
      slab.set(b, pos);
      where.push([pos, b.length]);
      pos += b.length + 3; // odd gaps between messages
    }
    const r = new EventBatchReader();
    where.forEach(([start, len], i) => {
      r.reset(slab, start, len);
      expect(r.bytes).toBe(slab); // same view: no copy
      const out: EventRecord[] = [];
      for (let k = 0; k < r.count; k++) {
        r.select(k);
        out.push(r.toRecord());
      }
      expect(out).toEqual(batches[i]);
    });
  });
});
