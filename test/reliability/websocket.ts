/**
 * Scenario 10: abusive WebSocket clients against the engine's server (a child process on the
 * embedded source), while one well-behaved client watches its deltas. Sizes are parameters: the
 * quick test and the soak run share this code.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import WebSocket from 'ws';
import { percentile, rssOf, sleep, tempDir } from './harness.js';

export interface WsAbuseOptions {
  churn: number;
  /** Connections opened at once during the churn. */
  churnParallel: number;
  slowReaders: number;
  /** How long the slow readers stay paused (their socket not read at all). */
  slowMs: number;
}

export interface WsAbuseResult {
  rssBeforeMb: number;
  rssAfterChurnMb: number;
  rssPeakMb: number;
  rssEndMb: number;
  churned: number;
  churnSeconds: number;
  clientsAfterChurn: number;
  oversizedClose: number;
  floodClose: number;
  floodErrorsBeforeClose: number;
  malformedReply: string;
  malformedStillOpen: boolean;
  slowResynced: number;
  slowSkippedDeltas: number;
  /** The watcher's delta inter-arrival times (ms), in the clean phase and during the abuse. */
  watcher: { cleanDeltas: number; cleanGapP99Ms: number; abuseDeltas: number; abuseGapP99Ms: number; maxGapMs: number; cleanDeliveryP99Ms: number; abuseDeliveryP99Ms: number };
  slowStillOpen: number;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function closeCode(ws: WebSocket, ms: number): Promise<number> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(-1), ms);
    ws.once('close', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

export async function websocketAbuse(o: WsAbuseOptions, log: (s: string) => void = () => undefined): Promise<WsAbuseResult> {
  const dir = tempDir('ws');
  const child = spawn(process.execPath, [path.resolve('dist/engine/main.js'), '--source', 'embedded', '--rate', '3000', '--users', '5000', '--port', '0', '--data-dir', path.join(dir, 'state'),
    '--workers', '1', '--tick-ms', '100', '--status-interval-ms', '60000'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const samples: number[] = [];
  const sampler = setInterval(() => {
    try {
      samples.push(rssOf(child.pid!));
    } catch { /* exited */ }
  }, 200);
  try {
    const base = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (d) => {
        buf += d;
        const m = /"url":"(http:[^"]+)"/.exec(buf);
        if (m) resolve(m[1]);
      });
      child.on('exit', (c) => reject(new Error(`engine exited ${c}: ${buf.slice(-2000)}`)));
    });
    const wsUrl = base.replace('http:', 'ws:') + '/dashboard-ws';
    const metrics = async () => (await fetch(`${base}/metrics`)).text();

    // The watcher: a well-behaved client; inter-arrival time of its deltas per phase.
    const watcher = await open(wsUrl);
    let phase: 'clean' | 'abuse' | 'done' = 'clean';
    const gaps = { clean: [] as number[], abuse: [] as number[] };
    const lags = { clean: [] as number[], abuse: [] as number[] };
    let lastDelta = 0;
    watcher.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type !== 'DELTA') return;
      const now = Date.now();
      if (phase !== 'done') {
        if (lastDelta) gaps[phase].push(now - lastDelta);
        lags[phase].push(now - m.sentAt);
      }
      lastDelta = now;
    });
    await sleep(5000);
    const rssBefore = rssOf(child.pid!);
    phase = 'abuse';

    // Churn: connect, sometimes wait for the snapshot, disconnect (half close cleanly, half drop the TCP connection).
    const t0 = Date.now();
    let churned = 0;
    for (let i = 0; i < o.churn; i += o.churnParallel) {
      await Promise.all(Array.from({ length: Math.min(o.churnParallel, o.churn - i) }, async (_, j) => {
        const ws = await open(wsUrl);
        if ((i + j) % 3 === 0) await new Promise((r) => ws.once('message', r));
        if ((i + j) % 2 === 0) ws.close();
        else ws.terminate();
        churned++;
      }));
    }
    const churnSeconds = (Date.now() - t0) / 1000;
    await sleep(1000);
    const clientsAfterChurn = metric(await metrics(), 'rta_server_websocket_clients');
    const rssAfterChurn = rssOf(child.pid!);
    log(`churn: ${churned} connections in ${churnSeconds.toFixed(1)} s; ${clientsAfterChurn} clients left; RSS ${Math.round(rssBefore / 1e6)} -> ${Math.round(rssAfterChurn / 1e6)} MB`);

    // Slow readers: their sockets are not read at all for slowMs, then resume.
    const skippedBefore = metric(await metrics(), 'rta_server_websocket_deltas_coalesced_total');
    const slow = await Promise.all(Array.from({ length: o.slowReaders }, () => open(wsUrl)));
    const resynced = slow.map((ws) => new Promise<boolean>((resolve) => {
      let snapshots = 0;
      ws.on('message', (d) => {
        if (d.toString().startsWith('{"type":"SNAPSHOT"') && ++snapshots === 2) resolve(true);
      });
      setTimeout(() => resolve(false), o.slowMs + 5_000);
    }));
    for (const ws of slow) (ws as unknown as { _socket: { pause(): void } })._socket.pause();

    // Meanwhile: an oversized frame (1009), malformed JSON (an ERROR, the connection stays), a flood (1008).
    const big = await open(wsUrl);
    const bigClosed = closeCode(big, 10_000);
    big.send('x'.repeat(64 * 1024));
    const oversizedClose = await bigClosed;
    const bad = await open(wsUrl);
    const reply = new Promise<string>((resolve) => bad.on('message', (d) => {
      const s = d.toString();
      if (s.includes('"ERROR"')) resolve(s);
    }));
    bad.send('{"type": not json');
    const malformedReply = await Promise.race([reply, sleep(5000).then(() => 'no reply')]);
    await sleep(300);
    const malformedStillOpen = bad.readyState === WebSocket.OPEN;
    bad.close();
    const flood = await open(wsUrl);
    let floodErrors = 0;
    flood.on('message', (d) => {
      if (d.toString().includes('ERR_RATE_LIMITED')) floodErrors++;
    });
    const floodClosed = closeCode(flood, 15_000);
    for (let i = 0; i < 2000 && flood.readyState === WebSocket.OPEN; i++) flood.send(JSON.stringify({ type: 'GET_ALERT_DETAILS', requestId: String(i), alertId: 'none' }));
    const floodClose = await floodClosed;

    await sleep(Math.max(0, o.slowMs - 2000));
    const rssPeak = Math.max(...samples);
    const skippedDuring = metric(await metrics(), 'rta_server_websocket_deltas_coalesced_total') - skippedBefore;
    for (const ws of slow) (ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const slowStillOpen = slow.filter((ws) => ws.readyState === WebSocket.OPEN).length;
    const slowResynced = (await Promise.all(resynced)).filter(Boolean).length;
    for (const ws of slow) ws.terminate();
    phase = 'done';
    const rssEnd = rssOf(child.pid!);
    watcher.close();
    const mb = (b: number) => Math.round(b / 1e5) / 10;
    return {
      rssBeforeMb: mb(rssBefore), rssAfterChurnMb: mb(rssAfterChurn), rssPeakMb: mb(rssPeak), rssEndMb: mb(rssEnd), churned, churnSeconds, clientsAfterChurn,
      oversizedClose, floodClose, floodErrorsBeforeClose: floodErrors, malformedReply, malformedStillOpen, slowResynced, slowSkippedDeltas: skippedDuring, slowStillOpen,
      watcher: {
        cleanDeltas: gaps.clean.length, cleanGapP99Ms: percentile(gaps.clean, 99), abuseDeltas: gaps.abuse.length, abuseGapP99Ms: percentile(gaps.abuse, 99),
        maxGapMs: Math.max(...gaps.abuse), cleanDeliveryP99Ms: percentile(lags.clean, 99), abuseDeliveryP99Ms: percentile(lags.abuse, 99),
      },
    };
  } finally {
    clearInterval(sampler);
    child.kill('SIGKILL');
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
