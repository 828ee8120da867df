/**
 * The engine's error shape: a stable `code`, a message that says what to do, whether retrying can
 * help, and the `cause`. Subsystems name their own subclasses (StoreError, KafkaSetupError...).
 */
export class EngineError extends Error {
  readonly code: string;
  readonly retriable: boolean;

  constructor(code: string, message: string, retriable: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.retriable = retriable;
  }
}
