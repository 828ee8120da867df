import { EventBatchReader, EventKind, Slots } from '../codec/index.js';
import type { Vocabulary } from './symbols.js';

/**
 * The one reusable record a worker fills per event from the zero-copy reader: numbers and intern
 * ids only, no per-event allocation. Pipelines read it; it is overwritten by the next event.
 */
export class ScratchEvent {
  kind = 0;
  ts = 0;
  user = -1;
  /** Unified action: web/mobile/user action, transaction type, sensor type. */
  action = 0;
  platform = 0;
  amount = 0;
  currency = 0;
  product = -1;
  quantity = 0;
  loadTimeMs = NaN;
  page = 0;
  /** Location of the event itself (mobile, user action, IoT, transaction metadata) or EMPTY. */
  location = 0;
  device = -1;
  value = 0;
  /** Per-key sequence number (0: not stamped); read only when `readSeq` (--audit-sequences). */
  seq = 0;
  readSeq = false;
}

const W = Slots.WebEventSlot, M = Slots.MobileEventSlot, T = Slots.TransactionEventSlot;
const I = Slots.IotSensorEventSlot, U = Slots.UserActionEventSlot;
const PRODUCT_PREFIX = new TextEncoder().encode('/product/');

/** Symbol of a string field; EMPTY when absent, -1 when not valid UTF-8. */
function sym(r: EventBatchReader, v: Vocabulary, slot: number): number {
  return r.str(slot) ? v.symbols.internAt(r) : v.EMPTY;
}

/**
 * Fills `e` from the reader's selected event. Returns null when the event is acceptable, or the
 * reason it must go to the dead-letter topic.
 */
export function decodeInto(r: EventBatchReader, v: Vocabulary, e: ScratchEvent, kind: number): string | null {
  e.kind = kind;
  e.ts = r.timestamp();
  if (e.readSeq) e.seq = r.seq;
  if (!Number.isFinite(e.ts) || e.ts <= 0) return 'timestamp missing or not a positive number';
  if (r.userId() && r.strLen > 0) {
    e.user = v.users.internAt(r);
    if (e.user < 0) return 'userId is not valid UTF-8';
  } else {
    e.user = -1;
    if (kind !== EventKind.IOT) return 'userId missing';
  }
  e.action = r.action() && r.strLen > 0 ? v.symbols.internAt(r) : -1;
  if (e.action < 0) return kind === EventKind.TRANSACTION ? 'transaction type missing' : kind === EventKind.IOT ? 'sensorType missing' : 'action missing';
  e.amount = 0;
  e.currency = v.EMPTY;
  e.product = -1;
  e.quantity = 0;
  e.loadTimeMs = NaN;
  e.page = v.EMPTY;
  e.location = v.EMPTY;
  e.device = -1;
  e.value = 0;
  switch (kind) {
    case EventKind.WEB:
      e.platform = v.WEB;
      e.loadTimeMs = r.loadTimeMs();
      if (r.str(W.page)) {
        e.page = r.strLen > PRODUCT_PREFIX.length && startsWith(r, PRODUCT_PREFIX) ? v.PRODUCT_PAGE : v.symbols.internAt(r);
      }
      if (r.productId() && r.strLen > 0) e.product = v.products.internAt(r);
      break;
    case EventKind.MOBILE:
      e.platform = v.MOBILE;
      e.loadTimeMs = r.loadTimeMs();
      e.location = sym(r, v, M.location);
      if (r.productId() && r.strLen > 0) e.product = v.products.internAt(r);
      break;
    case EventKind.TRANSACTION: {
      const p = sym(r, v, T.platform);
      e.platform = p === v.EMPTY ? v.WEB : p;
      e.amount = r.f64(T.amount);
      if (!Number.isFinite(e.amount)) return 'transaction amount is not a finite number';
      e.currency = sym(r, v, T.currency);
      e.quantity = r.i32(T.quantity);
      if (r.str(T.productId) && r.strLen > 0) e.product = v.products.internAt(r);
      break;
    }
    case EventKind.IOT:
      e.platform = v.IOT;
      e.value = r.f64(I.value);
      if (!Number.isFinite(e.value)) return 'sensor value is not a finite number';
      e.location = sym(r, v, I.location);
      if (r.str(I.deviceId) && r.strLen > 0) e.device = v.devices.internAt(r);
      else return 'deviceId missing';
      break;
    case EventKind.USER_ACTION: {
      const p = sym(r, v, U.platform);
      e.platform = p === v.EMPTY ? v.WEB : p;
      e.location = sym(r, v, U.location);
      break;
    }
    default:
      return `unknown event kind ${kind}`;
  }
  if (e.platform < 0 || e.currency < 0 || e.page < 0 || e.location < 0) return 'a text field is not valid UTF-8';
  if (e.product === -1 && kind !== EventKind.IOT && kind !== EventKind.USER_ACTION && r.productId() && r.strLen > 0) return 'productId is not valid UTF-8';
  if (kind === EventKind.IOT && e.device < 0) return 'deviceId is not valid UTF-8';
  return null;
}

function startsWith(r: EventBatchReader, prefix: Uint8Array): boolean {
  const b = r.bytes;
  for (let i = 0; i < prefix.length; i++) if (b[r.strPos + i] !== prefix[i]) return false;
  return true;
}
