import * as flatbuffers from 'flatbuffers';
import {
  EventBatch, EventBody, KeyValue, WebEvent, MobileEvent, TransactionEvent, IotSensorEvent,
  UserActionEvent, UserProfile, Product, DashboardMetric, Alert,
} from './generated/rta/wire.js';
import type {
  EventRecord, StringMap, UserProfile as UserProfileRecord, Product as ProductRecord,
  DashboardMetric as DashboardMetricRecord, Alert as AlertRecord,
} from './types.js';
import { FILE_IDENTIFIER } from './verify.js';

/**
 * Encoders built on the generated FlatBuffers builders (the schema is the single source).
 * Used by loadgen, the embedded source, the producers of output topics and tests.
 * Strings repeated inside one batch (actions, pages, currencies...) are written once.
 */
export class EventBatchEncoder {
  private readonly builder: flatbuffers.Builder;
  private readonly strings = new Map<string, number>();
  private readonly eventOffsets: number[] = [];
  private readonly eventTypes: number[] = [];
  /** ASCII strings are copied here and handed to the builder as a view: no allocation per string. */
  private readonly scratch = new Uint8Array(SCRATCH_BYTES);
  /** scratch.subarray(0, n), made once per length. */
  private readonly views: Uint8Array[] = [];
  /** The batch's ASCII strings: open addressing, a slot is in use when its generation is the batch's. */
  private readonly slotGen = new Int32Array(DEDUP_SLOTS);
  private readonly slotHash = new Int32Array(DEDUP_SLOTS);
  private readonly slotOffset = new Int32Array(DEDUP_SLOTS);
  private generation = 1;
  private slotsUsed = 0;
  /** hoist()'s results (fields, so the hot path allocates no result object). */
  private hoistedLoadTimeMs = NaN;
  private hoistedProductId = 0;

  constructor(initialSize = 64 * 1024) {
    this.builder = new flatbuffers.Builder(initialSize);
  }

  get size(): number {
    return this.eventOffsets.length;
  }

