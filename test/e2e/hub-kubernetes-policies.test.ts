// End to end: a hub started with --kubernetes-policies takes its policies from
// custom resources, GitOps style. The Kubernetes API server is the stand-in
// (test/helpers/kube-apiserver, not Kubernetes), driven with the real `kubectl`
// as a user (or Argo CD) would: `meshfed crds | kubectl apply -f -`, then
// TrafficPolicies applied, edited, made invalid and deleted; a real hub process
// and a real agent. Checked: the hub API shows what kubectl applied (marked as
// the Kubernetes source's), the agent's view holds it, status is written back
// through /status (Accepted, the computed status, rewritten when the fleet
// changes) and survives the CRD's schema, an invalid resource changes nothing
// and names the field, an API write to a Kubernetes-owned object is a 409, the
// writes are audited as system:kubernetes, and an API server that goes away
// leaves the hub's objects in place with its status saying since when.
// Skipped, saying so, when kubectl is not installed (.ci/run installs it).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { API_VERSION, type ApiObject } from '../../src/api/index.js';
import { crds } from '../../src/registry.js';
import { DEMO_CLUSTERS, LocalFleet, clusterObject } from '../../src/demo/fleet.js';
import { KubeApiServer } from '../helpers/kube-apiserver/server.js';
import { valueProblems } from '../helpers/structural-schema.js';
import { eventually } from '../helpers/eventually.js';
import { HAVE_KUBECTL, KUBECTL_SKIP } from '../helpers/kubectl.js';

const skip = KUBECTL_SKIP;

let api: KubeApiServer;
let fleet: LocalFleet;
let kubeconfig: string;
const cluster1 = DEMO_CLUSTERS[0]!;

before(async () => {
  if (!HAVE_KUBECTL) return;
  api = await KubeApiServer.start({ historyLimit: 1000 });
  fleet = await LocalFleet.create({ echoStderr: process.env.MESHFED_TEST_ECHO === '1' });
  kubeconfig = join(fleet.dir, 'kubeconfig');
  // client-node refuses plain HTTP unless TLS verification is off (the stand-in serves plain HTTP; kubectl does not mind).
  await writeFile(kubeconfig, (await api.kubeconfig()).replace('    server:', '    insecure-skip-tls-verify: true\n    server:'));
  const crdYaml = await run(process.execPath, [join(process.cwd(), 'bin', 'meshfed.js'), 'crds']);
  await ok(['apply', '-f', '-'], crdYaml.stdout);
  await fleet.startHub(['--kubernetes-policies', '--kubeconfig', kubeconfig]);
  await fleet.apply([{ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { mtls: { mode: 'DISABLE' } } }, clusterObject(cluster1)]);
  await fleet.startAgent(cluster1);
});

after(async () => {
  await fleet?.close();
  await api?.close();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input?: string, env?: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 20_000, ...(env ? { env: { ...process.env, ...env } } : {}) }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

async function ok(args: string[], input?: string): Promise<string> {
  const r = await run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(fleet.dir, 'kube-cache'), ...args], input);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const policy = (name: string, weights: [number, number], extra = ''): string => `apiVersion: meshfed.io/v1alpha1
kind: TrafficPolicy
metadata: {name: "${name}", namespace: default, labels: {team: web}${extra}}
spec:
  destinations: [{name: helloworld}]
  routes:
  - name: main
    split: [{cluster: cluster1, weight: ${weights[0]}}, {cluster: cluster2, weight: ${weights[1]}}]
`;

async function kubectlApply(name: string, text: string): Promise<void> {
  const f = join(fleet.dir, `${name}.yaml`);
  await writeFile(f, text);
  await ok(['apply', '-f', f]);
}

interface Tp extends ApiObject {
  spec: { routes: { split: { weight: number }[] }[] };
  status?: { services?: string[]; problems?: { message: string }[] };
}

async function hubPolicy(name: string): Promise<Tp | undefined> {
  const r = await fleet.hubFetch(`/api/v1alpha1/trafficpolicies/${name}?namespace=default`);
  if (r.status === 404) return undefined;
  if (r.status !== 200) assert.fail(`GET trafficpolicies/${name}: ${r.status} ${await r.text()}`);
  return (await r.json()) as Tp;
}

