// End to end, three Kubernetes clusters: each cluster is a stand-in Kubernetes
// API server (test/helpers/kube-apiserver: no kube-apiserver can run here; its
// fidelity is proven with kubectl in kube-standin.test.ts) with an agent in
// Kubernetes mode (--kubernetes --kubeconfig), a real hub, real
// @grpc/grpc-js-xds servers and clients in their own processes, and the real
// kubectl writing and reading the clusters' objects as a user would.
//
// cluster1 marks helloworld global with Cilium's annotation, cluster2 with an MCS
// ServiceExport; cluster3 has no helloworld of its own and imports it: its
// agent writes the ServiceImport and EndpointSlices there.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { API_VERSION } from '../../src/api/index.js';
import { DEMO_CLUSTERS, HELLOWORLD_PORT, LocalFleet, clusterObject, type ServerHandle } from '../../src/demo/fleet.js';
import { KubeApiServer } from '../helpers/kube-apiserver/server.js';
import { Kubectl, KUBECTL_SKIP } from '../helpers/kubectl.js';
import { TickLog } from '../helpers/tick-log.js';
import { eventually as eventuallyFor } from '../helpers/eventually.js';

const eventually = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000) => eventuallyFor(what, probe, timeoutMs);

let fleet: LocalFleet;
let dir: string;
const apis = new Map<string, KubeApiServer>();
const kubectl = new Map<string, Kubectl>();
const servers = new Map<string, ServerHandle>();

const k = (cluster: string): Kubectl => kubectl.get(cluster)!;

/** Namespace, Node (with the cluster's zone) and, where given, the helloworld Service. */
function clusterManifests(cluster: (typeof DEMO_CLUSTERS)[number], service: 'cilium' | 'export' | 'none'): string {
  const docs = [
    `apiVersion: v1\nkind: Namespace\nmetadata: {name: sample}`,
    `apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n  labels: {topology.kubernetes.io/region: ${cluster.region}, topology.kubernetes.io/zone: ${cluster.zones[0]}}`,
  ];
  if (service !== 'none') {
    docs.push(
      [
        'apiVersion: v1',
        'kind: Service',
        'metadata:',
        '  name: helloworld',
        '  namespace: sample',
        ...(service === 'cilium' ? ['  annotations: {service.cilium.io/global: "true"}'] : []),
        'spec:',
        '  selector: {app: helloworld}',
        `  ports: [{name: grpc, port: ${HELLOWORLD_PORT}, targetPort: ${HELLOWORLD_PORT}, appProtocol: grpc}]`,
      ].join('\n'),
    );
  }
  if (service === 'export') docs.push('apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: helloworld, namespace: sample}');
  return docs.join('\n---\n') + '\n';
}

