/**
 * What every source (embedded generator, Kafka) gives the dispatcher: raw messages of a topic
 * partition, in offset order per partition, as bytes (the main thread never decodes them).
 */
export interface RawMessage {
  /** Topic code (see workers/protocol.ts TOPIC_CODES). */
  topic: number;
  partition: number;
  offset: number;
  value: Uint8Array;
}

/** Per partition, per topic code: the highest offset already processed. */
export type OffsetMap = Record<number, Record<string, number>>;

export interface SourceHandler {
  onMessages(messages: RawMessage[]): void;
  /** A bounded source delivered its last message. */
  onEnd(): void;
  onError(err: Error): void;
  /**
   * Partitions are being taken away (a rebalance): process what was already handed over for them
   * and make it durable; the source waits for this before giving them up, then commits their
   * offsets, so the next owner starts exactly where this process stopped.
   */
  onPartitionsRevoked?(partitions: number[]): Promise<void>;
  /**
   * Scaled out: partitions were assigned to this process. Their state is made current (restored
   * from the changelog) before the source starts fetching them; resolves with the offsets that
   * state has counted (the source resumes right after them).
   */
  onPartitionsAssigned?(partitions: number[]): Promise<OffsetMap>;
}

export interface EventSource {
  readonly name: string;
  /** Source-specific counters (Kafka: consumed, commits, commit errors, rebalances). */
  readonly stats?: Record<string, number | string>;
  /** Starts delivering after the given offsets (state already counted them). */
  start(handler: SourceHandler, resumeAfter: OffsetMap): Promise<void>;
  /** Backpressure: stop delivering until resume(). */
  pause(): void;
  resume(): void;
  /** Offsets whose state is durable: the source may commit them (Kafka: next offset = this + 1). */
  commit(offsets: OffsetMap): void;
  stop(): Promise<void>;
}
