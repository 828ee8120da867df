/**
 * The client side of bench:fanout, run as its own process so the clients' CPU is not the
 * server's: N WebSocket clients on /dashboard-ws, each timing every DELTA from the server's send
 * time (`sentAt`, same machine clock) to its arrival. Prints one JSON line with the merged HDR
 * histogram (compressed base64) and byte counts.
 *
 * The clients are a minimal RFC 6455 reader on raw sockets, not the `ws` package: ws inflates
 * permessage-deflate asynchronously through a 10-at-a-time limiter, which at 5,000 clients makes
 * the bench measure its own queue (hundreds of ms) instead of the server. Here each frame is
 * inflated synchronously on arrival (a browser inflates in native code per connection too), and
 * only the head of the message is read.
 *
 *   node dist/bench/fanout-clients.js --url ws://127.0.0.1:8080/dashboard-ws --clients 1000 --duration 20
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';
import * as hdr from 'hdr-histogram-js';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' },
    clients: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '20' },
    'connect-concurrency': { type: 'string', default: '200' },
    'tick-ms': { type: 'string', default: '250' },
    // 'payload': inflate each distinct compressed payload once (every client of a topic gets the
    // same bytes per tick, so this is the same result); 'frame': inflate every frame, as before.
    inflate: { type: 'string', default: 'payload' },
  },
});
const url = new URL(a.url!);
const n = Number(a.clients);
const durationMs = Number(a.duration) * 1000;
const tickMs = Number(a['tick-ms']);
const inflateOncePerPayload = a.inflate === 'payload';
if (a.inflate !== 'payload' && a.inflate !== 'frame') throw new Error(`--inflate must be payload or frame, got ${a.inflate}`);

// Microseconds, up to 10 minutes. Coordinated omission: recordValueWithExpectedInterval fills in
// the ticks a slow delivery hid.
const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
let measuring = false;
let deltas = 0;
let snapshots = 0;
let closedEarly = 0;
let bytesIn = 0;
/** Per delivered tick (by its sentAt): first and last arrival over all clients, to tell the server's part (sent -> first arrival) from the fan-out's spread. */
const perTick = new Map<number, { first: number; last: number; n: number }>();
const SENT_AT = /"sentAt":(\d+(?:\.\d+)?)/;
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

function onMessage(text: string, arrivedAt: number): void {
  if (text.startsWith('{"type":"DELTA"')) {
    const m = SENT_AT.exec(text);
    if (m && measuring) {
      deltas++;
      const sentAt = Number(m[1]);
      const t = perTick.get(sentAt);
      if (t) {
        t.first = Math.min(t.first, arrivedAt);
        t.last = Math.max(t.last, arrivedAt);
        t.n++;
      } else perTick.set(sentAt, { first: arrivedAt, last: arrivedAt, n: 1 });
      const us = Math.max(1, Math.round((arrivedAt - sentAt) * 1000));
      histogram.recordValueWithExpectedInterval(us, tickMs * 1000);
    }
  } else if (text.startsWith('{"type":"SNAPSHOT"')) snapshots++;
}

/**
 * The head of each distinct compressed payload, by its bytes. With one process standing in for
 * 5,000 browsers, inflating the same ~700 bytes 5,000 times per tick (a zlib instance each) was
 * most of this process's CPU, and the later sockets of a tick were stamped only after the earlier
 * ones had been inflated: the bench measured its own queue. Each browser inflates on its own core.
 */