interface Cr {
  metadata: { generation: number };
  status?: { conditions?: { type: string; status: string; reason: string; message: string; observedGeneration?: number }[]; services?: string[]; problems?: { message: string }[] };
}
async function cr(name: string): Promise<Cr> {
  return parseYaml(await ok(['get', 'trafficpolicy', name, '-o', 'yaml'])) as Cr;
}
const accepted = (c: Cr) => c.status?.conditions?.find((x) => x.type === 'Accepted');

/** What the agent holds of the hub's view (its journal on disk). */
async function agentHolds(needle: string): Promise<boolean> {
  const dir = fleet.agents.get(cluster1.name)!.dataDir;
  for (const f of await readdir(dir)) if (f.startsWith('view')) if ((await readFile(join(dir, f), 'utf8')).includes(needle)) return true;
  return false;
}

test('a TrafficPolicy applied with kubectl reaches the hub API and the agent, and gets Accepted and its status back through /status', { skip }, async () => {
  await kubectlApply('x', policy('x', [75, 25]));
  const got = await eventually('the hub to hold TrafficPolicy x', () => hubPolicy('x'));
  assert.equal(got.metadata.annotations?.['meshfed.io/source'], 'kubernetes');
  assert.equal(got.metadata.labels?.team, 'web');
  assert.equal(got.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration'], undefined);
  assert.deepEqual(
    got.spec.routes[0]!.split.map((s) => s.weight),
    [75, 25],
  );
  // meshfed get, as a user of the hub would.
  const cli = await run(process.execPath, [join(process.cwd(), 'bin', 'meshfed.js'), 'get', 'trafficpolicies', '-n', 'default'], undefined, fleet.cliEnv());
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /^x\s/m);
  await eventually('the agent to hold it', async () => ((await agentHolds('"name":"x"')) ? true : undefined));
  const c = await eventually('Accepted=True on the custom resource', async () => {
    const c = await cr('x');
    return accepted(c)?.status === 'True' ? c : undefined;
  });
  assert.equal(accepted(c)!.observedGeneration, c.metadata.generation);
  // The computed status, as the hub API shows it: no service named helloworld yet.
  assert.match(c.status!.problems![0]!.message, /no service in namespace "default" named "helloworld"/);
  // What the hub writes survives the CRD's status schema (a real API server would prune anything else).
  const crd = crds().find((d) => (d.spec as { names: { kind: string } }).names.kind === 'TrafficPolicy')!;
  const schema = (crd.spec as { versions: { schema: { openAPIV3Schema: { properties: { status: Record<string, unknown> } } } }[] }).versions[0]!.schema.openAPIV3Schema.properties.status;
  assert.deepEqual(valueProblems(schema, c.status, 'status'), []);
});

test('the status is rewritten when the fleet changes it (a service appears)', { skip }, async () => {
  const r = await fleet.register(cluster1.name, { name: 'hw-1', namespace: 'default', service: 'helloworld', address: '127.0.0.1:50051', servicePort: 50051 });
  assert.ok(r.status < 300, `${r.status} ${JSON.stringify(r.body)}`);
  const c = await eventually('status.services on the custom resource', async () => {
    const c = await cr('x');
    return c.status?.services?.includes('helloworld.default') ? c : undefined;
  });
  assert.ok(!(c.status!.problems ?? []).some((p) => /no service/.test(p.message)), JSON.stringify(c.status));
  // Problems left name the field (cluster2 is no member of this one-cluster fleet).
  assert.match(JSON.stringify(c.status!.problems), /no member cluster \\"cluster2\\"/);
});

