import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Engine, MemorySink, ReferenceStore } from '../../engine/index.js';
import { KafkaSource } from '../../engine/source/kafka.js';
import { ReferenceLoader } from '../../engine/kafka/reference-loader.js';
import { tempDir } from '../engine/harness.js';
import { BROKERS } from './produce.js';

const run = promisify(execFile);

describe('loadgen', () => {
  it('writes what the engine consumes: every acknowledged event is counted once', async () => {
    const prefix = `lg${Date.now()}-`;
    const { stdout } = await run(process.execPath, [path.resolve('dist/loadgen/loadgen.js'), '--bootstrap-server', BROKERS, '--throughput', '20000',
      '--num-records', '20000', '--users', '2000', '--events-per-batch', '200', '--topic-prefix', prefix], { timeout: 60_000 });
    const lines = stdout.trim().split('\n');
    expect(lines.at(-2)).toMatch(/^20000 records sent, [\d.]+ records\/sec .* ms 99\.9th\.$/);
    const summary = JSON.parse(lines.at(-1)!);
    expect(summary).toMatchObject({ bench: 'loadgen', records: 20000, errors: 0 });
    expect(summary.p99Ms).toBeGreaterThan(0);

    const dir = tempDir('loadgen');
    try {
      const store = ReferenceStore.open(dir);
      const loader = new ReferenceLoader({ brokers: BROKERS, topicPrefix: prefix, partitions: 8, store, kafkaConfig: {} });
      expect((await loader.bootstrap()).profiles).toBe(2000);
      const source = new KafkaSource({ brokers: BROKERS, groupId: `${prefix}g`, topicPrefix: prefix, kafkaConfig: {}, batchSize: 500 });
      const engine = await Engine.start({ dataDir: dir, partitions: 8, shards: 4, workers: 2, commitIntervalMs: 200 }, source, new MemorySink());
      const deadline = Date.now() + 60_000;
      while (engine.committedTotals().events < 20000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(engine.committedTotals().events).toBe(20000);
      expect(engine.committedTotals().deadLetters).toBe(0);
      expect(engine.metrics.unknownUsers).toBe(0);
      await engine.stop();
      await loader.stop();
      await store.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
