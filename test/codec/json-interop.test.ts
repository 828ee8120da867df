import { describe, expect, it } from 'vitest';
import { CodecError, EventBatchReader, decodeJsonEvent, encodeEventBatch, looksLikeJson, unify, type EventRecord } from '../../engine/codec/index.js';
import { EventGenerator } from '../../engine/source/generator.js';

/** The source application's JSON: the record without our `source` discriminator and `seq`. */
function toSourceJson(e: EventRecord): string {
  const { source: _s, seq: _q, ...rest } = e;
  return JSON.stringify(rest);
}

describe('JSON interop', () => {
  const events = new EventGenerator({ seed: 21, eventsPerSecond: 300 }).take(2000).map((e) => ({ ...e, seq: 0 }));

  it('source-shaped JSON decodes to the same unified events as the FlatBuffers twin', () => {
    const bytes = encodeEventBatch(events);
    const r = new EventBatchReader().reset(bytes, 0, bytes.length);
    for (let i = 0; i < events.length; i++) {
      r.select(i);
      const fromFlat = unify(r.toRecord());
      const fromJson = unify(decodeJsonEvent(toSourceJson(events[i])));
      expect(fromJson).toEqual(fromFlat);
    }
  });

  it('uses the topic hint and accepts ISO timestamps and numeric strings', () => {
    const e = decodeJsonEvent('{"transactionId":"t","userId":"u","timestamp":"2026-01-01T00:00:00Z","type":"COMPLETED","amount":"12.5"}', 'TRANSACTION');
    expect(e).toMatchObject({ source: 'TRANSACTION', timestamp: Date.UTC(2026, 0, 1), amount: 12.5 });
    expect(unify(e).eventType).toBe('TRANSACTION_COMPLETED');
  });

  it('wrong types name the field', () => {
    expect(() => decodeJsonEvent('{"eventId":"e","userId":"u","sessionId":"s","timestamp":"soon","action":"CLICK","page":"/"}')).toThrowError(/"timestamp"/);
    expect(() => decodeJsonEvent('{"transactionId":"t","userId":"u","timestamp":1,"type":"COMPLETED","amount":{}}')).toThrowError(/"amount"/);
    expect(() => decodeJsonEvent('[1,2]')).toThrowError(CodecError);
    expect(() => decodeJsonEvent('{"foo":1}')).toThrowError(/no event shape/);
    expect(() => decodeJsonEvent('{"userId":')).toThrowError(/does not parse/);
    expect(() => decodeJsonEvent(new Uint8Array([0x7b, 0xff, 0xfe]))).toThrowError(/UTF-8/);
  });

  it('tells JSON from FlatBuffers by the first bytes', () => {
    const j = new TextEncoder().encode('  {"a":1}');
    expect(looksLikeJson(j, 0, j.length)).toBe(true);
    const f = encodeEventBatch(events.slice(0, 1));
    expect(looksLikeJson(f, 0, f.length)).toBe(false);
  });
});
