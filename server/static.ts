import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';
import type uWS from 'uWebSockets.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.svg', '.txt', '.map']);

interface Asset {
  type: string;
  cacheControl: string;
  raw: Buffer;
  gzip: Buffer | null;
  br: Buffer | null;
  etag: string;
}

/**
 * The built dashboard (ui/dist), read once into memory and compressed once (brotli and gzip):
 * the files are small and immutable while the process runs, so serving them is a map lookup.
 * Vite puts content-hashed files under assets/: those are cached for a year; index.html is
 * revalidated every time so a new build reaches browsers at once.
 */
export class StaticAssets {
  private readonly files = new Map<string, Asset>();

  constructor(readonly root: string) {
    if (existsSync(root)) this.load(root);
  }

  get available(): boolean {
    return this.files.has('/index.html');
  }

  /** Total bytes a browser downloads for the page, gzipped, and the file list (for the README's size claim). */
  sizes(): { path: string; raw: number; gzip: number }[] {
    return [...this.files].map(([path, a]) => ({ path, raw: a.raw.length, gzip: (a.gzip ?? a.raw).length }));
  }

  private load(dir: string): void {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) {
        this.load(full);
        continue;
      }
      const path = '/' + relative(this.root, full).split(sep).join('/');
      const ext = extname(name);
      const raw = readFileSync(full);
      const compress = COMPRESSIBLE.has(ext) && raw.length > 512;
      this.files.set(path, {
        type: TYPES[ext] ?? 'application/octet-stream',
        cacheControl: path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
        raw,
        gzip: compress ? gzipSync(raw, { level: 9 }) : null,
        br: compress ? brotliCompressSync(raw, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11 } }) : null,
        etag: `"${raw.length.toString(36)}-${fnv1a(raw)}"`,
      });
    }
  }

  /**
   * Answers GET for a file, or index.html for a client-side route (a path without an extension),
   * so a drill-down URL such as /users/user-1 can be reloaded. Returns false when nothing matches.
   */
  serve(res: uWS.HttpResponse, req: uWS.HttpRequest): boolean {
    let path = req.getUrl();
    if (path === '/' || (!extname(path) && !path.startsWith('/api/'))) path = '/index.html';
    const asset = this.files.get(path);
    if (!asset) return false;
    const accept = req.getHeader('accept-encoding');
    const ifNoneMatch = req.getHeader('if-none-match');
    const etag = asset.etag;
    res.cork(() => {
      if (ifNoneMatch === etag) {
        res.writeStatus('304 Not Modified').writeHeader('etag', etag).writeHeader('cache-control', asset.cacheControl).end();
        return;
      }
      res.writeStatus('200 OK').writeHeader('content-type', asset.type).writeHeader('cache-control', asset.cacheControl).writeHeader('etag', etag).writeHeader('vary', 'accept-encoding');
      if (asset.br && /\bbr\b/.test(accept)) res.writeHeader('content-encoding', 'br').end(asset.br);
      else if (asset.gzip && /\bgzip\b/.test(accept)) res.writeHeader('content-encoding', 'gzip').end(asset.gzip);
      else res.end(asset.raw);
    });
    return true;
  }
}

function fnv1a(b: Buffer): string {
  let x = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) x = Math.imul(x ^ b[i]!, 0x01000193);
  return (x >>> 0).toString(36);
}
