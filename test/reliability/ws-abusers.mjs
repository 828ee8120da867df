// Scenario 10's abusive WebSocket clients, in their own process, so that their CPU work (thousands
// of handshakes, a flood) is not done by the process that measures the well-behaved clients.
// Usage: node ws-abusers.mjs '<json options>'; progress on stderr, one JSON result line on stdout.
// Options: url, kinds (subset of churn, paused, throttled, oversized, malformed, flood), durationMs
// (the churn runs and the slow readers stay connected this long), churnParallel, churnMin (the churn
// goes on past the duration until this many connections were made), pausedReaders,
// throttledReaders, throttleBytesPerSec.
import net from 'node:net';
import crypto from 'node:crypto';
import WebSocket from 'ws';

const o = JSON.parse(process.argv[2]);
const kinds = new Set(o.kinds);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stderr.write(`[abusers] ${s}\n`);

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function closeCode(ws, ms) {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(-1), ms);
    ws.once('close', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

/** A masked client text frame (RFC 6455 5.2), for the raw TCP clients. */
function clientFrame(text) {
  const payload = Buffer.from(text);
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x81, 0x80 | n]) : Buffer.from([0x81, 0x80 | 126, n >> 8, n & 255]);
  const mask = crypto.randomBytes(4);
  for (let i = 0; i < n; i++) payload[i] ^= mask[i & 3];
  return Buffer.concat([head, mask, payload]);
}

/**
 * A raw TCP WebSocket client that reads at most `bytesPerSec` (the socket stays paused; every
 * 100 ms it takes a tenth of the budget from Node's buffer). Node stops reading from the kernel
 * once its buffer holds its high-water mark, so TCP flow control pushes back on the server.
 * It also asks for a day's revenue breakdown `requestsPerSec` times a second (within the rate
 * limit), so that what the server owes it grows faster than it reads.
 */
function throttledReader(url, bytesPerSec, requestsPerSec) {
  const u = new URL(url);
  const sock = net.connect(Number(u.port), u.hostname);
  const st = { sock, read: 0, upgraded: false, closed: false, timer: null };
  sock.on('connect', () => {
    sock.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
  sock.on('close', () => (st.closed = true));
  sock.on('error', () => (st.closed = true));
  // A 'readable' listener keeps the stream in paused mode; bytes are taken only by read() below.
  sock.on('readable', () => undefined);
  const slice = Math.max(1, Math.floor(bytesPerSec / 10));
  let tick = 0;
  const every = requestsPerSec > 0 ? Math.max(1, Math.round(10 / requestsPerSec)) : 0;
  st.timer = setInterval(() => {
    if (every && st.upgraded && !st.closed && tick++ % every === 0) sock.write(clientFrame(JSON.stringify({ type: 'GET_REVENUE_BREAKDOWN', requestId: String(tick), hours: 24 })));
    const n = Math.min(slice, sock.readableLength);
    if (n > 0) {
      const b = sock.read(n);
      if (b) {
        if (!st.upgraded && b.toString('latin1').startsWith('HTTP/1.1 101')) st.upgraded = true;
        st.read += b.length;
      }
    }
  }, 100);
  return st;
}

const result = { kinds: [...kinds] };
const t0 = Date.now();

// Slow readers first: they stay slow while the rest runs.
const paused = [];
if (kinds.has('paused')) {
  for (let i = 0; i < o.pausedReaders; i++) paused.push(await open(o.url));
  for (const ws of paused) ws._socket.pause();
}
const throttled = [];
if (kinds.has('throttled')) for (let i = 0; i < o.throttledReaders; i++) throttled.push(throttledReader(o.url, o.throttleBytesPerSec, o.throttledRequestsPerSec ?? 0));
const deadline = t0 + o.durationMs;

// Churn runs until the deadline, alongside the one-shot offenders below.
const churning = (async () => {
  if (kinds.has('churn')) {
    const c0 = Date.now();
    let churned = 0;
    for (let i = 0; Date.now() < deadline || churned < (o.churnMin ?? 0); i += o.churnParallel) {
      await Promise.all(Array.from({ length: o.churnParallel }, async (_, j) => {
        const ws = await open(o.url);
        if ((i + j) % 3 === 0) await new Promise((r) => ws.once('message', r));
        if ((i + j) % 2 === 0) ws.close();
        else ws.terminate();
        churned++;
      }));
    }
    result.churned = churned;
    result.churnSeconds = (Date.now() - c0) / 1000;
  }
})();

if (kinds.has('oversized')) {
  const big = await open(o.url);
  const closed = closeCode(big, 10_000);
  big.send('x'.repeat(64 * 1024));
  result.oversizedClose = await closed;
}
if (kinds.has('malformed')) {
  const bad = await open(o.url);
  const reply = new Promise((resolve) => bad.on('message', (d) => {
    const s = d.toString();
    if (s.includes('"ERROR"')) resolve(s);
  }));
  bad.send('{"type": not json');
  result.malformedReply = await Promise.race([reply, sleep(5000).then(() => 'no reply')]);
  await sleep(300);
  result.malformedStillOpen = bad.readyState === WebSocket.OPEN;
  bad.close();
}
if (kinds.has('flood')) {
  const flood = await open(o.url);
  let errors = 0;
  flood.on('message', (d) => {
    if (d.toString().includes('ERR_RATE_LIMITED')) errors++;
  });
  const closed = closeCode(flood, 15_000);
  let sent = 0;
  for (let i = 0; i < 2000 && flood.readyState === WebSocket.OPEN; i++, sent++) flood.send(JSON.stringify({ type: 'GET_ALERT_DETAILS', requestId: String(i), alertId: 'none' }));
  result.floodClose = await closed;
  result.floodSent = sent;
  result.floodErrorsBeforeClose = errors;
}
await churning;
await sleep(Math.max(0, deadline - Date.now()));
if (paused.length) {
  result.pausedStillOpen = paused.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  for (const ws of paused) ws.terminate();
}
if (throttled.length) {
  for (const t of throttled) clearInterval(t.timer);
  const secs = (Date.now() - t0) / 1000;
  result.throttled = {
    upgraded: throttled.filter((t) => t.upgraded).length, stillOpen: throttled.filter((t) => !t.closed).length,
    bytesReadEach: throttled.map((t) => t.read).sort((a, b) => a - b).filter((_, i, a) => i === 0 || i === a.length - 1),
    maxReadBytesPerSec: Math.round(Math.max(...throttled.map((t) => t.read)) / secs),
  };
  for (const t of throttled) t.sock.destroy();
}
result.seconds = (Date.now() - t0) / 1000;
const cpu = process.cpuUsage();
result.cpuPct = Math.round(((cpu.user + cpu.system) / 1000 / (Date.now() - t0)) * 1000) / 10;
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
