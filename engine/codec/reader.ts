import { CodecError } from './errors.js';
import { verifyEventBatch, DEFAULT_LIMITS, type VerifyLimits } from './verify.js';
import {
  EventBatchSlot, KeyValueSlot, WebEventSlot, MobileEventSlot, TransactionEventSlot,
  IotSensorEventSlot, UserActionEventSlot,
} from './generated/layout.js';
import { EventKind, type EventRecord, type StringMap } from './types.js';

/**
 * Zero-copy reader of an EventBatch lying anywhere inside a byte slab. `reset` verifies the
 * message once; after that `select(i)` positions the cursor on event i and the accessors read
 * fields in place: no copy of the bytes, no object per event. String fields are exposed as byte
 * ranges of the slab (`strPos`, `strLen`) so callers can hash, compare or intern them; only the
 * cold-path `string()` and `toRecord()` make JS strings.
 *
 * One reader is reused for every message a worker sees.
 */

const decoder = new TextDecoder('utf-8', { fatal: false });

/** Slot of each common field, indexed by event kind (1..5). */
const USER_ID_SLOT = [0, WebEventSlot.userId, MobileEventSlot.userId, TransactionEventSlot.userId, IotSensorEventSlot.userId, UserActionEventSlot.userId];
const SESSION_ID_SLOT = [0, WebEventSlot.sessionId, MobileEventSlot.sessionId, TransactionEventSlot.sessionId, 0, UserActionEventSlot.sessionId];
const TIMESTAMP_SLOT = [0, WebEventSlot.timestamp, MobileEventSlot.timestamp, TransactionEventSlot.timestamp, IotSensorEventSlot.timestamp, UserActionEventSlot.timestamp];
const SEQ_SLOT = [0, WebEventSlot.seq, MobileEventSlot.seq, TransactionEventSlot.seq, IotSensorEventSlot.seq, UserActionEventSlot.seq];
/** The field that becomes the unified `action` (TransactionEvent.type, IotSensorEvent.sensorType). */
const ACTION_SLOT = [0, WebEventSlot.action, MobileEventSlot.action, TransactionEventSlot.type, IotSensorEventSlot.sensorType, UserActionEventSlot.action];

