// The README's "Try it by hand" commands, as written: the shell block after
// `<!-- walkthrough -->` and the clean-up block after `<!-- walkthrough-cleanup -->`
// are taken from README.md (so the two cannot drift) and run with bash from the
// checkout, as the README says, with TMPDIR set to a fresh directory of this
// test (the walkthrough works in `mktemp -d`). The client in cluster1 must get
// its answers from cluster2's server over mTLS and exit 0; after the clean-up
// no process the walkthrough started may be left: every process it starts
// inherits a marker variable, found in /proc/<pid>/environ (Linux).
//
// The README uses fixed ports (a newcomer's commands cannot pick free ones):
// nothing else in test/ binds them; the test fails first, naming the port, if
// one is taken. Bounded: the script is killed after SCRIPT_TIMEOUT_MS; it takes
// about 30 s on a busy 2-core machine, most of it the CLI's start-up, twenty-odd
// times. The second test: the sample commands refuse a missing or client-only
// bootstrap in one line.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';

const root = packageRoot();
const SCRIPT_TIMEOUT_MS = 100_000;
/** The ports the README names: hub API and agent channel, two agents' xDS and API, the sample server. */
const README_PORTS = [7400, 7401, 15010, 15011, 15020, 15021, 15050];
const marker = `meshfed-walkthrough-${randomUUID()}`;
let tmp: string | undefined;

/** The first ```sh block after `<!-- name -->` in README.md. */
function readmeBlock(readme: string, name: string): string {
  const at = readme.indexOf(`<!-- ${name} -->`);
  assert.ok(at >= 0, `README.md has no <!-- ${name} --> marker`);
  const m = /```sh\n([\s\S]*?)\n```/.exec(readme.slice(at));
  assert.ok(m, `README.md: no \`\`\`sh block after <!-- ${name} -->`);
  return m[1]!;
}

/** PIDs of live processes carrying the marker in their environment. */
function markedProcesses(): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (/^\S+ \(.*\) Z /.test(stat)) continue; // a zombie is gone, only not yet reaped
      if (readFileSync(`/proc/${d}/environ`, 'latin1').includes(marker)) pids.push(Number(d));
    } catch {
      // exited meanwhile, or not ours to read
    }
  }
  return pids;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

before(async () => {
  for (const p of README_PORTS) assert.ok(await portFree(p), `port ${p} on 127.0.0.1 is in use: the README walkthrough needs it (stop what holds it)`);
  tmp = await mkdtemp(join(tmpdir(), 'meshfed-walkthrough-'));
});

after(async () => {
  for (const pid of markedProcesses()) process.kill(pid, 'SIGKILL');
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('README "Try it by hand": a client in cluster1 gets answers from cluster2 over mTLS, and the clean-up leaves no process', async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const walkthrough = readmeBlock(readme, 'walkthrough');
  const cleanup = readmeBlock(readme, 'walkthrough-cleanup');
  const named = new Set([...walkthrough.matchAll(/127\.0\.0\.1:([0-9]+)/g)].map((m) => Number(m[1])));
  for (const p of named) assert.ok(README_PORTS.includes(p), `the walkthrough uses port ${p}: add it to README_PORTS (and check nothing else in test/ uses it)`);
  assert.ok(existsSync(join(root, 'bin', 'meshfed')), 'bin/meshfed (the README puts bin/ on PATH)');

  // set -e: a failing step stops the script (rather than hanging in a later wait loop); the clean-up is not reached then, after() kills what is left.
  const script = `set -e\n${walkthrough}\necho '--- walkthrough done'\n${cleanup}\n`;
  // A newcomer's shell: no meshfed settings of ours (MESHFED_CONFIG, MESHFED_AGENT...) leak in.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MESHFED_')));
  const child = spawn('bash', ['-c', script], {
    cwd: root,
    env: { ...env, TMPDIR: tmp!, MESHFED_WALKTHROUGH_MARKER: marker },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), SCRIPT_TIMEOUT_MS);
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  clearTimeout(timer);
  const logs = async (): Promise<string> => {
    // The walkthrough's own logs (hub.log, agent1.log, server.log...), for a failure message.
    const out: string[] = [];
    for (const d of await readdir(tmp!).catch(() => [] as string[])) {
      for (const f of await readdir(join(tmp!, d)).catch(() => [] as string[])) {
        if (f.endsWith('.log'))
          out.push(
            `--- ${f}\n${readFileSync(join(tmp!, d, f), 'utf8')
              .split('\n')
              .slice(-15)
              .join('\n')}`,
          );
      }
    }
    return out.join('\n');
  };
  const context = async () => `exit ${code}\nstdout:\n${stdout}\nstderr (last 40 lines):\n${stderr.split('\n').slice(-40).join('\n')}\n${await logs()}`;

  assert.equal(code, 0, await context());
  assert.match(stdout, /--- walkthrough done/);
  const replies = stdout.split('\n').filter((l) => /^[0-9]+: /.test(l));
  assert.equal(replies.length, 5, await context());
  for (const r of replies) {
    assert.match(
      r,
      /^[0-9]+: cluster2 helloworld-cluster2 v2: "Hello meshfed from helloworld-cluster2" \(mTLS, the server saw spiffe:\/\/meshfed\.local\/cluster\/cluster1\/ns\/sample\/sa\/my-client\)$/,
    );
  }
  assert.match(stdout, /^5 of 5 calls ok$/m);
  // What the README says the hub shows: both clusters, the global service in cluster2.
  assert.match(stdout, /^helloworld\.sample\s+grpc:50051\s+cluster2\s+1\/1/m);

  // The clean-up: every process gone (its `wait` returned), and the directory removed.
  assert.deepEqual(markedProcesses(), [], 'processes left after the README clean-up');
  assert.deepEqual(await readdir(tmp!), [], 'the clean-up removes the walkthrough directory');
});

test('meshfed sample server|client without a usable bootstrap: one line saying what to do, and the exit code docs/cli.md gives', async () => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MESHFED_') && !k.startsWith('GRPC_XDS_')));
  const run = (args: string[], extra: Record<string, string> = {}) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [join(root, 'bin', 'meshfed.js'), 'sample', ...args], { env: { ...env, ...extra }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.once('close', (code) => resolve({ code, stderr }));
    });
  const none = await run(['client']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /GRPC_XDS_BOOTSTRAP is not set: point it at the file `meshfed bootstrap \.\.\. --out FILE` wrote/);
  const client = await run(['server', '--port', '15999'], { GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify({ node: { id: 'c1~sample~w' }, xds_servers: [{ server_uri: '127.0.0.1:1' }] }) });
  assert.equal(client.code, 1);
  assert.match(client.stderr, /not a server bootstrap .*meshfed bootstrap --server/);
  const port0 = await run(['server', '--port', '0'], { GRPC_XDS_BOOTSTRAP: '/nonexistent' });
  assert.equal(port0.code, 2);
  assert.match(port0.stderr, /--port: 0 is not a port/);
});