/** A Pod and its own EndpointSlice (its port differs from its siblings': the servers share 127.0.0.1). */
function podManifests(server: ServerHandle, version: string, ready = true): string {
  const port = server.address.split(':')[1];
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${server.name}
  namespace: sample
  labels: {app: helloworld, version: ${version}}
spec:
  serviceAccountName: helloworld
  nodeName: node-1
  containers: [{name: server, image: helloworld}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${server.name}
  namespace: sample
  labels: {kubernetes.io/service-name: helloworld, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}
addressType: IPv4
ports: [{name: grpc, port: ${port}, protocol: TCP}]
endpoints:
- addresses: [127.0.0.1]
  conditions: {ready: ${ready}, serving: ${ready}, terminating: false}
  nodeName: node-1
  targetRef: {kind: Pod, namespace: sample, name: ${server.name}}
`;
}

async function addServer(cluster: string, name: string, version: string): Promise<ServerHandle> {
  const s = await fleet.startServer(cluster, { name, version, register: false });
  servers.set(name, s);
  await k(cluster).apply(podManifests(s, version));
  return s;
}

async function client(cluster: string, name: string): Promise<TickLog> {
  const bootstrap = await fleet.bootstrap(cluster, 'sample', name, false);
  return new TickLog(fleet.startClient(cluster, bootstrap, { target: 'xds:///helloworld.sample', rate: 60, name }));
}

const skip = KUBECTL_SKIP;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'kube-mesh-'));
  fleet = await LocalFleet.create();
  await fleet.startHub();
  await fleet.apply([
    { apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { mtls: { mode: 'DISABLE' } } } /* plaintext: mTLS has its own tests */,
    ...DEMO_CLUSTERS.map(clusterObject),
  ]);
  const roles = ['cilium', 'export', 'none'] as const;
  for (const [i, c] of DEMO_CLUSTERS.entries()) {
    const api = await KubeApiServer.start({ historyLimit: 1000, bookmarkIntervalMs: 1000 });
    apis.set(c.name, api);
    const kc = join(dir, `${c.name}.kubeconfig`);
    await api.kubeconfig(kc);
    kubectl.set(c.name, new Kubectl(kc, dir));
    await k(c.name).apply(clusterManifests(c, roles[i]!));
  }
  await Promise.all(DEMO_CLUSTERS.map((c) => fleet.startAgent(c, { extraArgs: ['--kubernetes', '--kubeconfig', join(dir, `${c.name}.kubeconfig`)] })));
  await addServer('cluster1', 'helloworld-v1', 'v1');
  await addServer('cluster2', 'helloworld-v2', 'v2');
});

after(async () => {
  await fleet?.close();
  for (const a of apis.values()) await a.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Waits until the client's calls, over a few ticks, reach exactly these backends with no failure. */
async function reaches(log: TickLog, backends: string[], timeoutMs = 20_000): Promise<void> {
  const want = [...backends].sort().join(',');
  await log.waitFor(log.mark(), 3, (t) => t.failed === 0 && Object.keys(t.byBackend).sort().join(',') === want, timeoutMs);
}

let log: TickLog;

test('a client in cluster1 reaches the global service in both clusters that export it (Cilium annotation, ServiceExport)', { skip }, async () => {
  log = await client('cluster1', 'kube-client');
  await reaches(log, ['cluster1/v1', 'cluster2/v2']);
});

test('scaling up (a new Pod and EndpointSlice applied with kubectl) reaches the client', { skip }, async () => {
  await addServer('cluster2', 'helloworld-v2b', 'v2b');
  await reaches(log, ['cluster1/v1', 'cluster2/v2', 'cluster2/v2b']);
});

test('an endpoint that turns not-ready stops getting calls, with no failed call', { skip }, async () => {
  await k('cluster2').apply(podManifests(servers.get('helloworld-v2b')!, 'v2b', false));
  await reaches(log, ['cluster1/v1', 'cluster2/v2']);
});

test('cluster3 imports helloworld: kubectl shows the ServiceImport and EndpointSlices from both source clusters', { skip }, async () => {
  const imp = await eventually('ServiceImport in cluster3', async () => {
    const r = await k('cluster3').run(['get', 'serviceimport', 'helloworld', '-n', 'sample', '-o', 'yaml']);
    return r.code === 0 ? (parseYaml(r.stdout) as { spec: { type: string; ports: { port: number }[] } }) : undefined;
  });
  assert.equal(imp.spec.type, 'ClusterSetIP');
  assert.deepEqual(
    imp.spec.ports.map((p) => p.port),
    [HELLOWORLD_PORT],
  );
  const slices = await eventually('imported EndpointSlices in cluster3', async () => {
    const out = await k('cluster3').ok(['get', 'endpointslices', '-n', 'sample', '-l', 'multicluster.kubernetes.io/service-name=helloworld', '-o', 'yaml']);
    const items = (parseYaml(out) as { items: { metadata: { labels: Record<string, string> }; endpoints?: { conditions?: { ready?: boolean } }[] }[] }).items;
    const sources = new Set(items.map((s) => s.metadata.labels['multicluster.kubernetes.io/source-cluster']));
    return sources.has('cluster1') && sources.has('cluster2') ? items : undefined;
  });
  const ready = slices.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).length;
  assert.equal(ready, 2, 'the two ready endpoints (v1, v2); v2b is not ready');
  // The agent's discovery in cluster3 does not mistake its own imported slices for a local helloworld.
  const svcs = (await (await fleet.agentFetch('cluster3', '/v1/services')).json()) as { services: { name: string; parts: { cluster: string }[] }[] };
  const hw = svcs.services.find((s) => s.name === 'helloworld');
  assert.deepEqual(hw?.parts.map((p) => p.cluster).sort(), ['cluster1', 'cluster2']);
});

test("kubectl delete of cluster2's ServiceExport withdraws its endpoints: the client keeps to cluster1, and kubectl get -w in cluster3 sees the imported slices change", { skip }, async () => {
  // Watch cluster3's imported EndpointSlices as a user would, while cluster2 stops exporting.
  const watch = spawn('kubectl', [
    '--kubeconfig',
    k('cluster3').kubeconfig,
    'get',
    'endpointslices',
    '-n',
    'sample',
    '-l',
    'multicluster.kubernetes.io/source-cluster=cluster2',
    '-w',
    '--output-watch-events',
    '-o',
    'json',
  ]);
  let watched = '';
  watch.stdout.on('data', (d: Buffer) => (watched += d.toString()));
  try {
    await k('cluster2').ok(['delete', 'serviceexport', 'helloworld', '-n', 'sample']);
    await reaches(log, ['cluster1/v1']);
    await eventually('a DELETED event in kubectl get -w', async () => (/"type":\s*"DELETED"/.test(watched) ? true : undefined)).catch((e: unknown) => {
      throw new Error(`${String(e)}; kubectl printed: ${watched.slice(0, 2000)}`);
    });
  } finally {
    watch.kill();
  }
  await k('cluster2').apply(clusterManifests(DEMO_CLUSTERS[1]!, 'export'));
  await reaches(log, ['cluster1/v1', 'cluster2/v2']);
});

test('a 410 Gone in the middle of a watch loses no change (cluster2 made v2b ready while its watches were cut and the history compacted)', { skip }, async () => {
  const api = apis.get('cluster2')!;
  api.closeWatches();
  await k('cluster2').apply(podManifests(servers.get('helloworld-v2b')!, 'v2b', true));
  api.compact();
  api.closeWatches();
  await reaches(log, ['cluster1/v1', 'cluster2/v2', 'cluster2/v2b']);
});

test('an agent restart keeps serving: the client keeps calling with no failure, and the restarted agent rediscovers the same endpoints', { skip }, async () => {
  const mark = log.mark();
  await fleet.stopAgent('cluster1');
  await fleet.startAgent(DEMO_CLUSTERS[0]!, { extraArgs: ['--kubernetes', '--kubeconfig', join(dir, 'cluster1.kubeconfig')] });
  await reaches(log, ['cluster1/v1', 'cluster2/v2', 'cluster2/v2b']);
  const sum = log.since(mark);
  assert.equal(sum.failed, 0, JSON.stringify(sum.errors));
});
