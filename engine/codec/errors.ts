/**
 * Errors of the codec. Every error has a stable `code`, a message that says what is wrong, and
 * whether retrying could help (never, for malformed bytes: they go to the dead-letter topic).
 */
export type CodecErrorCode =
  | 'ERR_CODEC_TRUNCATED'
  | 'ERR_CODEC_BAD_IDENTIFIER'
  | 'ERR_CODEC_OUT_OF_BOUNDS'
  | 'ERR_CODEC_BAD_VTABLE'
  | 'ERR_CODEC_BAD_UNION'
  | 'ERR_CODEC_TOO_LARGE'
  | 'ERR_CODEC_TOO_COMPLEX'
  | 'ERR_CODEC_JSON_SYNTAX'
  | 'ERR_CODEC_JSON_SHAPE'
  | 'ERR_CODEC_UNKNOWN_FORMAT';

export class CodecError extends Error {
  override readonly name = 'CodecError';
  readonly code: CodecErrorCode;
  readonly retriable = false;
  /** Byte offset (relative to the message start) where verification failed, when known. */
  readonly at: number;

  constructor(code: CodecErrorCode, message: string, at = -1, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.at = at;
  }
}

export function isCodecError(e: unknown): e is CodecError {
  return e instanceof CodecError;
}
