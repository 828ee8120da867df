/**
 * The client side of bench:fanout, run as its own process so the clients' CPU is not the
 * server's: N WebSocket clients on /dashboard-ws, each timing every DELTA from the server's send
 * time (`sentAt`, same machine clock) to its arrival. Prints one JSON line with the merged HDR
 * histogram (compressed base64) and byte counts.
 *
 *   node dist/bench/fanout-clients.js --url ws://127.0.0.1:8080/dashboard-ws --clients 1000 --duration 20
 */
import { parseArgs } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import WebSocket from 'ws';
import * as hdr from 'hdr-histogram-js';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' },
    clients: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '20' },
    'connect-concurrency': { type: 'string', default: '200' },
    'tick-ms': { type: 'string', default: '250' },
  },
});
const url = a.url!;
const n = Number(a.clients);
const durationMs = Number(a.duration) * 1000;
const tickMs = Number(a['tick-ms']);

// Microseconds, up to 10 minutes; coordinated omission: a client that misses ticks (server not
// sending, or this process stalled) records the expected-interval fill-ins.
const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
let measuring = false;
let deltas = 0;
let snapshots = 0;
let closedEarly = 0;
const SENT_AT = /"sentAt":(\d+(?:\.\d+)?)/;

function onMessage(data: WebSocket.RawData, isBinary: boolean): void {
  const buf = data as Buffer;
  // Only the head is parsed: the server puts type and sentAt first, so the bench does not spend
  // its CPU on JSON.parse of thousands of identical messages.
  const head = (isBinary ? inflateRawSync(buf) : buf).toString('latin1', 0, 120);
  if (head.startsWith('{"type":"DELTA"')) {
    const m = SENT_AT.exec(head);
    if (m && measuring) {
      deltas++;
      const us = Math.max(1, Math.round((Date.now() - Number(m[1])) * 1000));
      histogram.recordValueWithExpectedInterval(us, tickMs * 1000);
    }
  } else if (head.startsWith('{"type":"SNAPSHOT"')) snapshots++;
}

function connect(): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: true });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.on('message', onMessage);
    ws.on('close', () => {
      if (measuring) closedEarly++;
    });
  });
}

const sockets: WebSocket[] = [];
const t0 = performance.now();
const concurrency = Number(a['connect-concurrency']);
let failed = 0;
for (let i = 0; i < n; i += concurrency) {
  const batch = await Promise.allSettled(Array.from({ length: Math.min(concurrency, n - i) }, connect));
  for (const r of batch) {
    if (r.status === 'fulfilled') sockets.push(r.value);
    else failed++;
  }
}
const connectMs = performance.now() - t0;
process.stderr.write(`fanout-clients: ${sockets.length} connected (${failed} failed) in ${(connectMs / 1000).toFixed(1)} s; measuring ${durationMs / 1000} s\n`);

const bytesRead = () => sockets.reduce((s, ws) => s + ((ws as unknown as { _socket?: { bytesRead: number } })._socket?.bytesRead ?? 0), 0);
await new Promise((r) => setTimeout(r, 1000)); // let the connect-time snapshots settle
const b0 = bytesRead();
const s0 = performance.now();
measuring = true;
await new Promise((r) => setTimeout(r, durationMs));
measuring = false;
const seconds = (performance.now() - s0) / 1000;
const bytes = bytesRead() - b0;
for (const ws of sockets) ws.terminate();
const ms = (p: number) => Math.round(histogram.getValueAtPercentile(p) / 10) / 100;
console.log(JSON.stringify({
  clients: sockets.length, connectFailed: failed, connectMs: Math.round(connectMs), seconds,
  deltas, deltasPerClientPerSec: deltas / sockets.length / seconds, snapshots, closedEarly,
  bytesPerClientPerSec: Math.round(bytes / sockets.length / seconds),
  p50Ms: ms(50), p90Ms: ms(90), p99Ms: ms(99), p999Ms: ms(99.9), maxMs: Math.round(histogram.maxValue / 10) / 100,
  histogram: hdr.encodeIntoCompressedBase64(histogram),
}));
process.exit(0);