  add(e: EventRecord): this {
    const b = this.builder;
    let body: number;
    let type: EventBody;
    switch (e.source) {
      case 'WEB': {
        const eventId = this.unique(e.eventId), userId = this.s(e.userId), sessionId = this.s(e.sessionId), action = this.s(e.action);
        const page = this.s(e.page), referrer = this.s(e.referrer), userAgent = this.s(e.userAgent), ipAddress = this.s(e.ipAddress);
        const hoisted = this.hoist(e.customData);
        const cd = this.map(e.customData, hoisted, WebEvent.createCustomDataVector);
        const loadTimeMs = this.hoistedLoadTimeMs, productId = this.hoistedProductId;
        WebEvent.startWebEvent(b);
        WebEvent.addEventId(b, eventId); WebEvent.addUserId(b, userId); WebEvent.addSessionId(b, sessionId);
        WebEvent.addTimestamp(b, e.timestamp); WebEvent.addAction(b, action); WebEvent.addPage(b, page);
        WebEvent.addReferrer(b, referrer); WebEvent.addUserAgent(b, userAgent); WebEvent.addIpAddress(b, ipAddress);
        if (cd) WebEvent.addCustomData(b, cd);
        if (loadTimeMs === loadTimeMs) WebEvent.addLoadTimeMs(b, loadTimeMs);
        if (productId) WebEvent.addProductId(b, productId);
        if (e.seq) WebEvent.addSeq(b, e.seq);
        body = WebEvent.endWebEvent(b);
        type = EventBody.WebEvent;
        break;
      }
      case 'MOBILE': {
        const eventId = this.unique(e.eventId), userId = this.s(e.userId), sessionId = this.s(e.sessionId), action = this.s(e.action);
        const appVersion = this.s(e.appVersion), deviceType = this.s(e.deviceType), osVersion = this.s(e.osVersion), location = this.s(e.location);
        const hoisted = this.hoist(e.customData);
        const cd = this.map(e.customData, hoisted, MobileEvent.createCustomDataVector);
        const loadTimeMs = this.hoistedLoadTimeMs, productId = this.hoistedProductId;
        MobileEvent.startMobileEvent(b);
        MobileEvent.addEventId(b, eventId); MobileEvent.addUserId(b, userId); MobileEvent.addSessionId(b, sessionId);
        MobileEvent.addTimestamp(b, e.timestamp); MobileEvent.addAction(b, action); MobileEvent.addAppVersion(b, appVersion);
        MobileEvent.addDeviceType(b, deviceType); MobileEvent.addOsVersion(b, osVersion); MobileEvent.addLocation(b, location);
        if (cd) MobileEvent.addCustomData(b, cd);
        if (loadTimeMs === loadTimeMs) MobileEvent.addLoadTimeMs(b, loadTimeMs);
        if (productId) MobileEvent.addProductId(b, productId);
        if (e.seq) MobileEvent.addSeq(b, e.seq);
        body = MobileEvent.endMobileEvent(b);
        type = EventBody.MobileEvent;
        break;
      }
      case 'TRANSACTION': {
        const transactionId = this.unique(e.transactionId), userId = this.s(e.userId), sessionId = this.s(e.sessionId), txType = this.s(e.type);
        const platform = this.s(e.platform), currency = this.s(e.currency), merchantId = this.s(e.merchantId), paymentMethod = this.s(e.paymentMethod);
        const productId = this.s(e.productId);
        const md = this.map(e.metadata, NOTHING_HOISTED, TransactionEvent.createMetadataVector);
        TransactionEvent.startTransactionEvent(b);
        TransactionEvent.addTransactionId(b, transactionId); TransactionEvent.addUserId(b, userId); TransactionEvent.addSessionId(b, sessionId);
        TransactionEvent.addTimestamp(b, e.timestamp); TransactionEvent.addType(b, txType); TransactionEvent.addPlatform(b, platform);
        TransactionEvent.addAmount(b, e.amount); TransactionEvent.addCurrency(b, currency); TransactionEvent.addMerchantId(b, merchantId);
        TransactionEvent.addPaymentMethod(b, paymentMethod); TransactionEvent.addProductId(b, productId); TransactionEvent.addQuantity(b, e.quantity);
        if (md) TransactionEvent.addMetadata(b, md);
        if (e.seq) TransactionEvent.addSeq(b, e.seq);
        body = TransactionEvent.endTransactionEvent(b);
        type = EventBody.TransactionEvent;
        break;
      }
      case 'IOT': {
        const eventId = this.unique(e.eventId), deviceId = this.s(e.deviceId), userId = this.s(e.userId), sensorType = this.s(e.sensorType);
        const unit = this.s(e.unit), location = this.s(e.location);
        IotSensorEvent.startIotSensorEvent(b);
        IotSensorEvent.addEventId(b, eventId); IotSensorEvent.addDeviceId(b, deviceId); IotSensorEvent.addUserId(b, userId);
        IotSensorEvent.addTimestamp(b, e.timestamp); IotSensorEvent.addSensorType(b, sensorType); IotSensorEvent.addValue(b, e.value);
        IotSensorEvent.addUnit(b, unit); IotSensorEvent.addLocation(b, location);
        if (e.seq) IotSensorEvent.addSeq(b, e.seq);
        body = IotSensorEvent.endIotSensorEvent(b);
        type = EventBody.IotSensorEvent;
        break;
      }
      case 'USER_ACTION': {
        const eventId = this.unique(e.eventId), userId = this.s(e.userId), sessionId = this.s(e.sessionId), action = this.s(e.action);
        const platform = this.s(e.platform), location = this.s(e.location);
        UserActionEvent.startUserActionEvent(b);
        UserActionEvent.addEventId(b, eventId); UserActionEvent.addUserId(b, userId); UserActionEvent.addSessionId(b, sessionId);
        UserActionEvent.addTimestamp(b, e.timestamp); UserActionEvent.addAction(b, action); UserActionEvent.addPlatform(b, platform);
        UserActionEvent.addLocation(b, location);
        if (e.seq) UserActionEvent.addSeq(b, e.seq);
        body = UserActionEvent.endUserActionEvent(b);
        type = EventBody.UserActionEvent;
        break;
      }
      default:
        throw new TypeError(`unknown event source ${(e as { source: unknown }).source}`);
    }
    this.eventOffsets.push(body);
    this.eventTypes.push(type);
    return this;
  }

