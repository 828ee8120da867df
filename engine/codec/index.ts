/** The event codec: FlatBuffers wire format (schema/events.fbs), zero-copy reader, JSON interop. */
export * from './types.js';
export { CodecError, isCodecError, type CodecErrorCode } from './errors.js';
export { EventBatchReader, ascii, hashBytes, hashString } from './reader.js';
export { verifyEventBatch, hasEventBatchIdentifier, FILE_IDENTIFIER, DEFAULT_LIMITS, type VerifyLimits } from './verify.js';
export {
  EventBatchEncoder, encodeEventBatch, encodeUserProfile, decodeUserProfile, encodeProduct, decodeProduct,
  encodeDashboardMetric, encodeAlert,
} from './encode.js';
export { decodeJsonEvent, jsonObjectToRecord, looksLikeJson, TOPIC_SOURCES } from './json.js';
export { unify } from './unify.js';
export * as Slots from './generated/layout.js';
