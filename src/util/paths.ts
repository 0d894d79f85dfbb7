// Locates files shipped with the package (protos) from compiled code in dist/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The package root: the nearest ancestor of this file holding package.json. */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the meshfed package root');
    dir = up;
  }
  root = dir;
  return dir;
}

export function protoDir(): string {
  return join(packageRoot(), 'proto');
}
