import { CodecError } from './errors.js';
import type { EventRecord, Source, StringMap } from './types.js';

/**
 * JSON interop: messages in the source application's JSON shapes (WebEvent, MobileEvent,
 * TransactionEvent, IotSensorEvent, UserActionEvent) are accepted and become the same records as
 * their FlatBuffers twins. The shape is taken from the topic (a hint) when known, else inferred
 * from the fields present. Wrong types are a CodecError naming the field, never a crash.
 */

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Which source a topic carries, for JSON messages that do not say. */
export const TOPIC_SOURCES: Record<string, Source> = {
  'web-events': 'WEB',
  'mobile-events': 'MOBILE',
  'transaction-events': 'TRANSACTION',
  'iot-events': 'IOT',
  'user-actions': 'USER_ACTION',
};

/** True when the bytes look like a JSON object (first non-blank byte is '{'). */
export function looksLikeJson(b: Uint8Array, start: number, length: number): boolean {
  for (let p = start, e = start + length; p < e; p++) {
    const c = b[p];
    if (c === 0x7b) return true;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return false;
  }
  return false;
}

export function decodeJsonEvent(input: string | Uint8Array, hint?: Source): EventRecord {
  let text: string;
  try {
    text = typeof input === 'string' ? input : decoder.decode(input);
  } catch (cause) {
    throw new CodecError('ERR_CODEC_JSON_SYNTAX', 'JSON message is not valid UTF-8', -1, { cause });
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (cause) {
    throw new CodecError('ERR_CODEC_JSON_SYNTAX', `JSON message does not parse: ${(cause as Error).message}`, -1, { cause });
  }
  return jsonObjectToRecord(obj, hint);
}

export function jsonObjectToRecord(obj: unknown, hint?: Source): EventRecord {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new CodecError('ERR_CODEC_JSON_SHAPE', 'JSON message must be an object in one of the event shapes');
  }
  const o = obj as Record<string, unknown>;
  const source = hint ?? inferSource(o);
  const r = new FieldReader(o, source);
  const seq = r.optInt('seq');
  switch (source) {
    case 'WEB':
      return {
        source, seq, eventId: r.str('eventId'), userId: r.str('userId'), sessionId: r.str('sessionId'),
        timestamp: r.time('timestamp'), action: r.str('action'), page: r.optStr('page'), referrer: r.optStr('referrer'),
        userAgent: r.optStr('userAgent'), ipAddress: r.optStr('ipAddress'), customData: r.map('customData'),
      };
    case 'MOBILE':
      return {
        source, seq, eventId: r.str('eventId'), userId: r.str('userId'), sessionId: r.str('sessionId'),
        timestamp: r.time('timestamp'), action: r.str('action'), appVersion: r.optStr('appVersion'),
        deviceType: r.optStr('deviceType'), osVersion: r.optStr('osVersion'), location: r.optStr('location'),
        customData: r.map('customData'),
      };
    case 'TRANSACTION':
      return {
        source, seq, transactionId: r.str('transactionId'), userId: r.str('userId'), sessionId: r.optStr('sessionId'),
        timestamp: r.time('timestamp'), type: r.str('type'), platform: r.optStr('platform'), amount: r.num('amount'),
        currency: r.optStr('currency'), merchantId: r.optStr('merchantId'), paymentMethod: r.optStr('paymentMethod'),
        productId: r.optStr('productId'), quantity: r.optInt('quantity'), metadata: r.map('metadata'),
      };
    case 'IOT':
      return {
        source, seq, eventId: r.str('eventId'), deviceId: r.str('deviceId'), userId: r.optStr('userId'),
        timestamp: r.time('timestamp'), sensorType: r.str('sensorType'), value: r.num('value'), unit: r.optStr('unit'),
        location: r.optStr('location'),
      };
    case 'USER_ACTION':
      return {
        source, seq, eventId: r.str('eventId'), userId: r.str('userId'), sessionId: r.optStr('sessionId'),
        timestamp: r.time('timestamp'), action: r.str('action'), platform: r.optStr('platform'), location: r.optStr('location'),
      };
  }
}

function inferSource(o: Record<string, unknown>): Source {
  if (typeof o.source === 'string' && ['WEB', 'MOBILE', 'TRANSACTION', 'IOT', 'USER_ACTION'].includes(o.source)) return o.source as Source;
  if ('transactionId' in o) return 'TRANSACTION';
  if ('deviceId' in o && 'sensorType' in o) return 'IOT';
  if ('appVersion' in o || 'deviceType' in o || 'osVersion' in o) return 'MOBILE';
  if ('page' in o || 'userAgent' in o || 'referrer' in o || 'ipAddress' in o) return 'WEB';
  if ('action' in o && 'userId' in o) return 'USER_ACTION';
  throw new CodecError('ERR_CODEC_JSON_SHAPE', 'JSON message matches no event shape (expected the fields of WebEvent, MobileEvent, TransactionEvent, IotSensorEvent or UserActionEvent)');
}

class FieldReader {
  constructor(private readonly o: Record<string, unknown>, private readonly source: Source) {}

  private bad(field: string, want: string): never {
    const got = this.o[field] === null ? 'null' : Array.isArray(this.o[field]) ? 'array' : typeof this.o[field];
    throw new CodecError('ERR_CODEC_JSON_SHAPE', `${this.source} event field "${field}" must be ${want}, got ${got}`);
  }

  str(f: string): string {
    const v = this.o[f];
    if (typeof v === 'string' && v.length > 0) return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    return this.bad(f, 'a non-empty string');
  }

  optStr(f: string): string {
    const v = this.o[f];
    if (v === undefined || v === null) return '';
    if (typeof v === 'string') return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    return this.bad(f, 'a string');
  }

  num(f: string): number {
    const v = this.o[f];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
    return this.bad(f, 'a finite number');
  }

  optInt(f: string): number {
    const v = this.o[f];
    if (v === undefined || v === null) return 0;
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v;
    return this.bad(f, 'a non-negative integer');
  }

  /** Event time: epoch milliseconds, or an ISO-8601 string (Java's Instant serialization). */
  time(f: string): number {
    const v = this.o[f];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
    if (typeof v === 'string') {
      const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
      if (Number.isFinite(t)) return t;
    }
    return this.bad(f, 'epoch milliseconds or an ISO-8601 time');
  }

  map(f: string): StringMap {
    const v = this.o[f];
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) return this.bad(f, 'an object of strings');
    const out: StringMap = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (typeof x === 'string') out[k] = x;
      else if (typeof x === 'number' || typeof x === 'boolean') out[k] = String(x);
      else return this.bad(`${f}.${k}`, 'a string');
    }
    return out;
  }
}
