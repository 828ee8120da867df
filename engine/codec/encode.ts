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
        const f = [this.s(e.eventId), this.s(e.userId), this.s(e.sessionId), this.s(e.action), this.s(e.page), this.s(e.referrer), this.s(e.userAgent), this.s(e.ipAddress)];
        const h = this.hoist(e.customData);
        const cd = this.map(h.rest, WebEvent.createCustomDataVector);
        WebEvent.startWebEvent(b);
        WebEvent.addEventId(b, f[0]); WebEvent.addUserId(b, f[1]); WebEvent.addSessionId(b, f[2]);
        WebEvent.addTimestamp(b, e.timestamp); WebEvent.addAction(b, f[3]); WebEvent.addPage(b, f[4]);
        WebEvent.addReferrer(b, f[5]); WebEvent.addUserAgent(b, f[6]); WebEvent.addIpAddress(b, f[7]);
        if (cd) WebEvent.addCustomData(b, cd);
        if (h.loadTimeMs === h.loadTimeMs) WebEvent.addLoadTimeMs(b, h.loadTimeMs);
        if (h.productId) WebEvent.addProductId(b, h.productId);
        if (e.seq) WebEvent.addSeq(b, e.seq);
        body = WebEvent.endWebEvent(b);
        type = EventBody.WebEvent;
        break;
      }
      case 'MOBILE': {
        const f = [this.s(e.eventId), this.s(e.userId), this.s(e.sessionId), this.s(e.action), this.s(e.appVersion), this.s(e.deviceType), this.s(e.osVersion), this.s(e.location)];
        const h = this.hoist(e.customData);
        const cd = this.map(h.rest, MobileEvent.createCustomDataVector);
        MobileEvent.startMobileEvent(b);
        MobileEvent.addEventId(b, f[0]); MobileEvent.addUserId(b, f[1]); MobileEvent.addSessionId(b, f[2]);
        MobileEvent.addTimestamp(b, e.timestamp); MobileEvent.addAction(b, f[3]); MobileEvent.addAppVersion(b, f[4]);
        MobileEvent.addDeviceType(b, f[5]); MobileEvent.addOsVersion(b, f[6]); MobileEvent.addLocation(b, f[7]);
        if (cd) MobileEvent.addCustomData(b, cd);
        if (h.loadTimeMs === h.loadTimeMs) MobileEvent.addLoadTimeMs(b, h.loadTimeMs);
        if (h.productId) MobileEvent.addProductId(b, h.productId);
        if (e.seq) MobileEvent.addSeq(b, e.seq);
        body = MobileEvent.endMobileEvent(b);
        type = EventBody.MobileEvent;
        break;
      }
      case 'TRANSACTION': {
        const f = [this.s(e.transactionId), this.s(e.userId), this.s(e.sessionId), this.s(e.type), this.s(e.platform), this.s(e.currency), this.s(e.merchantId), this.s(e.paymentMethod), this.s(e.productId)];
        const md = this.map(e.metadata, TransactionEvent.createMetadataVector);
        TransactionEvent.startTransactionEvent(b);
        TransactionEvent.addTransactionId(b, f[0]); TransactionEvent.addUserId(b, f[1]); TransactionEvent.addSessionId(b, f[2]);
        TransactionEvent.addTimestamp(b, e.timestamp); TransactionEvent.addType(b, f[3]); TransactionEvent.addPlatform(b, f[4]);
        TransactionEvent.addAmount(b, e.amount); TransactionEvent.addCurrency(b, f[5]); TransactionEvent.addMerchantId(b, f[6]);
        TransactionEvent.addPaymentMethod(b, f[7]); TransactionEvent.addProductId(b, f[8]); TransactionEvent.addQuantity(b, e.quantity);
        if (md) TransactionEvent.addMetadata(b, md);
        if (e.seq) TransactionEvent.addSeq(b, e.seq);
        body = TransactionEvent.endTransactionEvent(b);
        type = EventBody.TransactionEvent;
        break;
      }
      case 'IOT': {
        const f = [this.s(e.eventId), this.s(e.deviceId), this.s(e.userId), this.s(e.sensorType), this.s(e.unit), this.s(e.location)];
        IotSensorEvent.startIotSensorEvent(b);
        IotSensorEvent.addEventId(b, f[0]); IotSensorEvent.addDeviceId(b, f[1]); IotSensorEvent.addUserId(b, f[2]);
        IotSensorEvent.addTimestamp(b, e.timestamp); IotSensorEvent.addSensorType(b, f[3]); IotSensorEvent.addValue(b, e.value);
        IotSensorEvent.addUnit(b, f[4]); IotSensorEvent.addLocation(b, f[5]);
        if (e.seq) IotSensorEvent.addSeq(b, e.seq);
        body = IotSensorEvent.endIotSensorEvent(b);
        type = EventBody.IotSensorEvent;
        break;
      }
      case 'USER_ACTION': {
        const f = [this.s(e.eventId), this.s(e.userId), this.s(e.sessionId), this.s(e.action), this.s(e.platform), this.s(e.location)];
        UserActionEvent.startUserActionEvent(b);
        UserActionEvent.addEventId(b, f[0]); UserActionEvent.addUserId(b, f[1]); UserActionEvent.addSessionId(b, f[2]);
        UserActionEvent.addTimestamp(b, e.timestamp); UserActionEvent.addAction(b, f[3]); UserActionEvent.addPlatform(b, f[4]);
        UserActionEvent.addLocation(b, f[5]);
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
    this.strings.clear();
    this.eventOffsets.length = 0;
    this.eventTypes.length = 0;
  }

  /** Offset of a (deduplicated) string; empty strings are not written (absent reads as ''). */
  private s(v: string): number {
    if (v === '' || v === undefined) return 0;
    let o = this.strings.get(v);
    if (o === undefined) {
      o = this.builder.createString(v);
      this.strings.set(v, o);
    }
    return o;
  }

  /**
   * Moves the hot customData keys into their typed fields (see the schema): loadTimeMs when its
   * text is the canonical form of a number (so reading it back gives the same text), productId
   * always. Everything else stays in the map.
   */
  private hoist(m: StringMap | undefined): { loadTimeMs: number; productId: number; rest: StringMap | undefined } {
    if (!m || (m.loadTimeMs === undefined && m.productId === undefined)) return { loadTimeMs: NaN, productId: 0, rest: m };
    const rest: StringMap = { ...m };
    let loadTimeMs = NaN;
    let productId = 0;
    if (m.loadTimeMs !== undefined && m.loadTimeMs !== '' && String(Number(m.loadTimeMs)) === m.loadTimeMs) {
      loadTimeMs = Number(m.loadTimeMs);
      delete rest.loadTimeMs;
    }
    if (m.productId !== undefined && m.productId !== '') {
      productId = this.s(m.productId);
      delete rest.productId;
    }
    return { loadTimeMs, productId, rest };
  }

  private map(m: StringMap | undefined, createVector: (b: flatbuffers.Builder, data: number[]) => number): number {
    if (!m) return 0;
    const keys = Object.keys(m);
    if (keys.length === 0) return 0;
    const entries = keys.map((k) => KeyValue.createKeyValue(this.builder, this.s(k), this.s(m[k])));
    return createVector(this.builder, entries);
  }
}

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
