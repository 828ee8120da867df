/**
 * A loadgen thread in its own process (forked by loadgen.ts with an IPC channel): receives its
 * share's configuration, reports 'ready', waits for 'go' with the schedule's start, then runs.
 */
import { runShare, type ShareConfig, type ShareMessage } from './share.js';

if (!process.send) {
  console.error('loadgen/worker.js is started by loadgen.js; run `npm run loadgen` instead.');
  process.exit(2);
}
const post = (m: ShareMessage) => process.send!(m);
let resolveGo: (startAt: number) => void = () => undefined;
const go = new Promise<number>((r) => (resolveGo = r));
const stop = new AbortController();
// A terminal's Ctrl-C reaches the whole process group: this share stops sending and drains, like
// the coordinator's 'stop', instead of dying with its messages in flight.
process.on('SIGINT', () => stop.abort());
process.on('SIGTERM', () => stop.abort());
process.on('message', (m: { type: string; cfg?: ShareConfig; startAt?: number; reportMs?: number }) => {
  if (m.type === 'config') {
    const cfg = m.cfg!;
    // JSON over IPC has no Infinity.
    cfg.durationMs = cfg.durationMs ?? Infinity;
    cfg.numRecords = cfg.numRecords ?? Infinity;
    void runShare(cfg, post, go, m.reportMs!, stop.signal).then(() => process.disconnect());
  } else if (m.type === 'go') {
    resolveGo(m.startAt!);
  } else if (m.type === 'stop') {
    stop.abort();
  }
});
// The coordinator went away: stop rather than produce unobserved.
process.on('disconnect', () => setTimeout(() => process.exit(0), 100).unref());
