import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import WebSocket from 'ws';
import { Engine, EmbeddedSource, MemorySink, ReferenceStore } from '../../engine/index.js';
import { DashboardServer } from '../../server/server.js';
import { AccessPolicy, RateLimiter } from '../../server/security.js';
import { TEST_GENERATOR, tempDir } from '../engine/harness.js';

const TOKEN = 'test-token-0123456789abcdef';
let engine: Engine;
let server: DashboardServer;
let dir: string;

beforeAll(async () => {
  dir = tempDir('security');
  const source = new EmbeddedSource({ partitions: 4, rate: 10_000, totalEvents: 5_000, generator: TEST_GENERATOR, eventsPerMessage: 200 });
  const ref = ReferenceStore.open(dir);
  await source.bootstrap(ref);
  await ref.close();
  engine = await Engine.start({ dataDir: dir, partitions: 4, shards: 2, workers: 1, commitIntervalMs: 200 }, source, new MemorySink());
  server = await DashboardServer.start(engine, {
    port: 0, tickMs: 100, accessToken: TOKEN, allowedOrigins: ['https://dash.example.com'],
    clientMessagesPerSec: 5, clientMessageBurst: 10, maxClientMessageBytes: 1024,
  });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await engine?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Opens /dashboard-ws; resolves with the first message, or rejects with the HTTP status of a refused upgrade. */
function connect(query: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; first: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/dashboard-ws${query}`, { headers });
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode })));
    ws.once('message', (d) => resolve({ ws, first: JSON.parse(d.toString()) }));
    ws.once('error', reject);
  });
}

describe('access policy', () => {
  it('refuses a non-loopback address without a token, and a weak token', () => {
    expect(() => new AccessPolicy({ host: '0.0.0.0', allowedOrigins: [] })).toThrow(expect.objectContaining({ code: 'ERR_TOKEN_REQUIRED' }));
    expect(() => new AccessPolicy({ host: '127.0.0.1', accessToken: 'short', allowedOrigins: [] })).toThrow(expect.objectContaining({ code: 'ERR_WEAK_TOKEN' }));
    expect(() => new AccessPolicy({ host: '0.0.0.0', accessToken: TOKEN, allowedOrigins: [] })).not.toThrow();
    expect(() => new AccessPolicy({ host: '127.0.0.1', allowedOrigins: [] })).not.toThrow();
  });

  it('accepts the token as a bearer header, x-access-token or access_token query, and nothing else', () => {
    const p = new AccessPolicy({ host: '127.0.0.1', accessToken: TOKEN, allowedOrigins: [] });
    expect(p.authorized(`Bearer ${TOKEN}`, '', undefined)).toBe(true);
    expect(p.authorized('', TOKEN, undefined)).toBe(true);
    expect(p.authorized('', '', `access_token=${TOKEN}`)).toBe(true);
    expect(p.authorized('', '', undefined)).toBe(false);
    expect(p.authorized(`Bearer ${TOKEN}x`, '', undefined)).toBe(false);
    expect(p.authorized('Bearer ', '', `access_token=${TOKEN.slice(1)}`)).toBe(false);
  });

  it('same-origin by default: the Origin host must equal the Host header', () => {
    const p = new AccessPolicy({ host: '127.0.0.1', allowedOrigins: [] });
    expect(p.originAllowed('http://127.0.0.1:8080', '127.0.0.1:8080')).toBe(true);
    expect(p.originAllowed('https://evil.example', '127.0.0.1:8080')).toBe(false);
    expect(p.originAllowed('', '127.0.0.1:8080')).toBe(true);
    expect(new AccessPolicy({ host: '127.0.0.1', allowedOrigins: ['*'] }).originAllowed('https://any.example', 'x')).toBe(true);
  });

  it('without a token only loopback Host names pass; with one any name does', () => {
    const open = new AccessPolicy({ host: '127.0.0.1', allowedOrigins: [] });
    expect(open.hostAllowed('127.0.0.1:8080')).toBe(true);
    expect(open.hostAllowed('localhost')).toBe(true);
    expect(open.hostAllowed('[::1]:8080')).toBe(true);
    expect(open.hostAllowed('evil.example:8080')).toBe(false);
    expect(open.hostAllowed('127.0.0.1.evil.example')).toBe(false);
    expect(new AccessPolicy({ host: '0.0.0.0', accessToken: TOKEN, allowedOrigins: [] }).hostAllowed('dash.example.com')).toBe(true);
  });

  it('rate limiter: violations are forgiven once the bucket has refilled', () => {
    const r = new RateLimiter(10, 2, 0);
    r.take(0);
    r.take(0);
    expect(r.take(0)).toBe(false);
    expect(r.violations).toBe(1);
    r.take(1000); // a second later the bucket is full again
    expect(r.violations).toBe(0);
  });

  it('rate limiter: bursts, then the sustained rate', () => {
    const r = new RateLimiter(10, 5, 0);
    let ok = 0;
    for (let i = 0; i < 20; i++) if (r.take(0)) ok++;
    expect(ok).toBe(5);
    expect(r.take(100)).toBe(true); // 100 ms at 10/s refills one token
    expect(r.take(100)).toBe(false);
  });

  it('the CLI refuses to start on a public address without a token (exit 2, no token in the output)', () => {
    const r = spawnSync(process.execPath, ['dist/engine/main.js', '--host', '0.0.0.0', '--data-dir', dir + '/cli'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stdout + r.stderr).toContain('ERR_TOKEN_REQUIRED');
    const weak = spawnSync(process.execPath, ['dist/engine/main.js', '--access-token', 'hunter2', '--data-dir', dir + '/cli'], { encoding: 'utf8', timeout: 30_000 });
    expect(weak.status).toBe(2);
    expect(weak.stdout + weak.stderr).not.toContain('hunter2');
  });
});

describe('tokens never appear in logs', () => {
  // The token given as a flag or in the environment; asked over REST, /metrics and the WebSocket upgrade.
  it.each(['flag', 'environment'])('the engine process, given the token as %s and asked with right, wrong and forged ones, never prints it', async (how) => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['dist/engine/main.js', '--data-dir', `${dir}/logs-${how}`, '--port', '0', '--rate', '20000', '--status-interval-ms', '300', ...(how === 'flag' ? ['--access-token', TOKEN] : [])],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RTA_ACCESS_TOKEN: how === 'flag' ? '' : TOKEN } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    try {
      const deadline = Date.now() + 30_000;
      let base: string | undefined;
      while (!(base = /Dashboard API: (http:\/\/[\d.]+:\d+)/.exec(out)?.[1]) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(base).toBeDefined();
      const bodies: string[] = [];
      for (const auth of [`Bearer ${TOKEN}`, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, 'Bearer ', `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`]) {
        bodies.push(await (await fetch(`${base}/api/dashboard/health`, { headers: { authorization: auth } })).text());
        bodies.push(await (await fetch(`${base}/metrics?access_token=${encodeURIComponent(TOKEN)}`)).text());
        bodies.push(await (await fetch(`${base}/api/dashboard/users/%zz?access_token=${encodeURIComponent(TOKEN)}`)).text()); // an error answer
      }
      const wsBase = base!.replace('http:', 'ws:') + '/dashboard-ws';
      for (const q of [`?access_token=${TOKEN}`, `?access_token=${TOKEN}x`, `?access_token=${TOKEN.slice(0, -1)}`]) {
        await new Promise<void>((resolve) => {
          const ws = new WebSocket(wsBase + q);
          ws.once('message', (d) => {
            bodies.push(d.toString());
            ws.close();
            resolve();
          });
          ws.once('unexpected-response', (_req, res) => {
            res.resume();
            resolve();
          });
          ws.once('error', () => resolve());
        });
      }
      expect(bodies.some((b) => b.includes('"SNAPSHOT"'))).toBe(true); // the right token was accepted
      for (const b of bodies) expect(b).not.toContain(TOKEN.slice(0, 12)); // nor is it echoed in any answer
      await new Promise((r) => setTimeout(r, 700)); // a few progress lines
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out.length).toBeGreaterThan(200);
      expect(out).not.toContain(TOKEN);
      expect(out).not.toContain(TOKEN.slice(0, 12));
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);
});

describe('server with an access token', () => {
  it('REST: 401 without the token, 200 with it; liveness stays open for probes', async () => {
    const url = `${server.url}/api/dashboard/metrics/active-users`;
    const no = await fetch(url);
    expect(no.status).toBe(401);
    expect(no.headers.get('www-authenticate')).toBe('Bearer');
    expect(((await no.json()) as { error: string }).error).toBe('ERR_UNAUTHORIZED');
    expect((await fetch(url, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${server.url}/api/dashboard/alerts/x/ack`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${server.url}/livez`)).status).toBe(200);
  });

  it('/internal/* routes (instance to instance): 401 without the token, 403 from a browser (any Origin), and /internal/alert-status is not served by one instance', async () => {
    const body = JSON.stringify({ alertId: 'LOW_REVENUE:global:0', partition: 0, status: 'ACKNOWLEDGED' });
    const post = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
    for (const path of ['/internal/scan', '/internal/alert-status']) {
      expect((await post(path)).status, path).toBe(401);
      expect((await post(path, { authorization: 'Bearer wrong-token-0123456789' })).status, path).toBe(401);
      expect((await post(`${path}?access_token=${TOKEN.slice(1)}`)).status, path).toBe(401);
      const browser = await post(path, { authorization: `Bearer ${TOKEN}`, origin: 'https://dash.example.com' });
      expect(browser.status, path).toBe(403);
      expect(((await browser.json()) as { error: string }).error).toBe('ERR_ORIGIN');
    }
    // Without --changelog, statuses live in the instance's alert store: nothing is forwarded here.
    const single = await post('/internal/alert-status', { authorization: `Bearer ${TOKEN}` });
    expect(single.status).toBe(404);
    expect(((await single.json()) as { error: string }).error).toBe('ERR_NOT_FOUND');
  });

  it('WebSocket: the upgrade needs the token and an allowed Origin', async () => {
    await expect(connect('')).rejects.toMatchObject({ status: 401 });
    // Wrong, truncated and forged (Basic, a token with a suffix) tokens are refused before the socket opens.
    await expect(connect('?access_token=wrong-token-0123456789', { origin: 'https://dash.example.com' })).rejects.toMatchObject({ status: 401 });
    await expect(connect(`?access_token=${TOKEN.slice(0, -1)}`, { origin: 'https://dash.example.com' })).rejects.toMatchObject({ status: 401 });
    await expect(connect(`?access_token=${TOKEN}x`, { origin: 'https://dash.example.com' })).rejects.toMatchObject({ status: 401 });
    await expect(connect('', { origin: 'https://dash.example.com', authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` })).rejects.toMatchObject({ status: 401 });
    await expect(connect(`?access_token=${TOKEN}`, { origin: 'https://evil.example' })).rejects.toMatchObject({ status: 403 });
    const ok = await connect(`?access_token=${TOKEN}`, { origin: 'https://dash.example.com' });
    expect(ok.first.type).toBe('SNAPSHOT');
    ok.ws.close();
  });

  it('a client flooding messages is rate limited with an ERROR, then closed with 1008', async () => {
    const { ws } = await connect(`?access_token=${TOKEN}`);
    const got: any[] = [];
    ws.on('message', (d) => got.push(JSON.parse(d.toString())));
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    for (let i = 0; i < 20; i++) ws.send(JSON.stringify({ type: 'GET_ALERT_DETAILS', requestId: i, alertId: 'none' }));
    const deadline = Date.now() + 10_000;
    while (got.filter((m) => m.type === 'ERROR').length < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const limited = got.filter((m) => m.code === 'ERR_RATE_LIMITED').length;
    const answered = got.filter((m) => m.code === 'ERR_NOT_FOUND').length;
    expect(answered).toBeGreaterThanOrEqual(10);
    expect(answered).toBeLessThanOrEqual(12);
    expect(limited).toBe(20 - answered);
    for (let i = 0; i < 80; i++) ws.send('{}');
    expect(await closed).toBe(1008);
  });

  it('an oversized client frame closes that connection (1009); other clients are unaffected', async () => {
    const a = await connect(`?access_token=${TOKEN}`);
    const b = await connect(`?access_token=${TOKEN}`);
    const closed = new Promise<number>((r) => a.ws.once('close', (code) => r(code)));
    a.ws.send('x'.repeat(4096));
    expect(await closed).toBe(1009);
    // far past the limit, uWS drops the connection without a close frame (1006)
    const c = await connect(`?access_token=${TOKEN}`);
    const dropped = new Promise<number>((r) => c.ws.once('close', (code) => r(code)));
    c.ws.send('x'.repeat(1024 * 1024));
    expect([1006, 1009]).toContain(await dropped);
    const answer = new Promise<any>((r) => b.ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.requestId === 'still-here') r(m);
    }));
    b.ws.send(JSON.stringify({ type: 'SUBSCRIBE_METRIC', requestId: 'still-here', metric: 'revenue' }));
    expect((await answer).type).toBe('RESPONSE');
    b.ws.close();
  });

  it('a client that aborts mid-request does not crash the server', async () => {
    for (const path of ['/api/dashboard/alerts/a1/ack', '/metrics', '/api/dashboard/health']) {
      await new Promise<void>((resolve) => {
        const sock = net.connect(server.port, '127.0.0.1', () => {
          sock.write(`${path.includes('ack') ? 'POST' : 'GET'} ${path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\n\r\n`);
          sock.destroy();
          resolve();
        });
      });
    }
    await new Promise((r) => setTimeout(r, 200));
    expect((await fetch(`${server.url}/livez`)).status).toBe(200);
  });
});
