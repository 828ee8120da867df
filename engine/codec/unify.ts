import type { EventRecord, UnifiedEvent } from './types.js';

/**
 * The unified event of the source application: eventType = "<SOURCE>_<action>", platform.
 * Web events come from WEB, mobile ones from MOBILE, IoT from IOT; transactions and user
 * actions carry their own platform (WEB when the producer left it empty).
 */
export function unify(e: EventRecord): UnifiedEvent {
  const base: UnifiedEvent = {
    source: e.source, eventType: '', platform: '', eventId: '', userId: e.userId, sessionId: '',
    timestamp: e.timestamp, action: '', seq: e.seq ?? 0, page: '', productId: '', amount: 0, currency: '',
    quantity: 0, loadTimeMs: NaN, location: '', deviceId: '', sensorType: '', value: 0,
  };
  switch (e.source) {
    case 'WEB':
      return { ...base, eventType: `WEB_${e.action}`, platform: 'WEB', eventId: e.eventId, sessionId: e.sessionId, action: e.action, page: e.page, productId: e.customData.productId ?? '', loadTimeMs: numberOr(e.customData.loadTimeMs), location: e.customData.country ?? '' };
    case 'MOBILE':
      return { ...base, eventType: `MOBILE_${e.action}`, platform: 'MOBILE', eventId: e.eventId, sessionId: e.sessionId, action: e.action, page: e.customData.screen ?? '', productId: e.customData.productId ?? '', loadTimeMs: numberOr(e.customData.loadTimeMs), location: e.location };
    case 'TRANSACTION':
      return { ...base, eventType: `TRANSACTION_${e.type}`, platform: e.platform || 'WEB', eventId: e.transactionId, sessionId: e.sessionId, action: e.type, productId: e.productId, amount: e.amount, currency: e.currency, quantity: e.quantity, location: e.metadata.country ?? '' };
    case 'IOT':
      return { ...base, eventType: `IOT_${e.sensorType}`, platform: 'IOT', eventId: e.eventId, action: e.sensorType, location: e.location, deviceId: e.deviceId, sensorType: e.sensorType, value: e.value };
    case 'USER_ACTION':
      return { ...base, eventType: `USER_ACTION_${e.action}`, platform: e.platform || 'WEB', eventId: e.eventId, sessionId: e.sessionId, action: e.action, location: e.location };
  }
}

function numberOr(s: string | undefined): number {
  if (s === undefined || s === '') return NaN;
  const n = Number(s);
  return Number.isFinite(n) ? n : NaN;
}