  /** Finishes the batch and returns its bytes (a copy, safe to keep); the encoder is reset. */
  finish(): Uint8Array {
    const b = this.builder;
    const types = EventBatch.createEventsTypeVector(b, this.eventTypes);
    const vec = EventBatch.createEventsVector(b, this.eventOffsets);
    const root = EventBatch.createEventBatch(b, types, vec);
    b.finish(root, FILE_IDENTIFIER);
    const out = b.asUint8Array().slice();
    this.reset();
    return out;
  }

  reset(): void {
    this.builder.clear();
    if (this.strings.size) this.strings.clear();
    this.slotsUsed = 0;
    if (++this.generation === 0x7fffffff) {
      this.slotGen.fill(0);
      this.generation = 1;
    }
    this.eventOffsets.length = 0;
    this.eventTypes.length = 0;
  }

  /**
   * Offset of a (deduplicated) string; empty strings are not written (absent reads as '').
   * ASCII strings are deduplicated by their bytes in a typed-array hash table that points into the
   * builder's own buffer: a Map keyed by the strings kept every string of a pending batch alive
   * through scavenges (the embedded source's main-thread GC pauses were mostly that).
   */
  private s(v: string): number {
    if (v === '' || v === undefined) return 0;
    const n = v.length;
    if (n > SCRATCH_BYTES) return this.other(v);
    const buf = this.scratch;
    let h = 0x811c9dc5 | 0;
    for (let i = 0; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c > 0x7f) return this.other(v);
      buf[i] = c;
      h = Math.imul(h ^ c, 16777619);
    }
    const gen = this.generation;
    const slotGen = this.slotGen;
    const mask = DEDUP_SLOTS - 1;
    let slot = h & mask;
    if (slotGen[slot] === gen) {
      const bytes = this.builder.dataBuffer().bytes();
      do {
        if (this.slotHash[slot] === h) {
          const o = this.slotOffset[slot];
          // A string is its uint32 length (little endian) then its bytes; offsets count from the buffer's end.
          const at = bytes.length - o;
          if ((bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) === n && sameBytes(bytes, at + 4, buf, n)) return o;
        }
        slot = (slot + 1) & mask;
      } while (slotGen[slot] === gen);
    }
    const o = this.builder.createString(this.views[n] ?? (this.views[n] = buf.subarray(0, n)));
    if (this.slotsUsed < DEDUP_SLOTS >> 1) {
      slotGen[slot] = gen;
      this.slotHash[slot] = h;
      this.slotOffset[slot] = o;
      this.slotsUsed++;
    }
    return o;
  }

  /** Non-ASCII or very long strings (rare): deduplicated through a Map, encoded by the builder. */
  private other(v: string): number {
    let o = this.strings.get(v);
    if (o === undefined) {
      o = this.builder.createString(v);
      this.strings.set(v, o);
    }
    return o;
  }

  /** A string that is unique per event (event and transaction ids): not worth a dedup lookup. */
  private unique(v: string): number {
    if (v === '' || v === undefined) return 0;
    const n = v.length;
    if (n > SCRATCH_BYTES) return this.builder.createString(v);
    const buf = this.scratch;
    for (let i = 0; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c > 0x7f) return this.builder.createString(v);
      buf[i] = c;
    }
    return this.builder.createString(this.views[n] ?? (this.views[n] = buf.subarray(0, n)));
  }

  /**
   * Moves the hot customData keys into their typed fields (see the schema): loadTimeMs when its
   * text is the canonical form of a number (so reading it back gives the same text), productId
   * always. Everything else stays in the map. Results in hoistedLoadTimeMs / hoistedProductId;
   * returns which keys were hoisted (bit 1: loadTimeMs, bit 2: productId).
   */
  private hoist(m: StringMap | undefined): number {
    this.hoistedLoadTimeMs = NaN;
    this.hoistedProductId = 0;
    if (!m) return 0;
    let hoisted = 0;
    const lt = m.loadTimeMs;
    if (lt !== undefined && lt !== '') {
      const n = Number(lt);
      if (String(n) === lt) {
        this.hoistedLoadTimeMs = n;
        hoisted |= HOISTED_LOAD_TIME;
      }
    }
    const pid = m.productId;
    if (pid !== undefined && pid !== '') {
      this.hoistedProductId = this.s(pid);
      hoisted |= HOISTED_PRODUCT_ID;
    }
    return hoisted;
  }

  /** The map's entries except the hoisted keys, as a KeyValue vector (0 when none are left). */
  private map(m: StringMap | undefined, hoisted: number, createVector: (b: flatbuffers.Builder, data: number[]) => number): number {
    if (!m) return 0;
    const entries = this.entries;
    entries.length = 0;
    for (const k in m) {
      if ((hoisted & HOISTED_LOAD_TIME && k === 'loadTimeMs') || (hoisted & HOISTED_PRODUCT_ID && k === 'productId')) continue;
      entries.push(KeyValue.createKeyValue(this.builder, this.s(k), this.s(m[k])));
    }
    return entries.length === 0 ? 0 : createVector(this.builder, entries);
  }

  private readonly entries: number[] = [];
}

