import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { Engine, EmbeddedSource, MemorySink, ReferenceStore } from '../../engine/index.js';
import { DashboardServer } from '../../server/server.js';
import { TEST_GENERATOR, tempDir } from '../engine/harness.js';

// A stand-in build of the UI (the real one is tested in test/ui): what matters here is how the
// server serves files, whatever they contain.
const INDEX = '<!doctype html><html><head><script type="module" src="/assets/index-abc123.js"></script></head><body><div id="app"></div></body></html>';
const SCRIPT = `export const dashboard = ${JSON.stringify('x'.repeat(4000))};`;
let engine: Engine;
let server: DashboardServer;
let dir: string;

beforeAll(async () => {
  dir = tempDir('static');
  const ui = path.join(dir, 'ui');
  fs.mkdirSync(path.join(ui, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(ui, 'index.html'), INDEX);
  fs.writeFileSync(path.join(ui, 'assets', 'index-abc123.js'), SCRIPT);
  fs.writeFileSync(path.join(ui, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  const source = new EmbeddedSource({ partitions: 2, rate: 10_000, totalEvents: 1000, generator: TEST_GENERATOR, eventsPerMessage: 100 });
  const ref = ReferenceStore.open(dir);
  await source.bootstrap(ref);
  await ref.close();
  engine = await Engine.start({ dataDir: dir, partitions: 2, shards: 1, workers: 1, commitIntervalMs: 200 }, source, new MemorySink());
  server = await DashboardServer.start(engine, { port: 0, uiDir: ui });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await engine?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function raw(p: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
  // fetch would decompress for us; undici's request with identity decoding is simpler via node:http
  const http = await import('node:http');
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.port, path: p, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: new Headers(res.headers as Record<string, string>), body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

describe('without an access token (loopback)', () => {
  it('answers only requests addressed to a loopback name (DNS rebinding)', async () => {
    expect((await raw('/api/dashboard/health', { host: 'evil.example:8080' })).status).toBe(403);
    expect((await raw('/api/dashboard/health', { host: `localhost:${server.port}` })).status).toBe(200);
    expect((await raw('/api/dashboard/health', { host: `[::1]:${server.port}` })).status).toBe(200);
  });

  it('refuses alert changes from another site\'s page (cross-site form POST)', async () => {
    const post = (headers: Record<string, string>) => new Promise<number>((resolve, reject) => {
      import('node:http').then((http) => {
        const r = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/api/dashboard/alerts/LOW_REVENUE:global:0/ack', headers }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        r.on('error', reject);
        r.end();
      }, reject);
    });
    expect(await post({ origin: 'https://evil.example' })).toBe(403);
    expect(await post({ origin: `http://127.0.0.1:${server.port}` })).toBe(404); // allowed; that alert does not exist
  });
});

describe('serving the built UI', () => {
  it('index.html at /, revalidated every time; client routes fall back to it', async () => {
    const r = await raw('/');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.headers.get('cache-control')).toBe('no-cache');
    expect(r.body.toString()).toBe(INDEX);
    const route = await raw('/users/user-1');
    expect(route.status).toBe(200);
    expect(route.body.toString()).toBe(INDEX);
  });

  it('hashed assets: immutable for a year, brotli or gzip by Accept-Encoding, identity otherwise', async () => {
    const br = await raw('/assets/index-abc123.js', { 'accept-encoding': 'gzip, deflate, br' });
    expect(br.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(br.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(br.headers.get('content-encoding')).toBe('br');
    expect(br.body.length).toBeLessThan(SCRIPT.length / 10);
    expect(brotliDecompressSync(br.body).toString()).toBe(SCRIPT);
    const gz = await raw('/assets/index-abc123.js', { 'accept-encoding': 'gzip' });
    expect(gz.headers.get('content-encoding')).toBe('gzip');
    expect(gunzipSync(gz.body).toString()).toBe(SCRIPT);
    const plain = await raw('/assets/index-abc123.js');
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(plain.body.toString()).toBe(SCRIPT);
  });

  it('ETag revalidation answers 304; unknown files are 404 JSON; the API is not shadowed', async () => {
    const first = await raw('/favicon.svg');
    expect(first.headers.get('content-type')).toBe('image/svg+xml');
    const again = await raw('/favicon.svg', { 'if-none-match': first.headers.get('etag')! });
    expect(again.status).toBe(304);
    const missing = await raw('/assets/nope.js');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body.toString()).error).toBe('ERR_NOT_FOUND');
    const api = await raw('/api/dashboard/nope');
    expect(api.status).toBe(404);
    expect(api.headers.get('content-type')).toBe('application/json');
  });
});
