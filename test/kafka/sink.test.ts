import { describe, expect, it } from 'vitest';
import Kafka from 'node-rdkafka';
import { ensureTopics, DLQ_TOPIC } from '../../engine/kafka/topics.js';
import { KafkaSink } from '../../engine/sink/kafka-sink.js';
import { TOPIC_CODES } from '../../engine/workers/protocol.js';
import { readTopics } from '../reliability/reconcile.js';
import { BROKERS } from './produce.js';

describe('Kafka output sink', () => {
  it('regression: a dead letter larger than the producer accepts is sent truncated with its headers, and does not block what follows', async () => {
    const prefix = `sink${Date.now()}-`;
    await ensureTopics(BROKERS, prefix, 2);
    const sink = new KafkaSink({ brokers: BROKERS, topicPrefix: prefix, kafkaConfig: {}, maxAttempts: 3 });
    await sink.connected();
    const webCode = Object.entries(TOPIC_CODES).find(([, name]) => name === 'web-events')![0];
    const big = new Uint8Array(2 * 1024 * 1024).fill(0x41);
    sink.deadLetters([
      { partition: 1, topic: Number(webCode), offset: 7, eventIndex: -1, code: 'ERR_CODEC_UNKNOWN_FORMAT', reason: 'not an event', bytes: big },
      { partition: 0, topic: Number(webCode), offset: 8, eventIndex: -1, code: 'ERR_CODEC_UNKNOWN_FORMAT', reason: 'small', bytes: new Uint8Array([1, 2, 3]) },
    ]);
    await sink.close();
    const got: Kafka.Message[] = [];
    await readTopics(BROKERS, [prefix + DLQ_TOPIC], 2, (m) => got.push(m));
    expect(got.length).toBe(2);
    const headersOf = (m: Kafka.Message) => Object.assign({}, ...(m.headers ?? []).map((h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.toString()]))));
    const truncated = got.find((m) => headersOf(m).reason === 'not an event')!;
    expect(headersOf(truncated)).toMatchObject({ truncated: String(big.length), 'source-partition': '1', 'source-offset': '7' });
    expect(truncated.value!.length).toBe(64 * 1024);
    expect(got.find((m) => headersOf(m).reason === 'small')!.value!.length).toBe(3);
    expect(sink.stats.failed).toBe(0);
  }, 60_000);
});