const SCRATCH_BYTES = 4096;
/** Power of two; at most half of it is filled per batch (later strings are written without dedup). */
const DEDUP_SLOTS = 16384;

function sameBytes(a: Uint8Array, at: number, b: Uint8Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[at + i] !== b[i]) return false;
  return true;
}
const HOISTED_LOAD_TIME = 1;
const HOISTED_PRODUCT_ID = 2;
const NOTHING_HOISTED = 0;

/** Encodes events as one EventBatch message. A single event travels as a batch of one. */
export function encodeEventBatch(events: readonly EventRecord[]): Uint8Array {
  const enc = new EventBatchEncoder();
  for (const e of events) enc.add(e);
  return enc.finish();
}

function finishPlain(b: flatbuffers.Builder, root: number): Uint8Array {
  b.finish(root);
  return b.asUint8Array().slice();
}

function kvVector(b: flatbuffers.Builder, m: StringMap, create: (b: flatbuffers.Builder, data: number[]) => number): number {
  return create(b, Object.keys(m).map((k) => KeyValue.createKeyValue(b, b.createString(k), b.createString(m[k]))));
}

export function encodeUserProfile(p: UserProfileRecord): Uint8Array {
  const b = new flatbuffers.Builder(256);
  return finishPlain(b, UserProfile.createUserProfile(b, b.createString(p.userId), b.createString(p.tier), b.createString(p.segment), b.createString(p.country), b.createString(p.region), p.signupTime));
}

export function decodeUserProfile(bytes: Uint8Array): UserProfileRecord {
  const p = UserProfile.getRootAsUserProfile(new flatbuffers.ByteBuffer(bytes));
  return { userId: p.userId() ?? '', tier: p.tier() ?? '', segment: p.segment() ?? '', country: p.country() ?? '', region: p.region() ?? '', signupTime: p.signupTime() };
}

export function encodeProduct(p: ProductRecord): Uint8Array {
  const b = new flatbuffers.Builder(256);
  return finishPlain(b, Product.createProduct(b, b.createString(p.productId), b.createString(p.name), b.createString(p.category), p.price));
}

export function decodeProduct(bytes: Uint8Array): ProductRecord {
  const p = Product.getRootAsProduct(new flatbuffers.ByteBuffer(bytes));
  return { productId: p.productId() ?? '', name: p.name() ?? '', category: p.category() ?? '', price: p.price() };
}

export function encodeDashboardMetric(m: DashboardMetricRecord): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const metric = b.createString(m.metric), key = b.createString(m.key);
  const bd = kvVector(b, m.breakdown, DashboardMetric.createBreakdownVector);
  return finishPlain(b, DashboardMetric.createDashboardMetric(b, metric, key, m.windowStart, m.windowEnd, m.value, bd));
}

export function encodeAlert(a: AlertRecord): Uint8Array {
  const b = new flatbuffers.Builder(256);
  const s = (v: string) => b.createString(v);
  return finishPlain(b, Alert.createAlert(b, s(a.alertId), s(a.type), s(a.severity), s(a.key), a.windowStart, a.timestamp, s(a.message), a.value, a.threshold, s(a.userId)));
}
