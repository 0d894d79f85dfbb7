// The packed package as a user installs it: `npm pack`, then in an empty
// directory `npm install meshfed-<v>.tgz --omit=dev`. The install must succeed
// without dev dependencies (the `prepare` script builds nothing there), hold
// no dev dependency, ship no tests or TypeScript sources, and its `meshfed`
// bin must run: --version, a hub started from the installed package with
// its flags in a config file (--config) that `meshfed version` reaches, and the
// demo (its fleet serving calls in all three clusters, then Ctrl-C: the summary,
// exit 0; each phase's behaviour is asserted by the e2e tests of that feature). Needs the npm registry or npm's
// cache (--prefer-offline): skipped, saying so, when npm cannot install.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { freePort } from '../../src/demo/processes.js';
import { eventually } from '../helpers/eventually.js';

const root = packageRoot();
let dir: string | undefined;
let hub: ChildProcess | undefined;
let demo: ChildProcess | undefined;

after(async () => {
  hub?.kill('SIGTERM');
  demo?.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

function run(cmd: string, args: string[], cwd: string, timeout = 180_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout, env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false' } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

test('npm pack, then npm install --omit=dev of the tarball: meshfed runs without dev dependencies', async (t) => {
  dir = await mkdtemp(join(tmpdir(), 'meshfed-package-'));
  // --ignore-scripts: this checkout is already built (the tests run from dist/); `prepare` would rebuild it under them.
  const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], root);
  assert.equal(pack.code, 0, pack.stderr);
  const packed = (JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[])[0]!;
  const paths = packed.files.map((f) => f.path);
  assert.ok(paths.includes('bin/meshfed.js') && paths.includes('dist/src/cli/main.js') && paths.includes('proto/meshfed/agent_channel.proto'), 'bin, dist/src and proto are packed');
  const extra = paths.filter((p) => p.startsWith('src/') || p.startsWith('test/') || p.startsWith('dist/test/') || p.startsWith('bench/') || p.startsWith('docs/'));
  assert.deepEqual(extra, [], 'no sources, tests, benchmarks or docs in the package');

  const app = join(dir, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), '{ "name": "app", "private": true }\n');
  const install = await run('npm', ['install', join(dir, packed.filename), '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], app);
  if (install.code !== 0 && /ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED|ENOTCACHED|network/i.test(install.stderr)) {
    t.skip(`npm could not reach the registry (offline?): ${install.stderr.split('\n').find((l) => /ERR/.test(l)) ?? install.stderr.slice(0, 200)}`);
    return;
  }
  assert.equal(install.code, 0, install.stderr);
  const modules = await readdir(join(app, 'node_modules'));
  for (const dev of ['typescript', 'eslint', 'prettier', 'dependency-cruiser', 'kubernetes-models']) assert.ok(!modules.includes(dev), `${dev} (a dev dependency) is not installed`);

  const bin = join(app, 'node_modules', '.bin', 'meshfed');
  const version = await run(bin, ['--version'], app, 20_000);
  assert.equal(version.code, 0, version.stderr);
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
  assert.equal(version.stdout.trim(), pkg.version);

  // A hub from the installed package, its flags in a config file (meshfed hub --config), and the installed client asking it.
  const [api, agents] = [await freePort(), await freePort()];
  const config = join(dir, 'hub.yaml');
  await writeFile(config, `data-dir: ${join(dir, 'hub')}\nlisten: 127.0.0.1:${api}\nagent-listen: 127.0.0.1:${agents}\ninsecure-api: true\n`);
  hub = spawn(bin, ['hub', '--config', config], { cwd: app, stdio: 'ignore' });
  const seen = await eventually(
    'the installed hub to answer meshfed version',
    async () => {
      const r = await run(bin, ['version', '--hub', `http://127.0.0.1:${api}`], app, 10_000);
      return /^hub:\s+\d+\.\d+\.\d+/m.test(r.stdout) ? r.stdout : undefined;
    },
    20_000,
    250,
  );
  assert.match(seen, new RegExp(`client: ${pkg.version.replace(/\./g, '\\.')}`));
});

test('the installed package runs the demo: three clusters serve calls, Ctrl-C prints the summary and exits 0', async (t) => {
  const bin = dir ? join(dir, 'app', 'node_modules', '.bin', 'meshfed') : '';
  if (!bin || !(await readdir(join(dir!, 'app', 'node_modules', '.bin')).catch(() => [] as string[])).includes('meshfed')) {
    t.skip('the package was not installed (see the test above)');
    return;
  }
  const proc = spawn(bin, ['demo'], { cwd: join(dir!, 'app'), stdio: ['ignore', 'pipe', 'pipe'] });
  demo = proc;
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  await eventually(
    'a demo tick with calls served by all three clusters',
    async () => (/\[all three clusters\]\s+\d+ calls: cluster1\/v1\s+\d+%[^\n]*cluster2\/v2\s+\d+%[^\n]*cluster3\/v3\s+\d+%/.test(out) ? true : undefined),
    60_000,
    250,
  ).catch((e: unknown) => {
    throw new Error(`${String(e)}\nstdout:\n${out.slice(-2000)}\nstderr:\n${err.slice(-2000)}`);
  });
  proc.kill('SIGINT');
  assert.equal(await exited, 0, err);
  assert.match(out, /\nsummary\n\s+calls ok: [1-9]\d*, failed: 0\n/);
});
