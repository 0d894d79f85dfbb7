// The Dockerfile's runtime stage without Docker (no daemon runs here): its COPY
// lines are replayed into a temporary directory (`--from=build` paths taken
// from this checkout's build), its `npm ci --omit=dev` runs
// there, and the result must run the meshfed bin: `version --client`,
// `install hub`, and loading the hub and agent modules. This proves the image
// needs no dev dependency at run time and that the COPY lines carry everything
// (dist/src, proto, bin). It needs the npm registry (or npm's cache): skipped,
// saying so, when npm cannot install (offline).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';

const root = packageRoot();
let dir: string | undefined;

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(cmd: string, args: string[], cwd: string, timeout = 180_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout, env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** The runtime stage's COPY lines as [from (in this checkout), to (relative to WORKDIR /app)]. */
async function runtimeCopies(): Promise<[string, string][]> {
  const text = await readFile(join(root, 'Dockerfile'), 'utf8');
  const stage = text.slice(text.indexOf('FROM node:20-slim'));
  const copies: [string, string][] = [];
  for (const m of stage.matchAll(/^COPY (--from=build )?(.+)$/gm)) {
    const parts = m[2]!.trim().split(/\s+/);
    const to = parts.pop()!;
    for (const from of parts) copies.push([m[1] ? from.replace(/^\/src\//, '') : from, to]);
  }
  return copies;
}

test('the image runtime stage (its COPY lines and production dependencies only) runs meshfed', async (t) => {
  const copies = await runtimeCopies();
  assert.ok(
    copies.some(([from]) => from === 'dist/src'),
    `the runtime stage copies the built dist/src: ${JSON.stringify(copies)}`,
  );
  assert.match(await readFile(join(root, 'Dockerfile'), 'utf8'), /RUN npm ci --omit=dev &&/);
  dir = await mkdtemp(join(tmpdir(), 'meshfed-image-'));
  for (const [from, to] of copies) {
    // `COPY a b ./` puts files in ./; `COPY dir ./dir` copies the directory to that name.
    const target = to === './' ? join(dir, from.split('/').pop()!) : join(dir, to);
    await cp(join(root, from), target, { recursive: true });
  }
  const ci = await run('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], dir);
  if (ci.code !== 0 && /ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED|network/i.test(ci.stderr)) {
    t.skip(`npm could not reach the registry (offline?): ${ci.stderr.split('\n').find((l) => /ERR/.test(l)) ?? ci.stderr.slice(0, 200)}`);
    return;
  }
  assert.equal(ci.code, 0, ci.stderr);
  await assert.rejects(readFile(join(dir, 'node_modules', 'typescript', 'package.json')), 'no dev dependency in the image');
  const version = await run(process.execPath, ['bin/meshfed.js', 'version', '--client'], dir, 20_000);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /client: \d+\.\d+\.\d+/);
  const install = await run(process.execPath, ['bin/meshfed.js', 'install', 'hub'], dir, 20_000);
  assert.equal(install.code, 0, install.stderr);
  assert.match(install.stdout, /kind: Deployment/);
  // The servers' modules (loaded lazily by `meshfed hub` and `meshfed agent`) resolve every import.
  const load = await run(process.execPath, ['--input-type=module', '-e', "await import('./dist/src/hub/hub.js'); await import('./dist/src/agent/agent.js'); console.log('loaded')"], dir, 20_000);
  assert.equal(load.code, 0, load.stderr);
  assert.equal(load.stdout.trim(), 'loaded');
});
