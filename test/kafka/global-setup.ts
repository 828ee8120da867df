import { brokerAnswers, ownBrokerRunning, startOwnBroker, stopOwnBroker } from '../../kafka/dev-broker.js';

const BROKERS = `127.0.0.1:${Number(process.env.KAFKA_PORT ?? 9092)}`;

/**
 * Starts the project's own Kafka broker (kafka/kafka.mjs: fetched from Maven Central, KRaft, on
 * 127.0.0.1:9092) unless one is already running (this checkout's, or another one answering on the
 * port), and stops it afterwards if it started it.
 */
export default async function setup(): Promise<() => void> {
  const ours = ownBrokerRunning();
  if (!ours && (await brokerAnswers(BROKERS))) {
    console.log(`[kafka] a broker already answers on ${BROKERS}; the tests use it`);
    return () => undefined;
  }
  startOwnBroker();
  return () => {
    if (!ours) stopOwnBroker();
  };
}
