import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A compiled file of this project (under dist/), found from the calling module's URL whether that
 * module runs compiled (dist/...) or from source (vitest): worker threads always run compiled JS.
 */
export function builtFile(fromUrl: string, ...rel: string[]): string {
  const here = path.dirname(fileURLToPath(fromUrl));
  const marker = `${path.sep}dist${path.sep}`;
  let root = here.includes(marker) ? here.slice(0, here.lastIndexOf(marker)) : here;
  while (!here.includes(marker) && !fs.existsSync(path.join(root, 'package.json')) && path.dirname(root) !== root) root = path.dirname(root);
  return path.join(root, 'dist', ...rel);
}
