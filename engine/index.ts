/** The engine's public surface: start an engine on a source, query it, stop it. */
export { Engine, type EngineMetrics, type Delta, type DeltaListener } from './engine.js';
export { parseEngineConfig, ConfigError, type EngineConfig, type EngineOptions } from './config.js';
export { EmbeddedSource, partitionOf, keyOf, type EmbeddedSourceOptions } from './source/embedded.js';
export { EventGenerator, DEFAULT_GENERATOR_CONFIG, type GeneratorConfig } from './source/generator.js';
export type { EventSource, RawMessage, OffsetMap, SourceHandler } from './source/types.js';
export { MemorySink, type OutputSink } from './sink/sink.js';
export { QueryLayer, type TimeRange } from './query/query.js';
export { AlertStore, type StoredAlert, type AlertStatus } from './alerts/alert-store.js';
export { ReferenceStore } from './state/reference-store.js';
