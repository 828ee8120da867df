import { execFileSync, spawnSync } from 'node:child_process';

/**
 * Starts the project's own Kafka broker (kafka/kafka.mjs: fetched from Maven Central, KRaft, on
 * 127.0.0.1:9092) unless one is already running, and stops it afterwards if it started it.
 */
export default function setup(): () => void {
  const wasRunning = spawnSync(process.execPath, ['kafka/kafka.mjs', 'status']).status === 0;
  execFileSync(process.execPath, ['kafka/kafka.mjs', 'start'], { stdio: 'inherit' });
  return () => {
    if (!wasRunning) execFileSync(process.execPath, ['kafka/kafka.mjs', 'stop'], { stdio: 'inherit' });
  };
}
