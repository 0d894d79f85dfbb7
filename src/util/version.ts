// The meshfed release: the version in the package's package.json, read once.
// One source for `meshfed --version`, `meshfed version` and the hub's /healthz,
// so the client and the hub cannot report different numbers for one build.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './paths.js';

let cached: string | undefined;

export function meshfedVersion(): string {
  if (cached) return cached;
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown };
  cached = typeof pkg.version === 'string' ? pkg.version : 'unknown';
  return cached;
}