test('an edit with kubectl updates the hub; an API write to a Kubernetes-owned object is a 409 naming the source', { skip }, async () => {
  await kubectlApply('x', policy('x', [50, 50]));
  await eventually('the edit at the hub', async () => ((await hubPolicy('x'))?.spec.routes[0]!.split[0]!.weight === 50 ? true : undefined));
  const object = await hubPolicy('x');
  const put = await fleet.hubFetch('/api/v1alpha1/apply', { method: 'POST', body: JSON.stringify([{ ...object, metadata: { name: 'x', namespace: 'default' } }]) });
  assert.equal(put.status, 409);
  assert.match(((await put.json()) as { error: string }).error, /TrafficPolicy default\/x is owned by the hub's Kubernetes cluster/);
  const del = await fleet.hubFetch('/api/v1alpha1/trafficpolicies/x?namespace=default', { method: 'DELETE' });
  assert.equal(del.status, 409);
  // Nor may an API write claim the source.
  const claim = await fleet.hubFetch('/api/v1alpha1/apply', {
    method: 'POST',
    body: JSON.stringify([{ ...object, metadata: { name: 'api-made', namespace: 'default', annotations: { 'meshfed.io/source': 'kubernetes' } } }]),
  });
  assert.equal(claim.status, 400);
  // The reconciler's writes are audited as system:kubernetes.
  const audit = (await (await fleet.hubFetch('/api/v1alpha1/audit?who=system:kubernetes')).json()) as { items: { verb: string; object: string; outcome: string }[] };
  assert.ok(
    audit.items.some((i) => i.verb === 'update' && i.object === 'default/x' && i.outcome === 'allowed'),
    JSON.stringify(audit.items),
  );
  assert.ok(audit.items.some((i) => i.verb === 'create' && i.object === 'default/x'));
});

test('an invalid custom resource is not applied: Accepted=False names the field, and the hub keeps what it had', { skip }, async () => {
  await kubectlApply('y', policy('y', [60, 30]));
  const c = await eventually('Accepted=False on y', async () => {
    const c = await cr('y');
    return accepted(c)?.status === 'False' ? c : undefined;
  });
  assert.equal(accepted(c)!.reason, 'Invalid');
  assert.match(accepted(c)!.message, /spec\.routes\[0\]\.split/);
  assert.equal(await hubPolicy('y'), undefined);
  // An edit of a valid one into an invalid one: the hub keeps the last valid version.
  await kubectlApply('x', policy('x', [10, 10]));
  await eventually('Accepted=False on x', async () => (accepted(await cr('x'))?.status === 'False' ? true : undefined));
  assert.equal((await hubPolicy('x'))!.spec.routes[0]!.split[0]!.weight, 50);
  // Fixed: accepted again, the hub follows.
  await kubectlApply('x', policy('x', [90, 10]));
  await eventually('x accepted again at 90', async () => ((await hubPolicy('x'))?.spec.routes[0]!.split[0]!.weight === 90 && accepted(await cr('x'))?.status === 'True' ? true : undefined));
});

test('kubectl delete removes the object from the hub and the agent', { skip }, async () => {
  await kubectlApply('z', policy('z', [100, 0]));
  await eventually('z at the hub', () => hubPolicy('z'));
  await ok(['delete', 'trafficpolicy', 'z']);
  await eventually('z gone from the hub', async () => ((await hubPolicy('z')) === undefined ? true : undefined));
  // The agent's journal keeps history: what it serves is the view at its revision, which must reach the delete's.
  const revision = ((await (await fleet.hubFetch('/healthz')).json()) as { revision: number }).revision;
  await eventually('the agent at the revision of the delete', async () => ((await fleet.agentStatus(cluster1.name)).viewRevision >= revision ? true : undefined));
});

test('the API server gone: the hub keeps its objects and says since when', { skip }, async () => {
  const before = Date.now();
  await api.close();
  const status = await eventually('the source to report the outage', async () => {
    const hub = (await (await fleet.hubFetch('/api/v1alpha1/hub')).json()) as {
      kubernetesPolicies: { connected: boolean; since: string; kinds: { kind: string; error?: string; errorSince?: string }[] };
    };
    return hub.kubernetesPolicies.connected ? undefined : hub.kubernetesPolicies;
  });
  assert.ok(Date.parse(status.since) >= before - 1000, status.since);
  const tp = status.kinds.find((k) => k.kind === 'TrafficPolicy')!;
  assert.ok(tp.error && tp.errorSince, JSON.stringify(tp));
  await new Promise((r) => setTimeout(r, 1500)); // a retry or two
  assert.equal((await hubPolicy('x'))!.spec.routes[0]!.split[0]!.weight, 90);
});