const heads = new Map<string, string>();
function inflatedHead(payload: Buffer, permessageDeflate: boolean): string {
  const key = inflateOncePerPayload ? (permessageDeflate ? 'p' : 'z') + payload.toString('latin1') : '';
  const known = inflateOncePerPayload ? heads.get(key) : undefined;
  if (known !== undefined) return known;
  const data = permessageDeflate
    ? zlib.inflateRawSync(Buffer.concat([payload, TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH })
    : zlib.inflateRawSync(payload);
  const head = data.toString('latin1', 0, 120);
  if (inflateOncePerPayload) {
    if (heads.size >= 256) heads.clear();
    heads.set(key, head);
  }
  return head;
}

const deferred: Array<[(chunk: Buffer, at: number) => void, Buffer, number]> = [];
let drainScheduled = false;
function defer(fn: (chunk: Buffer, at: number) => void, chunk: Buffer, at: number): void {
  deferred.push([fn, chunk, at]);
  if (drainScheduled) return;
  drainScheduled = true;
  setImmediate(() => {
    drainScheduled = false;
    const work = deferred.splice(0);
    for (const [f, c, t] of work) f(c, t);
  });
}

/** One client: upgrade, then frames. Pings are answered (masked pongs), so uWS keeps us alive. */
function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(url.port), url.hostname);
    sock.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    let upgraded = false;
    let noContextTakeover = true;
    // With context takeover (dedicated compressors) the inflater keeps its window across messages;
    // zlib streams are asynchronous, so the arrival time is taken when the frame arrives.
    let inflater: zlib.InflateRaw | null = null;
    let inflated: Buffer[] = [];
    let fragments: Buffer[] = [];
    let fragCompressed = false;
    sock.on('connect', () => {
      sock.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
        + `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n`
        + 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n');
    });
    const handle = (chunk: Buffer, at: number): void => {
      if (measuring) bytesIn += chunk.length;
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end);
        if (!head.startsWith('HTTP/1.1 101')) {
          reject(new Error(head.split('\r\n')[0]));
          sock.destroy();
          return;
        }
        const ext = /sec-websocket-extensions:([^\r]*)/i.exec(head)?.[1] ?? '';
        noContextTakeover = /server_no_context_takeover/.test(ext);
        upgraded = true;
        buf = buf.subarray(end + 4);
        resolve(sock);
      }
      // Frames (server frames are never masked).
      for (;;) {
        if (buf.length < 2) return;
        const b0 = buf[0]!;
        let len = buf[1]! & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf.length < off + len) return;
        const payload = buf.subarray(off, off + len);
        buf = buf.subarray(off + len);
        const opcode = b0 & 0x0f;
        const fin = (b0 & 0x80) !== 0;
        if (opcode === 0x9) {
          const mask = randomBytes(4);
          const out = Buffer.alloc(payload.length);
          for (let i = 0; i < payload.length; i++) out[i] = payload[i]! ^ mask[i & 3]!;
          sock.write(Buffer.concat([Buffer.from([0x8a, 0x80 | payload.length]), mask, out]));
          continue;
        }
        if (opcode === 0x8) {
          sock.end();
          return;
        }
        if (opcode === 0x1 || opcode === 0x2) {
          fragments = [payload];
          fragCompressed = (b0 & 0x40) !== 0;
        } else if (opcode === 0x0) fragments.push(payload);
        else continue;
        if (!fin) continue;
        const arrivedAt = at;
        const data: Buffer = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
        fragments = [];
        if (fragCompressed && !noContextTakeover) {
          if (!inflater) {
            inflater = zlib.createInflateRaw();
            inflater.on('data', (d: Buffer) => inflated.push(d));
          }
          const inf = inflater;
          inf.write(Buffer.concat([data, TAIL]));
          inf.flush(zlib.constants.Z_SYNC_FLUSH, () => {
            const out = Buffer.concat(inflated);
            inflated = [];
            onMessage(out.toString('latin1', 0, 120), arrivedAt);
          });
          continue;
        }
        if (fragCompressed) onMessage(inflatedHead(data, true), arrivedAt);
        else if (opcode === 0x2) onMessage(inflatedHead(data, false), arrivedAt); // 'precompressed': our own raw DEFLATE frames
        else onMessage(data.toString('latin1', 0, 120), arrivedAt);
      }
    };
    // Arrival is stamped when the socket is read; decoding waits until every socket readable in
    // this loop turn has been stamped, so one client's inflate does not delay the next one's clock.
    sock.on('data', (chunk: Buffer) => {
      const at = Date.now();
      if (!upgraded) handle(chunk, at);
      else defer(handle, chunk, at);
    });
    sock.on('error', (e) => {
      if (!upgraded) reject(e);
    });
    sock.on('close', () => {
      if (measuring) closedEarly++;
    });
  });
}

const sockets: net.Socket[] = [];
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

await new Promise((r) => setTimeout(r, 1000)); // let the connect-time snapshots settle
const s0 = performance.now();
measuring = true;
await new Promise((r) => setTimeout(r, durationMs));
measuring = false;
const seconds = (performance.now() - s0) / 1000;
for (const s of sockets) s.destroy();
// Ticks every client received: how long until the first client had it, and how long from first to last.
const ticks = [...perTick.entries()].filter(([, t]) => t.n === sockets.length);
const pct = (xs: number[], p: number) => (xs.length ? xs.sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]! : 0);
const firstMs = ticks.map(([sent, t]) => t.first - sent);
const spreadMs = ticks.map(([, t]) => t.last - t.first);
const ms = (p: number) => Math.round(histogram.getValueAtPercentile(p) / 10) / 100;
console.log(JSON.stringify({
  clients: sockets.length, connectFailed: failed, connectMs: Math.round(connectMs), seconds,
  deltas, deltasPerClientPerSec: deltas / sockets.length / seconds, snapshots, closedEarly,
  bytesPerClientPerSec: Math.round(bytesIn / sockets.length / seconds),
  p50Ms: ms(50), p90Ms: ms(90), p99Ms: ms(99), p999Ms: ms(99.9), maxMs: Math.round(histogram.maxValue / 10) / 100,
  ticksComplete: ticks.length, firstArrivalP50Ms: pct(firstMs, 50), firstArrivalMaxMs: pct(firstMs, 100), spreadP50Ms: pct(spreadMs, 50), spreadP90Ms: pct(spreadMs, 90), spreadMaxMs: pct(spreadMs, 100),
  histogram: hdr.encodeIntoCompressedBase64(histogram),
}));
process.exit(0);
