/**
 * Event records in the source application's shapes (field names kept so its users recognise
 * them). These plain objects are the cold-path form: encoders, JSON interop, tests and the
 * reference model use them. The hot path never builds them: workers read fields in place.
 */

export type StringMap = Record<string, string>;

export const SOURCES = ['WEB', 'MOBILE', 'TRANSACTION', 'IOT', 'USER_ACTION'] as const;
export type Source = (typeof SOURCES)[number];

/** Union type codes on the wire (EventBody): index in SOURCES + 1. */
export const EventKind = { WEB: 1, MOBILE: 2, TRANSACTION: 3, IOT: 4, USER_ACTION: 5 } as const;
export type EventKindCode = (typeof EventKind)[Source];

interface Common {
  /** Per-key sequence number stamped by loadgen; 0 or absent when the producer does not stamp. */
  seq?: number;
}

export interface WebEvent extends Common {
  source: 'WEB';
  eventId: string;
  userId: string;
  sessionId: string;
  timestamp: number;
  action: string;
  page: string;
  referrer: string;
  userAgent: string;
  ipAddress: string;
  customData: StringMap;
}

export interface MobileEvent extends Common {
  source: 'MOBILE';
  eventId: string;
  userId: string;
  sessionId: string;
  timestamp: number;
  action: string;
  appVersion: string;
  deviceType: string;
  osVersion: string;
  location: string;
  customData: StringMap;
}

export interface TransactionEvent extends Common {
  source: 'TRANSACTION';
  transactionId: string;
  userId: string;
  sessionId: string;
  timestamp: number;
  type: string;
  platform: string;
  amount: number;
  currency: string;
  merchantId: string;
  paymentMethod: string;
  productId: string;
  quantity: number;
  metadata: StringMap;
}

export interface IotSensorEvent extends Common {
  source: 'IOT';
  eventId: string;
  deviceId: string;
  userId: string;
  timestamp: number;
  sensorType: string;
  value: number;
  unit: string;
  location: string;
}

export interface UserActionEvent extends Common {
  source: 'USER_ACTION';
  eventId: string;
  userId: string;
  sessionId: string;
  timestamp: number;
  action: string;
  platform: string;
  location: string;
}

export type EventRecord = WebEvent | MobileEvent | TransactionEvent | IotSensorEvent | UserActionEvent;

export interface UserProfile {
  userId: string;
  tier: 'FREE' | 'SILVER' | 'GOLD' | 'PLATINUM' | string;
  segment: string;
  country: string;
  region: string;
  signupTime: number;
}

export interface Product {
  productId: string;
  name: string;
  category: string;
  price: number;
}

export interface DashboardMetric {
  metric: string;
  key: string;
  windowStart: number;
  windowEnd: number;
  value: number;
  breakdown: StringMap;
}

export interface Alert {
  alertId: string;
  type: string;
  severity: 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW';
  key: string;
  windowStart: number;
  timestamp: number;
  message: string;
  value: number;
  threshold: number;
  userId: string;
}

/**
 * The unified event every pipeline sees: eventType = "<SOURCE>_<action>" as in the source
 * application (WEB_PAGE_VIEW, TRANSACTION_COMPLETED...), and the platform it came from.
 */
export interface UnifiedEvent {
  source: Source;
  eventType: string;
  platform: string;
  eventId: string;
  userId: string;
  sessionId: string;
  timestamp: number;
  action: string;
  seq: number;
  page: string;
  productId: string;
  amount: number;
  currency: string;
  quantity: number;
  loadTimeMs: number;
  location: string;
  deviceId: string;
  sensorType: string;
  value: number;
}
