// The stand-in Kubernetes API server (test/helpers/kube-apiserver, a stand-in,
// not Kubernetes) serves the kinds of CustomResourceDefinitions, proven with the
// real `kubectl` as a user would: `meshfed crds | kubectl apply -f -`, then
// apply, get, get -o yaml of a TrafficPolicy (namespaced) and the Mesh
// (cluster-scoped), the status subresource, the `meshfed` category, and a
// deleted CRD that stops serving (its objects gone, its watches ended).
// Skipped, saying so, when kubectl is not installed (.ci/run installs it).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { KubeApiServer } from '../helpers/kube-apiserver/server.js';
import { KUBECTL_SKIP, Kubectl, type KubectlRun } from '../helpers/kubectl.js';

const skip = KUBECTL_SKIP;
const MESHFED = join(process.cwd(), 'bin', 'meshfed.js');

let api: KubeApiServer;
let dir: string;
let kubeconfig: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kube-standin-crds-'));
  api = await KubeApiServer.start({ historyLimit: 1000 });
  kubeconfig = join(dir, 'kubeconfig');
  await api.kubeconfig(kubeconfig);
});

after(async () => {
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Run = KubectlRun;

function run(cmd: string, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

const kubectl = (args: string[], input?: string): Promise<Run> => new Kubectl(kubeconfig, dir).run(args, input);
const ok = (args: string[], input?: string): Promise<string> => new Kubectl(kubeconfig, dir).ok(args, input);

const POLICY = `apiVersion: meshfed.io/v1alpha1
kind: TrafficPolicy
metadata: {name: x, namespace: default}
spec:
  destinations: [{name: helloworld}]
  routes:
  - name: main
    split: [{cluster: cluster2, weight: 75}, {cluster: cluster3, weight: 25}]
`;

test('meshfed crds | kubectl apply -f - serves every meshfed kind, found by kubectl', { skip }, async () => {
  const crds = await run(process.execPath, [MESHFED, 'crds']);
  assert.equal(crds.code, 0, crds.stderr);
  const applied = await ok(['apply', '-f', '-'], crds.stdout);
  assert.match(applied, /customresourcedefinition.apiextensions.k8s.io\/trafficpolicies.meshfed.io created/);
  const list = await ok(['get', 'crds', '-o', 'name']);
  assert.match(list, /trafficpolicies\.meshfed\.io/);
  assert.match(list, /meshes\.meshfed\.io/);
  const crd = parseYaml(await ok(['get', 'crd', 'trafficpolicies.meshfed.io', '-o', 'yaml'])) as { status: { conditions: { type: string; status: string }[] } };
  assert.ok(crd.status.conditions.some((c) => c.type === 'Established' && c.status === 'True'));
  const resources = await ok(['api-resources', '--api-group=meshfed.io', '--no-headers']);
  assert.match(resources, /^trafficpolicies\s+tp\s+meshfed\.io\/v1alpha1\s+true\s+TrafficPolicy/m);
  assert.match(resources, /^meshes\s+meshfed\.io\/v1alpha1\s+false\s+Mesh/m);
});

test('a TrafficPolicy: kubectl apply, get, get -o yaml, the status subresource', { skip }, async () => {
  const f = join(dir, 'tp.yaml');
  await writeFile(f, POLICY);
  assert.match(await ok(['apply', '-f', f]), /trafficpolicy.meshfed.io\/x created/);
  assert.match(await ok(['get', 'trafficpolicies']), /^x\s/m);
  assert.match(await ok(['get', 'tp']), /^x\s/m);
  assert.match(await ok(['get', 'meshfed']), /trafficpolicy.meshfed.io\/x/);
  const got = parseYaml(await ok(['get', 'trafficpolicy', 'x', '-o', 'yaml'])) as { kind: string; metadata: { namespace: string; generation: number }; spec: { routes: unknown[] } };
  assert.equal(got.kind, 'TrafficPolicy');
  assert.equal(got.metadata.namespace, 'default');
  assert.equal(got.spec.routes.length, 1);
  // Status goes through /status only: the main resource keeps it, as with a real CRD declaring the subresource.
  await ok(['patch', 'trafficpolicy', 'x', '--subresource=status', '--type=merge', '-p', '{"status":{"conditions":[{"type":"Accepted","status":"True"}]}}']);
  await ok(['patch', 'trafficpolicy', 'x', '--type=merge', '-p', '{"status":{"conditions":[]}}']);
  const after = parseYaml(await ok(['get', 'tp', 'x', '-o', 'yaml'])) as { status: { conditions: { type: string }[] } };
  assert.deepEqual(
    after.status.conditions.map((c) => c.type),
    ['Accepted'],
  );
  // A second change of spec bumps generation; the edit is what get shows.
  await writeFile(f, POLICY.replace('weight: 75}, {cluster: cluster3, weight: 25', 'weight: 50}, {cluster: cluster3, weight: 50'));
  assert.match(await ok(['apply', '-f', f]), /configured/);
  const edited = parseYaml(await ok(['get', 'tp', 'x', '-o', 'yaml'])) as { metadata: { generation: number }; spec: { routes: { split: { weight: number }[] }[] } };
  assert.equal(edited.metadata.generation, 2);
  assert.equal(edited.spec.routes[0]!.split[0]!.weight, 50);
});

test('a cluster-scoped custom resource (the Mesh) has no namespace', { skip }, async () => {
  await ok(['apply', '-f', '-'], 'apiVersion: meshfed.io/v1alpha1\nkind: Mesh\nmetadata: {name: default}\nspec: {trustDomain: example.org}\n');
  const mesh = parseYaml(await ok(['get', 'mesh', 'default', '-o', 'yaml'])) as { metadata: { namespace?: string } };
  assert.equal(mesh.metadata.namespace, undefined);
  const r = await fetch(`${api.url}/apis/meshfed.io/v1alpha1/meshes/default`);
  assert.equal(r.status, 200);
});

test('deleting the CRD stops serving its kind: objects gone, watches ended, kubectl no longer finds it', { skip }, async () => {
  const rv = ((await (await fetch(`${api.url}/apis/meshfed.io/v1alpha1/trafficpolicies`)).json()) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
  const watch = await fetch(`${api.url}/apis/meshfed.io/v1alpha1/namespaces/default/trafficpolicies?watch=1&resourceVersion=${rv}`);
  const body = watch.text();
  await ok(['delete', 'crd', 'trafficpolicies.meshfed.io']);
  const events = (await body)
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; object: { metadata: { name: string } } });
  assert.deepEqual(
    events.map((e) => `${e.type} ${e.object.metadata.name}`),
    ['DELETED x'],
  );
  const gone = await kubectl(['get', 'trafficpolicies']);
  assert.notEqual(gone.code, 0);
  // kubectl's discovery cache may still name the resource: then the list itself is refused, as with a real server.
  assert.match(gone.stderr, /doesn't have a resource type "trafficpolicies"|Unable to list "meshfed.io\/v1alpha1, Resource=trafficpolicies": the server could not find the requested resource/);
  const fresh = await run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'fresh-cache'), 'get', 'trafficpolicies']);
  assert.match(fresh.stderr, /doesn't have a resource type "trafficpolicies"/);
  assert.equal((await fetch(`${api.url}/apis/meshfed.io/v1alpha1/namespaces/default/trafficpolicies/x`)).status, 404);
  // The other kinds of the group are still served.
  assert.match(await ok(['get', 'meshes']), /^default\s/m);
});
