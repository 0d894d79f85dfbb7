// The `prepare` script: compile TypeScript when this is a source checkout with
// the dev dependencies (a git clone's `npm install`), and do nothing otherwise.
// A production install (`npm ci --omit=dev`, or `npm install meshfed-*.tgz`)
// has no typescript and, from the packed package, no src/ to compile: it must
// not fail with "tsc: not found". The packed package already holds dist/src.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
let tsc;
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  tsc = undefined;
}
if (!existsSync(join(root, 'tsconfig.json')) || !existsSync(join(root, 'src'))) {
  process.stderr.write('meshfed prepare: no sources here (a packed package ships dist/src); nothing to build\n');
} else if (!tsc) {
  process.stderr.write('meshfed prepare: typescript is not installed (--omit=dev); not building. Run `npm install` with dev dependencies, then `npm run build`\n');
} else {
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit', cwd: root });
}
