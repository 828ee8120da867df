import { execFileSync, spawnSync } from 'node:child_process';
import net from 'node:net';

const HOST = '127.0.0.1';
const PORT = Number(process.env.KAFKA_PORT ?? 9092);

function answers(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port: PORT, timeout: 1000 }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.on('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

/**
 * Starts the project's own Kafka broker (kafka/kafka.mjs: fetched from Maven Central, KRaft, on
 * 127.0.0.1:9092) unless one is already running (this checkout's, or another one answering on the
 * port), and stops it afterwards if it started it.
 */
export default async function setup(): Promise<() => void> {
  const ours = spawnSync(process.execPath, ['kafka/kafka.mjs', 'status']).status === 0;
  if (!ours && (await answers())) {
    console.log(`[kafka] a broker already answers on ${HOST}:${PORT}; the tests use it`);
    return () => undefined;
  }
  execFileSync(process.execPath, ['kafka/kafka.mjs', 'start'], { stdio: 'inherit' });
  return () => {
    if (!ours) execFileSync(process.execPath, ['kafka/kafka.mjs', 'stop'], { stdio: 'inherit' });
  };
}
