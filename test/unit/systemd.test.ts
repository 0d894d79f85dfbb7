// The systemd units of `meshfed install systemd agent|identity`
// (src/install/systemd.ts): the command line they run, the hardening every
// unit carries, the data directory under /var/lib/meshfed, refused arguments;
// and, where systemd-analyze exists, `systemd-analyze verify` accepts them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { agentUnit, identityUnit } from '../../src/install/systemd.js';

let dir: string | undefined;
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const agent = () =>
  agentUnit({ cluster: 'east', hub: 'hub.example.com:7401', joinTokenFile: '/etc/meshfed/east.token', config: '/etc/meshfed/agent.yaml', user: 'meshfed', meshfedBin: process.execPath });
const identity = () => identityUnit({ dir: '/srv/app/certs', tokenFile: '/etc/meshfed/app.token', user: 'app', after: 'meshfed-agent.service', meshfedBin: process.execPath });

function lines(unit: string): string[] {
  return unit.split('\n');
}

test('the agent unit runs meshfed agent with its data in /var/lib/meshfed/agent, hardened', () => {
  const u = lines(agent());
  assert.ok(
    u.includes(
      `ExecStart=${process.execPath} agent --cluster east --hub hub.example.com:7401 --data-dir /var/lib/meshfed/agent --join-token-file /etc/meshfed/east.token --config /etc/meshfed/agent.yaml`,
    ),
  );
  for (const l of [
    'User=meshfed',
    'StateDirectory=meshfed/agent',
    'StateDirectoryMode=0700',
    'ReadWritePaths=/var/lib/meshfed/agent',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'Restart=on-failure',
    'CapabilityBoundingSet=',
    'WantedBy=multi-user.target',
  ])
    assert.ok(u.includes(l), `${l} in the agent unit`);
  assert.ok(!u.some((l) => l.startsWith('MemoryDenyWriteExecute')), "no MemoryDenyWriteExecute (Node's JIT)");
});

test('the identity unit writes only its directory, as the workload user, after the agent', () => {
  const u = lines(identity());
  assert.ok(u.includes(`ExecStart=${process.execPath} identity run --dir /srv/app/certs --token-file /etc/meshfed/app.token`));
  for (const l of ['User=app', 'ReadWritePaths=/srv/app/certs', 'After=network-online.target meshfed-agent.service', 'ProtectSystem=strict', 'NoNewPrivileges=yes', 'Restart=on-failure'])
    assert.ok(u.includes(l), `${l} in the identity unit`);
});

test('arguments systemd would split or expand, and relative paths, are refused naming the flag', () => {
  assert.throws(() => agentUnit({ cluster: 'east west', hub: 'h:1', user: 'meshfed', meshfedBin: '/usr/local/bin/meshfed' }), /--cluster: "east west" has a character/);
  assert.throws(
    () => agentUnit({ cluster: 'east', hub: 'h:1', user: 'meshfed', meshfedBin: '/usr/local/bin/meshfed', joinTokenFile: 'east.token' }),
    /--join-token-file: "east.token" is not an absolute path/,
  );
  assert.throws(() => identityUnit({ dir: '/srv/%h', tokenFile: '/t', user: 'app', meshfedBin: '/usr/local/bin/meshfed' }), /--dir: "\/srv\/%h" has a character/);
});

test('systemd-analyze verify accepts both units', async (t) => {
  const analyze = await promisify(execFile)('sh', ['-c', 'command -v systemd-analyze']).catch(() => undefined);
  if (!analyze) return t.skip('systemd-analyze is not installed here');
  dir = await mkdtemp(join(tmpdir(), 'meshfed-systemd-'));
  const files = [join(dir, 'meshfed-agent.service'), join(dir, 'meshfed-identity.service')];
  await writeFile(files[0]!, agent());
  await writeFile(files[1]!, identity());
  const r = await promisify(execFile)('systemd-analyze', ['verify', ...files]).then(
    (x) => ({ code: 0, stderr: x.stderr }),
    (err: { code?: number; stderr?: string }) => ({ code: err.code ?? 1, stderr: err.stderr ?? '' }),
  );
  // Without a running systemd (a container) verify still parses the units; only lines about the units themselves count.
  const about = r.stderr.split('\n').filter((l) => /meshfed-(agent|identity)\.service/.test(l));
  assert.deepEqual(about, [], r.stderr);
});
