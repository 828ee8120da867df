import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The development broker as benches and tests see it: is something answering, and start the
 * project's own (kafka/kafka.mjs: Apache Kafka from Maven Central, KRaft, 127.0.0.1) when not.
 * A broker someone else started is used as it is and never stopped here.
 */

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** kafka/kafka.mjs, from the sources (kafka/) or from the build (dist/kafka/). */
const SCRIPT = existsSync(path.join(HERE, 'kafka.mjs')) ? path.join(HERE, 'kafka.mjs') : path.join(HERE, '../../kafka/kafka.mjs');

/** True when a TCP connection to the first of `brokers` ("host:port,...") opens within a second. */
export function brokerAnswers(brokers: string): Promise<boolean> {
  const [host, port] = brokers.split(',')[0].split(':');
  return new Promise((resolve) => {
    const s = net.connect({ host, port: Number(port), timeout: 1000 }, () => {
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

/** Whether this checkout's own broker is running (kafka.mjs status). */
export function ownBrokerRunning(): boolean {
  return spawnSync(process.execPath, [SCRIPT, 'status']).status === 0;
}

/** Starts this checkout's broker and waits until it answers (idempotent). */
export function startOwnBroker(): void {
  execFileSync(process.execPath, [SCRIPT, 'start'], { stdio: ['ignore', 'inherit', 'inherit'] });
}

export function stopOwnBroker(): void {
  execFileSync(process.execPath, [SCRIPT, 'stop'], { stdio: ['ignore', 'inherit', 'inherit'] });
}

/** Starts the project's broker unless something answers on `brokers` (it is never stopped here: others share it). */
export async function ensureBroker(brokers: string, log: (msg: string) => void = () => undefined): Promise<void> {
  if (await brokerAnswers(brokers)) return;
  log(`no broker on ${brokers}: npm run kafka:start`);
  startOwnBroker();
}
