// `meshfed cluster add` then `meshfed install agent` as a user runs them, real
// processes against a real hub (LocalFleet): the token alone on stdout, the
// install command on stderr (and in `next` with -o json), and that command,
// run as printed, yields manifests that real kubectl applies (--dry-run=client)
// against the stand-in Kubernetes API server (test/helpers/kube-apiserver: a
// stand-in, not Kubernetes). Also the CLI's own errors for install.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { LocalFleet } from '../../src/demo/fleet.js';
import { meshfedBin } from '../../src/demo/processes.js';
import { KubeApiServer } from '../helpers/kube-apiserver/server.js';
import { HAVE_KUBECTL } from '../helpers/kubectl.js';

let fleet: LocalFleet;
let api: KubeApiServer;

before(async () => {
  fleet = await LocalFleet.create();
  await fleet.startHub();
  api = await KubeApiServer.start({});
  await api.kubeconfig(join(fleet.dir, 'kubeconfig'));
});

after(async () => {
  await api?.close();
  await fleet?.close();
});

function meshfed(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [meshfedBin(), ...args], { env: { ...process.env, ...fleet.cliEnv(), MESHFED_HUB: fleet.hubUrl, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

test('cluster add prints the token alone on stdout and the install command on stderr; that command, as printed, makes manifests kubectl takes', async () => {
  const r = await meshfed(['cluster', 'add', 'k8s1', '--region', 'eu-west1', '--zones', 'eu-west1-a']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^mfj1\.[^\s]+\n$/, 'stdout is the token alone (`> token` works)');
  const line = r.stderr.split('\n').find((l) => l.includes('meshfed install agent'));
  assert.ok(line, r.stderr);
  assert.ok(r.stderr.includes('meshfed agent --cluster k8s1 '), 'the VM command is still there');
  const command = line.slice(line.indexOf('meshfed install agent'));
  assert.equal(command, 'meshfed install agent --cluster k8s1 --hub <hub agent-channel address> --join-token-file <file with this token> | kubectl apply -f -');
  // Run it as printed, with the placeholders filled in.
  const tokenFile = join(fleet.dir, 'k8s1.token');
  await writeFile(tokenFile, r.stdout);
  const args = command.replace(' | kubectl apply -f -', '').replace('<hub agent-channel address>', 'hub.example.com:7401').replace('<file with this token>', tokenFile).split(' ').slice(1);
  const out = await meshfed(args);
  assert.equal(out.code, 0, out.stderr);
  const docs = parseAllDocuments(out.stdout).map((d) => d.toJS() as { kind: string; data?: { token: string } });
  const secret = docs.find((d) => d.kind === 'Secret')!;
  assert.equal(Buffer.from(secret.data!.token, 'base64').toString(), r.stdout.trim());
  if (!HAVE_KUBECTL) return; // the manifests themselves are checked in test/unit/install.test.ts; kubectl is installed by .ci/run
  const applied = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const k = execFile(
      'kubectl',
      ['--kubeconfig', join(fleet.dir, 'kubeconfig'), '--cache-dir', join(fleet.dir, 'kcache'), 'apply', '--dry-run=client', '-f', '-'],
      { timeout: 20_000 },
      (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }),
    );
    k.stdin!.end(out.stdout);
  });
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /deployment\.apps\/meshfed-agent created \(dry run\)/);
});

test('cluster add -o json keeps the answer machine-readable and adds the commands as fields', async () => {
  const r = await meshfed(['cluster', 'add', 'k8s2', '--region', 'eu-west1', '--zones', 'eu-west1-a', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const a = JSON.parse(r.stdout) as { cluster: string; token: string; next: { kubernetes: string; vm: string } };
  assert.equal(a.cluster, 'k8s2');
  assert.match(a.token, /^mfj1\./);
  assert.match(a.next.kubernetes, /^meshfed install agent --cluster k8s2 .* \| kubectl apply -f -$/);
  assert.match(a.next.vm, /^meshfed agent --cluster k8s2 /);
});

test('install: -o json is a v1 List; a missing token, a bad flag value or output format is a usage error (exit 2) naming it', async () => {
  const hub = await meshfed(['install', 'hub', '-o', 'json', '--skip-crds']);
  assert.equal(hub.code, 0, hub.stderr);
  const list = JSON.parse(hub.stdout) as { apiVersion: string; kind: string; items: { kind: string }[] };
  assert.equal(list.kind, 'List');
  assert.equal(list.apiVersion, 'v1');
  assert.ok(list.items.some((o) => o.kind === 'Deployment'));
  assert.ok(!list.items.some((o) => o.kind === 'CustomResourceDefinition'));
  let r = await meshfed(['install', 'agent', '--cluster', 'k8s1', '--hub', 'hub:7401'], { MESHFED_JOIN_TOKEN: '' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /the join token: give --join-token-file/);
  r = await meshfed(['install', 'hub', '-o', 'table']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /-o: unknown output format "table" \(yaml or json\)/);
  r = await meshfed(['install', 'hub', '--namespace', 'Not_OK']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--namespace: "Not_OK" is not a Kubernetes namespace name/);
  r = await meshfed(['install', 'agent', '--cluster', 'k8s1', '--hub', 'hub:7401', '--join-token', 'garbage']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /join token is malformed/);
  assert.equal(r.stdout, '', 'nothing half-printed');
});
