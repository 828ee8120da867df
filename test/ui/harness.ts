/**
 * Shared by the dashboard's end-to-end test and the screenshot script: the engine as a child
 * process (what `npm start` runs) on the embedded source, and Debian's headless chromium driven
 * by playwright-core (a test tool's own browser download does not work here).
 */
import { execSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Installs Debian's chromium when it is missing (CI runs as root), rather than skipping the test. */
export function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  execSync('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium', { stdio: 'inherit', timeout: 15 * 60_000 });
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is still missing after apt-get install chromium`);
}

export function launchBrowser(): Promise<Browser> {
  ensureChromium();
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** A port that was free a moment ago (the engine must restart on the same one). */
export { freePort } from '../../bench/child.js';

export function tempDataDir(name: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `rta-ui-${name}-`));
}

/**
 * Fast-moving data for a browser to watch: 30 s of event time per wall second, few users, so
 * windows fill and alerts appear within seconds.
 */
export const LIVELY = ['--rate', '3000', '--time-scale', '30', '--users', '2000', '--workers', '1', '--commit-interval-ms', '250', '--tick-ms', '250', '--status-interval-ms', '60000'];

export interface EngineProcess {
  child: ChildProcess;
  /** http://127.0.0.1:port/ of the dashboard, once it listens. */
  url: Promise<string>;
  exit: Promise<number | null>;
  output: () => string;
  /** SIGTERM, then SIGKILL if it has not exited within timeoutMs. */
  stop: (timeoutMs?: number) => Promise<number | null>;
}

export function startEngine(opts: { port: number; dataDir: string; args?: string[] }): EngineProcess {
  const main = path.resolve('dist/engine/main.js');
  const child = spawn(process.execPath, [main, '--source', 'embedded', '--host', '127.0.0.1', '--port', String(opts.port), '--data-dir', opts.dataDir, ...(opts.args ?? LIVELY)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = new Promise<string>((resolve, reject) => {
    const t = setInterval(() => {
      const m = /Dashboard:\s+(http:\/\/[\d.]+:\d+\/)/.exec(out);
      if (m) {
        clearInterval(t);
        resolve(m[1]);
      } else if (/Dashboard:\s+not built/.test(out)) {
        clearInterval(t);
        reject(new Error('the engine started without ui/dist: run npm run build:ui first'));
      }
    }, 25);
    void exit.then((code) => {
      clearInterval(t);
      reject(new Error(`the engine exited (${code}) before listening:\n${out.slice(-2000)}`));
    });
  });
  url.catch(() => {});
  const stop = async (timeoutMs = 30_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await exit;
    clearTimeout(timer);
    return code;
  };
  return { child, url, exit, output: () => out, stop };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
