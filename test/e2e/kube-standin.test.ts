// The stand-in Kubernetes API server (test/helpers/kube-apiserver) is a stand-in,
// not Kubernetes: these tests prove its fidelity with the real client, driving it
// with the real `kubectl` as a user would (apply, get -o yaml, get -w, delete,
// label selectors, server-side apply, the status subresource, a 409 on a stale
// update), plus the watch protocol the informers rely on (410 Gone after
// compaction, bookmarks) over plain HTTP. Skipped, saying so, when kubectl is not
// installed (.ci/run installs it).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { KubeApiServer } from '../helpers/kube-apiserver/server.js';
import { HAVE_KUBECTL, KUBECTL_SKIP, Kubectl, type KubectlRun } from '../helpers/kubectl.js';

const skip = KUBECTL_SKIP;

let api: KubeApiServer;
let dir: string;
let kubeconfig: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kube-standin-'));
  api = await KubeApiServer.start({ historyLimit: 1000 });
  kubeconfig = join(dir, 'kubeconfig');
  await api.kubeconfig(kubeconfig);
});

after(async () => {
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Run = KubectlRun;
const kubectl = (...args: string[]): Promise<Run> => new Kubectl(kubeconfig, dir).run(args);
const ok = (...args: string[]): Promise<string> => new Kubectl(kubeconfig, dir).ok(args);

async function file(name: string, text: string): Promise<string> {
  const f = join(dir, name);
  await writeFile(f, text);
  return f;
}

const MANIFESTS = `apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
  annotations:
    service.cilium.io/global: "true"
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- name: http
  port: 8080
  protocol: TCP
endpoints:
- addresses: ["10.0.0.1"]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: node-a
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels: {app: web, version: v1}
spec:
  serviceAccountName: web
  nodeName: node-a
  containers:
  - name: app
    image: example/web:1
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Node
metadata:
  name: node-a
  labels:
    topology.kubernetes.io/region: eu-west1
    topology.kubernetes.io/zone: eu-west1-a
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata:
  name: web
`;

type Obj = { metadata: { name: string; resourceVersion: string; generation?: number; labels?: Record<string, string>; namespace?: string }; [k: string]: unknown };

async function getYaml(what: string, ...extra: string[]): Promise<Obj> {
  return parseYaml(await ok('get', what, '-o', 'yaml', ...extra)) as Obj;
}

test('kubectl apply -f creates a Service, EndpointSlice, Pod, Node and ServiceExport; get -o yaml returns them', { skip }, async () => {
  const f = await file('all.yaml', MANIFESTS);
  const out = await ok('apply', '-f', f);
  assert.equal(
    out,
    ['service/web created', 'endpointslice.discovery.k8s.io/web-abc12 created', 'pod/web-1 created', 'node/node-a created', 'serviceexport.multicluster.x-k8s.io/web created', ''].join('\n'),
  );
  const svc = await getYaml('service/web');
  assert.equal(svc.metadata.namespace, 'default');
  assert.deepEqual((svc['spec'] as { ports: unknown }).ports, [{ name: 'http', port: 80, targetPort: 8080 }]);
  const slice = await getYaml('endpointslice/web-abc12');
  assert.deepEqual((slice['endpoints'] as { conditions: unknown }[])[0]!.conditions, { ready: true, serving: true, terminating: false });
  const pod = await getYaml('pod/web-1');
  assert.equal((pod['status'] as { phase: string }).phase, 'Pending', 'a created Pod starts Pending, as with a real server');
  const node = await getYaml('node/node-a');
  assert.equal(node.metadata.namespace, undefined, 'Nodes are cluster-scoped');
  assert.equal(node.metadata.labels?.['topology.kubernetes.io/zone'], 'eu-west1-a');
  const exp = await getYaml('serviceexports.multicluster.x-k8s.io/web');
  assert.equal(exp['kind'], 'ServiceExport');
  // re-applying the same file changes nothing
  assert.match(await ok('apply', '-f', f), /service\/web unchanged/);
  assert.equal((await getYaml('service/web')).metadata.resourceVersion, svc.metadata.resourceVersion);
  // the default table output
  assert.match(await ok('get', 'pods'), /^NAME\s+CREATED AT\nweb-1\s+\S+/);
});

test('an apply of a changed object updates it (strategic merge of the ports list)', { skip }, async () => {
  const f = await file('changed.yaml', MANIFESTS.replace('port: 80\n', 'port: 81\n').replace('10.0.0.1', '10.0.0.2'));
  const out = await ok('apply', '-f', f);
  assert.match(out, /service\/web configured/);
  assert.match(out, /endpointslice.discovery.k8s.io\/web-abc12 configured/);
  const svc = await getYaml('service/web');
  assert.deepEqual((svc['spec'] as { ports: unknown }).ports, [{ name: 'http', port: 81, targetPort: 8080 }]);
  assert.equal(svc.metadata.generation, 2);
  const slice = await getYaml('endpointslice/web-abc12');
  assert.deepEqual((slice['endpoints'] as { addresses: string[] }[])[0]!.addresses, ['10.0.0.2']);
});

test('label selectors (-l) and field selectors choose objects; --chunk-size pages with continue', { skip }, async () => {
  await ok('run', 'db-1', '--image=example/db:1', '--labels=app=db');
  await ok('create', 'namespace', 'other');
  await ok('run', 'web-2', '-n', 'other', '--image=example/web:1', '--labels=app=web');
  assert.equal(await ok('get', 'pods', '-l', 'app=web', '-o', 'name'), 'pod/web-1\n');
  assert.equal(await ok('get', 'pods', '-A', '-l', 'app=web', '-o', 'name'), 'pod/web-1\npod/web-2\n');
  assert.equal(await ok('get', 'pods', '-l', 'app in (db, cache)', '-o', 'name'), 'pod/db-1\n');
  assert.equal(await ok('get', 'pods', '-l', 'app!=web', '-o', 'name'), 'pod/db-1\n');
  assert.equal(await ok('get', 'pods', '-A', '--field-selector', 'metadata.namespace=other', '-o', 'name'), 'pod/web-2\n');
  assert.equal(await ok('get', 'pods', '-A', '--field-selector', 'metadata.name=db-1', '-o', 'name'), 'pod/db-1\n');
  assert.equal(await ok('get', 'pods', '-A', '--chunk-size=1', '-o', 'name'), 'pod/db-1\npod/web-1\npod/web-2\n');
});

test('kubectl get -w sees an update made meanwhile', { skip }, async () => {
  const watcher = spawn('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), 'get', 'service', 'web', '-w', '-o', 'jsonpath={.metadata.labels.tier}{"\\n"}'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let seen = '';
  const gotIt = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kubectl get -w printed only: ${JSON.stringify(seen)}`)), 15_000);
    watcher.stdout.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('frontend')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  try {
    // the first line is the current object (no tier label); then change it
    while (!seen.includes('\n')) await new Promise((r) => setTimeout(r, 50));
    await ok('label', 'service', 'web', 'tier=frontend');
    await gotIt;
  } finally {
    watcher.kill();
  }
});

test('a stale update is refused with 409 Conflict, and errors are Status objects kubectl prints', { skip }, async () => {
  const stale = await ok('get', 'service', 'web', '-o', 'json');
  await ok('annotate', 'service', 'web', 'note=changed-meanwhile');
  const f = await file('stale.json', stale.replace('"tier": "frontend"', '"tier": "backend"'));
  const r = await kubectl('replace', '-f', f);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Error from server \(Conflict\): .*Operation cannot be fulfilled on services "web": the object has been modified/);
  assert.equal((await getYaml('service/web')).metadata.labels?.['tier'], 'frontend', 'the refused update changed nothing');
  const missing = await kubectl('get', 'service', 'nope');
  assert.match(missing.stderr, /Error from server \(NotFound\): services "nope" not found/);
  const again = await kubectl('create', '-f', await file('again.yaml', MANIFESTS.split('---')[0]!));
  assert.match(again.stderr, /Error from server \(AlreadyExists\).*services "web" already exists/);
  const bad = await kubectl('create', 'service', 'clusterip', 'Bad_Name', '--tcp=80:80');
  assert.match(bad.stderr, /Invalid value: "Bad_Name"/);
  const noNs = await kubectl('run', 'x', '-n', 'nowhere', '--image=x');
  assert.match(noNs.stderr, /Error from server \(NotFound\): namespaces "nowhere" not found/);
});

test('server-side apply: create-or-merge per field manager, conflicts unless forced, dropped fields removed', { skip }, async () => {
  const cfg = (labels: string): string =>
    `apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceImport\nmetadata:\n  name: web\n  labels: {${labels}}\nspec:\n  type: ClusterSetIP\n  ports: [{port: 80, protocol: TCP}]\n`;
  const rvBefore = api.store.resourceVersion;
  assert.match(
    await ok('apply', '--server-side', '--field-manager=meshfed-agent', '-f', await file('si1.yaml', cfg('owner: meshfed, stale: "yes"'))),
    /serviceimport.multicluster.x-k8s.io\/web serverside-applied/,
  );
  assert.equal(api.store.resourceVersion, rvBefore + 1, 'an apply that creates is one write');
  await ok('apply', '--server-side', '--field-manager=meshfed-agent', '-f', await file('si2.yaml', cfg('owner: meshfed')));
  // managedFields read from the server itself: kubectl versions differ in whether -o yaml shows them
  const raw = async (): Promise<Obj> => (await (await fetch(`${api.url}/apis/multicluster.x-k8s.io/v1alpha1/namespaces/default/serviceimports/web`)).json()) as Obj;
  let si = await raw();
  assert.deepEqual(si.metadata.labels, { owner: 'meshfed' }, 'a label the manager stopped applying is removed');
  const managed = (si.metadata as { managedFields?: { manager: string; operation: string }[] }).managedFields ?? [];
  assert.deepEqual(
    managed.map((m) => [m.manager, m.operation]),
    [['meshfed-agent', 'Apply']],
  );
  const clash = await kubectl('apply', '--server-side', '--field-manager=someone-else', '-f', await file('si3.yaml', cfg('owner: other')));
  assert.equal(clash.code, 1);
  assert.match(clash.stderr, /conflict with "meshfed-agent"/);
  await ok('apply', '--server-side', '--force-conflicts', '--field-manager=someone-else', '-f', await file('si3.yaml', cfg('owner: other')));
  si = await getYaml('serviceimport/web');
  assert.equal(si.metadata.labels?.['owner'], 'other');
});

test('the status subresource: /status changes only status, the main resource keeps it', { skip }, async () => {
  const statusPatch = '{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}';
  if ((await ok('patch', '--help')).includes('--subresource')) await ok('patch', 'pod', 'web-1', '--subresource=status', '--type=merge', '-p', statusPatch);
  else {
    // kubectl before 1.24 (Debian's 1.20) has no --subresource: the same request over HTTP
    const r = await fetch(`${api.url}/api/v1/namespaces/default/pods/web-1/status`, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: statusPatch });
    assert.equal(r.status, 200);
  }
  await ok('patch', 'pod', 'web-1', '--type=merge', '-p', '{"metadata":{"labels":{"version":"v2"}},"status":{"phase":"Failed"}}');
  const pod = await getYaml('pod/web-1');
  assert.equal((pod['status'] as { phase: string }).phase, 'Running');
  assert.equal(pod.metadata.labels?.['version'], 'v2');
});

test('kubectl delete removes objects; a get then says NotFound', { skip }, async () => {
  const f = await file('all.yaml', MANIFESTS);
  const out = await ok('delete', '-f', f);
  assert.match(out, /service "web" deleted/);
  assert.match(out, /node "node-a" deleted/);
  const r = await kubectl('get', 'pod', 'web-1');
  assert.match(r.stderr, /NotFound/);
  assert.equal(await ok('get', 'serviceexports', '-o', 'name'), '');
});

interface WatchEvent {
  type: string;
  object: { kind?: string; code?: number; reason?: string; metadata?: { name?: string; resourceVersion?: string } };
}

/** reads a watch stream until `until` says stop (or the stream ends) */
async function readWatch(path: string, until: (events: WatchEvent[]) => boolean, act?: () => Promise<void>): Promise<WatchEvent[]> {
  const ctl = new AbortController();
  const res = await fetch(`${api.url}${path}`, { signal: ctl.signal });
  assert.equal(res.status, 200);
  const events: WatchEvent[] = [];
  const reader = res.body!.getReader();
  let buf = '';
  const timer = setTimeout(() => ctl.abort(), 10_000);
  if (act) await act();
  try {
    while (!until(events)) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buf.slice(0, nl)) as WatchEvent);
        buf = buf.slice(nl + 1);
      }
    }
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
  return events;
}

test('watch: history replays from a version, bookmarks when asked, and a compacted version yields 410 Gone', { skip: false }, async () => {
  const before = api.store.resourceVersion;
  const f = await file('svc.yaml', MANIFESTS.split('---')[0]!.replace('name: web', 'name: watched'));
  if (HAVE_KUBECTL) await ok('apply', '-f', f);
  else await fetch(`${api.url}/api/v1/namespaces/default/services`, { method: 'POST', body: JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'watched' } }) });
  const replay = await readWatch(
    `/api/v1/namespaces/default/services?watch=1&resourceVersion=${before}&allowWatchBookmarks=true`,
    (e) => e.some((x) => x.type === 'BOOKMARK'),
    async () => api.bookmarkNow(),
  );
  assert.equal(replay[0]!.type, 'ADDED');
  assert.equal(replay[0]!.object.metadata?.name, 'watched');
  assert.equal(replay.at(-1)!.object.metadata?.resourceVersion, String(api.store.resourceVersion), 'a bookmark carries the current version');

  api.compact();
  const gone = await readWatch(`/api/v1/namespaces/default/services?watch=1&resourceVersion=${before}`, (e) => e.length > 0);
  assert.equal(gone.length, 1);
  assert.equal(gone[0]!.type, 'ERROR');
  assert.equal(gone[0]!.object.kind, 'Status');
  assert.equal(gone[0]!.object.code, 410);
  assert.equal(gone[0]!.object.reason, 'Expired');
  // a re-list gives a version from which the watch works again
  const list = (await (await fetch(`${api.url}/api/v1/services`)).json()) as { metadata: { resourceVersion: string } };
  const fresh = await readWatch(
    `/api/v1/services?watch=true&resourceVersion=${list.metadata.resourceVersion}`,
    (e) => e.length > 0,
    async () => {
      await fetch(`${api.url}/api/v1/namespaces/default/services/watched`, { method: 'DELETE' });
    },
  );
  assert.equal(fresh[0]!.type, 'DELETED');
  assert.equal(fresh[0]!.object.metadata?.name, 'watched');
});

test('with a bearer token configured, a request without it is refused with a 401 Status', async () => {
  const secured = await KubeApiServer.start({ token: 'sekret' });
  try {
    const refused = await fetch(`${secured.url}/api/v1/namespaces`);
    assert.equal(refused.status, 401);
    assert.equal(((await refused.json()) as { reason: string }).reason, 'Unauthorized');
    const wrong = await fetch(`${secured.url}/api/v1/namespaces`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    const allowed = await fetch(`${secured.url}/api/v1/namespaces`, { headers: { authorization: 'Bearer sekret' } });
    assert.equal(allowed.status, 200);
    const names = ((await allowed.json()) as { items: { metadata: { name: string } }[] }).items.map((n) => n.metadata.name);
    assert.deepEqual(names, ['default', 'kube-public', 'kube-system']);
  } finally {
    await secured.close();
  }
});