export class EventBatchReader {
  /** The slab the current message lies in. */
  bytes: Uint8Array = new Uint8Array(0);
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(8));
  /** Number of events in the current message. */
  count = 0;
  private vec = 0;
  private types = 0;
  /** Current event's kind (EventKind code, 1..5) after `select`. */
  kind = 0;
  /** Current event's per-key sequence number (0 = not stamped); read on demand. */
  get seq(): number {
    if (this.kind === 0) return 0;
    const at = this.field(SEQ_SLOT[this.kind]);
    return at === 0 ? 0 : this.view.getUint32(at, true);
  }
  private t = 0; // body table position
  private vt = 0; // body vtable position
  private vtLen = 0;
  /** Byte range of the last string read by `str`/`kv`. */
  strPos = 0;
  strLen = 0;
  /**
   * Changes with every message made current (never 0): a string's position identifies its bytes
   * only within one message (the buffer behind the next one may be reused), see InternTable.internAt.
   */
  message = 0;
  private static messages = 0;
  private readonly limits: VerifyLimits;

  constructor(limits: VerifyLimits = DEFAULT_LIMITS) {
    this.limits = limits;
  }

  /** Verifies the message at [start, start+length) of `bytes` and makes it current. Throws CodecError. */
  reset(bytes: Uint8Array, start: number, length: number): this {
    const root = verifyEventBatch(bytes, start, length, this.limits);
    if (bytes !== this.bytes) {
      this.bytes = bytes;
      this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    const fo = this.fieldOffset(root, EventBatchSlot.events);
    const tfo = this.fieldOffset(root, EventBatchSlot.eventsType);
    if (fo === 0 || tfo === 0) {
      this.count = 0;
      this.vec = 0;
    } else {
      const p = root + fo;
      this.vec = p + this.u32(p);
      this.count = this.u32(this.vec);
      const tp = root + tfo;
      this.types = tp + this.u32(tp) + 4;
    }
    this.kind = 0;
    this.message = EventBatchReader.messages = (EventBatchReader.messages % 0x7ffffffe) + 1;
    return this;
  }

  /** Positions the cursor on event i and returns its kind, or 0 when the event has no body. */
  select(i: number): number {
    if (i < 0 || i >= this.count) throw new CodecError('ERR_CODEC_OUT_OF_BOUNDS', `event index ${i} outside 0..${this.count - 1}`);
    const p = this.vec + 4 + 4 * i;
    const kind = this.bytes[this.types + i];
    this.kind = kind;
    if (kind === 0) return 0;
    const t = p + this.u32(p);
    this.t = t;
    this.vt = t - this.view.getInt32(t, true);
    this.vtLen = this.view.getUint16(this.vt, true);
    return kind;
  }

  // ---- field access on the selected event (slots come from generated/layout.ts) ----

  /** Absolute position of a field of the selected event, or 0 when absent. */
  field(slot: number): number {
    if (slot >= this.vtLen) return 0;
    const fo = this.view.getUint16(this.vt + slot, true);
    return fo === 0 ? 0 : this.t + fo;
  }

  f64(slot: number, dflt = 0): number {
    const p = this.field(slot);
    return p === 0 ? dflt : this.view.getFloat64(p, true);
  }

  i32(slot: number, dflt = 0): number {
    const p = this.field(slot);
    return p === 0 ? dflt : this.view.getInt32(p, true);
  }

  /** Selects a string field: sets strPos/strLen and returns true, or false when absent. */
  str(slot: number): boolean {
    const p = this.field(slot);
    if (p === 0) {
      this.strPos = 0;
      this.strLen = 0;
      return false;
    }
    const s = p + this.u32(p);
    this.strLen = this.u32(s);
    this.strPos = s + 4;
    return true;
  }

  /**
   * Hash of the selected string's bytes (after `str`/`kv`): four bytes per step, then a final
   * avalanche (murmur3 finalizer). Used to intern strings; equality is always confirmed on bytes.
   */
  strHash(): number {
    return hashBytes(this.view, this.bytes, this.strPos, this.strLen);
  }

  /** True when the selected string's bytes equal `ascii` (an ASCII/UTF-8 byte pattern). */
  strEquals(pattern: Uint8Array): boolean {
    if (pattern.length !== this.strLen) return false;
    const b = this.bytes;
    for (let i = 0, p = this.strPos; i < pattern.length; i++, p++) if (b[p] !== pattern[i]) return false;
    return true;
  }

  /** Parses the selected string as a decimal number without making a JS string (NaN if not one). */
  strNumber(): number {
    const b = this.bytes;
    let p = this.strPos;
    const e = p + this.strLen;
    if (p === e) return NaN;
    let neg = false;
    if (b[p] === 45) { neg = true; p++; }
    let v = 0, digits = 0, scale = 0;
    for (; p < e; p++) {
      const c = b[p];
      if (c >= 48 && c <= 57) { v = v * 10 + (c - 48); digits++; if (scale) scale *= 10; }
      else if (c === 46 && scale === 0) scale = 1;
      else return NaN;
    }
    if (digits === 0) return NaN;
    if (scale > 1) v /= scale;
    return neg ? -v : v;
  }

  /** Decodes the selected string (cold path: allocates). */
  strValue(): string {
    return decoder.decode(this.bytes.subarray(this.strPos, this.strPos + this.strLen));
  }

  /** Decodes a string field (cold path), or '' when absent. */
  string(slot: number): string {
    return this.str(slot) ? this.strValue() : '';
  }

  /**
   * Finds `key` in a [KeyValue] field (customData, metadata) and selects its value string.
   * Returns false when the map or the key is absent.
   */
  kv(slot: number, key: Uint8Array): boolean {
    const p = this.field(slot);
    if (p === 0) return false;
    const vec = p + this.u32(p);
    const n = this.u32(vec);
    for (let i = 0; i < n; i++) {
      const ep = vec + 4 + 4 * i;
      const kvt = ep + this.u32(ep);
      const kvt_vt = kvt - this.view.getInt32(kvt, true);
      const kvLen = this.view.getUint16(kvt_vt, true);
      const kfo = KeyValueSlot.key < kvLen ? this.view.getUint16(kvt_vt + KeyValueSlot.key, true) : 0;
      if (kfo === 0) continue;
      const ks = kvt + kfo + this.u32(kvt + kfo);
      const kl = this.u32(ks);
      if (kl !== key.length) continue;
      let same = true;
      for (let j = 0; j < kl; j++) if (this.bytes[ks + 4 + j] !== key[j]) { same = false; break; }
      if (!same) continue;
      const vfo = KeyValueSlot.value < kvLen ? this.view.getUint16(kvt_vt + KeyValueSlot.value, true) : 0;
      if (vfo === 0) { this.strPos = 0; this.strLen = 0; return true; }
      const vs = kvt + vfo + this.u32(kvt + vfo);
      this.strLen = this.u32(vs);
      this.strPos = vs + 4;
      return true;
    }
    return false;
  }

  /** Decodes a [KeyValue] field into an object (cold path). */
  map(slot: number): StringMap {
    const out: StringMap = {};
    const p = this.field(slot);
    if (p === 0) return out;
    const vec = p + this.u32(p);
    const n = this.u32(vec);
    for (let i = 0; i < n; i++) {
      const ep = vec + 4 + 4 * i;
      const kvt = ep + this.u32(ep);
      const kvt_vt = kvt - this.view.getInt32(kvt, true);
      const kvLen = this.view.getUint16(kvt_vt, true);
      const read = (s: number): string => {
        const fo = s < kvLen ? this.view.getUint16(kvt_vt + s, true) : 0;
        if (fo === 0) return '';
        const sp = kvt + fo + this.u32(kvt + fo);
        return decoder.decode(this.bytes.subarray(sp + 4, sp + 4 + this.u32(sp)));
      };
      out[read(KeyValueSlot.key)] = read(KeyValueSlot.value);
    }
    return out;
  }

  // ---- fields common to every kind ----

  timestamp(): number {
    return this.f64(TIMESTAMP_SLOT[this.kind]);
  }
  /** Selects the user id string (strPos/strLen); false when absent. */
  userId(): boolean {
    return this.str(USER_ID_SLOT[this.kind]);
  }
  /** Selects the session id string; false when absent (IoT events have none). */
  sessionId(): boolean {
    const s = SESSION_ID_SLOT[this.kind];
    return s === 0 ? this.str(0x7fff) : this.str(s);
  }
  /** Selects the action string (TransactionEvent.type, IotSensorEvent.sensorType for those kinds). */
  action(): boolean {
    return this.str(ACTION_SLOT[this.kind]);
  }

  /** Materializes the selected event as a plain record (cold path: tests, dead letters, JSON twins). */
  toRecord(): EventRecord {
    const seq = this.seq;
    switch (this.kind) {
      case EventKind.WEB:
        return {
          source: 'WEB', seq,
          eventId: this.string(WebEventSlot.eventId), userId: this.string(WebEventSlot.userId),
          sessionId: this.string(WebEventSlot.sessionId), timestamp: this.f64(WebEventSlot.timestamp),
          action: this.string(WebEventSlot.action), page: this.string(WebEventSlot.page),
          referrer: this.string(WebEventSlot.referrer), userAgent: this.string(WebEventSlot.userAgent),
          ipAddress: this.string(WebEventSlot.ipAddress), customData: this.customData(WebEventSlot),
        };
      case EventKind.MOBILE:
        return {
          source: 'MOBILE', seq,
          eventId: this.string(MobileEventSlot.eventId), userId: this.string(MobileEventSlot.userId),
          sessionId: this.string(MobileEventSlot.sessionId), timestamp: this.f64(MobileEventSlot.timestamp),
          action: this.string(MobileEventSlot.action), appVersion: this.string(MobileEventSlot.appVersion),
          deviceType: this.string(MobileEventSlot.deviceType), osVersion: this.string(MobileEventSlot.osVersion),
          location: this.string(MobileEventSlot.location), customData: this.customData(MobileEventSlot),
        };
      case EventKind.TRANSACTION:
        return {
          source: 'TRANSACTION', seq,
          transactionId: this.string(TransactionEventSlot.transactionId), userId: this.string(TransactionEventSlot.userId),
          sessionId: this.string(TransactionEventSlot.sessionId), timestamp: this.f64(TransactionEventSlot.timestamp),
          type: this.string(TransactionEventSlot.type), platform: this.string(TransactionEventSlot.platform),
          amount: this.f64(TransactionEventSlot.amount), currency: this.string(TransactionEventSlot.currency),
          merchantId: this.string(TransactionEventSlot.merchantId), paymentMethod: this.string(TransactionEventSlot.paymentMethod),
          productId: this.string(TransactionEventSlot.productId), quantity: this.i32(TransactionEventSlot.quantity),
          metadata: this.map(TransactionEventSlot.metadata),
        };
      case EventKind.IOT:
        return {
          source: 'IOT', seq,
          eventId: this.string(IotSensorEventSlot.eventId), deviceId: this.string(IotSensorEventSlot.deviceId),
          userId: this.string(IotSensorEventSlot.userId), timestamp: this.f64(IotSensorEventSlot.timestamp),
          sensorType: this.string(IotSensorEventSlot.sensorType), value: this.f64(IotSensorEventSlot.value),
          unit: this.string(IotSensorEventSlot.unit), location: this.string(IotSensorEventSlot.location),
        };
      case EventKind.USER_ACTION:
        return {
          source: 'USER_ACTION', seq,
          eventId: this.string(UserActionEventSlot.eventId), userId: this.string(UserActionEventSlot.userId),
          sessionId: this.string(UserActionEventSlot.sessionId), timestamp: this.f64(UserActionEventSlot.timestamp),
          action: this.string(UserActionEventSlot.action), platform: this.string(UserActionEventSlot.platform),
          location: this.string(UserActionEventSlot.location),
        };
      default:
        throw new CodecError('ERR_CODEC_BAD_UNION', `event has no body (kind ${this.kind})`);
    }
  }

  /** customData with the hoisted hot keys put back, in the order the source wrote them. */
  private customData(slots: { customData: number; loadTimeMs: number; productId: number }): StringMap {
    const out: StringMap = {};
    const lt = this.f64(slots.loadTimeMs, NaN);
    if (lt === lt) out.loadTimeMs = String(lt);
    if (this.str(slots.productId)) out.productId = this.strValue();
    return Object.assign(out, this.map(slots.customData));
  }

  /** customData.loadTimeMs of a web or mobile event (NaN when absent), read in place. */
  loadTimeMs(): number {
    if (this.kind === EventKind.WEB) return this.f64(WebEventSlot.loadTimeMs, NaN);
    if (this.kind === EventKind.MOBILE) return this.f64(MobileEventSlot.loadTimeMs, NaN);
    return NaN;
  }

  /** Selects the product id string of the event (web/mobile customData.productId, or the transaction's). */
  productId(): boolean {
    if (this.kind === EventKind.WEB) return this.str(WebEventSlot.productId);
    if (this.kind === EventKind.MOBILE) return this.str(MobileEventSlot.productId);
    if (this.kind === EventKind.TRANSACTION) return this.str(TransactionEventSlot.productId);
    return this.str(0x7fff);
  }

  private fieldOffset(table: number, slot: number): number {
    const vt = table - this.view.getInt32(table, true);
    const vtLen = this.view.getUint16(vt, true);
    return slot < vtLen ? this.view.getUint16(vt + slot, true) : 0;
  }

  private u32(p: number): number {
    return this.view.getUint32(p, true);
  }
}

/** UTF-8 bytes of an ASCII constant, for `strEquals` and `kv` lookups on the hot path. */
export function ascii(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/**
 * Hash of bytes [pos, pos+len): four bytes per step, then a murmur3 finalizer. Used to intern
 * strings; equality is always confirmed on the bytes, so collisions only cost time.
 */
export function hashBytes(view: DataView<ArrayBufferLike>, b: Uint8Array, pos: number, len: number): number {
  let p = pos;
  const e = pos + len;
  let h = 0x811c9dc5 ^ len;
  for (; p + 4 <= e; p += 4) h = Math.imul(h ^ view.getInt32(p, true), 0x01000193) ^ (h >>> 15);
  for (; p < e; p++) h = Math.imul(h ^ b[p], 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const hashEncoder = new TextEncoder();
let hashScratch = new Uint8Array(256);
let hashView = new DataView(hashScratch.buffer);

/** hashBytes of a JS string's UTF-8 bytes, encoded into a reused buffer (loadgen and the embedded source key every event with it). */
export function hashString(s: string): number {
  if (s.length * 3 > hashScratch.length) {
    hashScratch = new Uint8Array(s.length * 3);
    hashView = new DataView(hashScratch.buffer);
  }
  const { written } = hashEncoder.encodeInto(s, hashScratch);
  return hashBytes(hashView, hashScratch, 0, written);
}
