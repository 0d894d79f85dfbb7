// End to end, Kubernetes mode: a real hub and a real agent process with
// --kubernetes over the stand-in Kubernetes API server
// (test/helpers/kube-apiserver, a stand-in, not Kubernetes; its fidelity is
// proven with real kubectl in kube-standin.test.ts). The Pods' IPs are
// 127.0.0.2 and 127.0.0.3, where real @grpc/grpc-js-xds helloworld servers
// listen; a real grpc-js-xds client dials xds:///helloworld.sample. Scaling is
// an EndpointSlice change made with real `kubectl apply` (over HTTP when
// kubectl is not installed, saying so).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { API_VERSION } from '../../src/api/index.js';
import { LocalFleet, clusterObject, type ClusterSpec } from '../../src/demo/fleet.js';
import { freePort, sampleProgram } from '../../src/demo/processes.js';
import { KubeApiServer } from '../helpers/kube-apiserver/server.js';
import { TickLog } from '../helpers/tick-log.js';
import { HAVE_KUBECTL } from '../helpers/kubectl.js';

const CLUSTER: ClusterSpec = { name: 'cluster1', network: 'net1', region: 'us-east1', zones: ['us-east1-a', 'us-east1-b'] };

let fleet: LocalFleet;
let api: KubeApiServer;
let kubeconfig: string;
const ports: number[] = [];

// One slice per Pod, each with its Pod's port: grpc-js-xds 1.14's server listens on the port
// on every address (it drops the host), so two servers cannot share a port on 127.0.0.2 and
// 127.0.0.3; a Service's slices may carry different ports (a named targetPort), so this is real.
const slice = (v: number, ready = true) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `helloworld-v${v}`, namespace: 'sample', labels: { 'kubernetes.io/service-name': 'helloworld', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
  addressType: 'IPv4',
  ports: [{ name: 'grpc', port: ports[v - 1], protocol: 'TCP' }],
  endpoints: [
    {
      addresses: [`127.0.0.${v + 1}`],
      conditions: { ready, serving: ready, terminating: false },
      nodeName: v === 1 ? 'node-a' : 'node-b',
      targetRef: { kind: 'Pod', name: `helloworld-v${v}`, namespace: 'sample' },
    },
  ],
});

async function kubectlApply(obj: unknown): Promise<void> {
  const file = join(fleet.dir, `obj-${Date.now()}.json`);
  await writeFile(file, JSON.stringify(obj));
  if (!HAVE_KUBECTL) {
    const o = obj as { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } };
    const plural = { Namespace: 'namespaces', Node: 'nodes', Pod: 'pods', Service: 'services', EndpointSlice: 'endpointslices' }[o.kind]!;
    const base = o.apiVersion === 'v1' ? '/api/v1' : `/apis/${o.apiVersion}`;
    const path = `${base}${o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : ''}/${plural}/${o.metadata.name}?fieldManager=kubectl&force=true`;
    const r = await fetch(api.url + path, { method: 'PATCH', headers: { 'content-type': 'application/apply-patch+yaml' }, body: JSON.stringify(obj) });
    assert.ok(r.ok, `${path}: ${r.status}`);
    return;
  }
  await new Promise<void>((resolve, reject) =>
    execFile('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(fleet.dir, 'kube-cache'), 'apply', '-f', file], { timeout: 20_000 }, (err, _out, stderr) =>
      err ? reject(new Error(`kubectl apply: ${stderr}`)) : resolve(),
    ),
  );
}

before(async () => {
  fleet = await LocalFleet.create();
  api = await KubeApiServer.start({ bookmarkIntervalMs: 1000 });
  kubeconfig = join(fleet.dir, 'kubeconfig');
  // client-node 1.x refuses plain http unless TLS verification is off (the stand-in speaks http)
  await writeFile(kubeconfig, (await api.kubeconfig()).replace(`    server: ${api.url}`, `    server: ${api.url}\n    insecure-skip-tls-verify: true`));
  ports.push(await freePort(), await freePort());
  await fleet.startHub();
  await fleet.apply([{ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { mtls: { mode: 'DISABLE' } } }, clusterObject(CLUSTER)]);
  await kubectlApply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'sample' } });
  for (const [n, zone] of [
    ['node-a', 'us-east1-a'],
    ['node-b', 'us-east1-b'],
  ] as const) {
    await kubectlApply({ apiVersion: 'v1', kind: 'Node', metadata: { name: n, labels: { 'topology.kubernetes.io/zone': zone, 'topology.kubernetes.io/region': 'us-east1' } } });
  }
  for (const v of [1, 2]) {
    await kubectlApply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `helloworld-v${v}`, namespace: 'sample', labels: { app: 'helloworld', version: `v${v}` } },
      spec: { nodeName: v === 1 ? 'node-a' : 'node-b', serviceAccountName: 'helloworld', containers: [{ name: 'server', image: 'helloworld' }] },
    });
  }
  await kubectlApply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'helloworld', namespace: 'sample', annotations: { 'service.cilium.io/global': 'true' } },
    spec: { selector: { app: 'helloworld' }, ports: [{ name: 'grpc', port: 50051, targetPort: 'grpc', appProtocol: 'grpc' }] },
  });
  await kubectlApply(slice(1));
  await fleet.startAgent(CLUSTER, { extraArgs: ['--kubernetes', '--kubeconfig', kubeconfig] });
  // the Pods' servers: one per loopback IP, the same port (an EndpointSlice has one port per name)
  for (const v of [1, 2]) {
    const name = `helloworld-v${v}`;
    const bootstrap = await fleet.bootstrap(CLUSTER.name, 'sample', name, true);
    const child = fleet.procs.start(
      `server-${name}`,
      [sampleProgram('server'), '--address', `127.0.0.${v + 1}`, '--port', String(ports[v - 1]), '--cluster', CLUSTER.name, '--version', `v${v}`, '--name', name],
      { GRPC_XDS_BOOTSTRAP_CONFIG: bootstrap },
    );
    await child.waitEvent((e) => e.event === 'serving');
  }
});

after(async () => {
  await fleet?.close();
  await api?.close();
});

test('an agent in Kubernetes mode serves Pods from EndpointSlices to a real xDS client; scaling with kubectl apply reaches it', async (t) => {
  if (!HAVE_KUBECTL) t.diagnostic('kubectl is not installed: objects are applied over HTTP instead');
  await fleet.waitAgent(CLUSTER.name, (s) => s.discovery.kubernetes?.synced === true && s.discovery.kubernetes.counts.workloads === 1);
  const st = (await fleet.agentStatus(CLUSTER.name)).discovery.kubernetes!;
  assert.equal(st.connected, true);
  assert.deepEqual(st.counts, { services: 1, exported: 1, workloads: 1 });
  const bootstrap = await fleet.bootstrap(CLUSTER.name, 'sample', 'client', false);
  const log = new TickLog(fleet.startClient(CLUSTER.name, bootstrap, { target: 'xds:///helloworld.sample', rate: 40, name: 'client' }));
  await log.waitFor(0, 2, (x) => x.ok > 0 && x.failed === 0);
  const one = await log.ticksAfter(log.mark(), 2);
  assert.deepEqual(Object.keys(one.byBackend), ['cluster1/v1'], 'only the one endpoint of the slice');

  await kubectlApply(slice(2));
  const ms = await log.waitFor(log.mark(), 2, (x) => (x.byBackend['cluster1/v2'] ?? 0) > 0 && (x.byBackend['cluster1/v1'] ?? 0) > 0 && x.failed === 0);
  t.diagnostic(`a second EndpointSlice -> the client calls both within ~${ms} ms`);
  const both = await log.ticksAfter(log.mark(), 3);
  assert.equal(both.failed, 0, JSON.stringify(both.errors));
  assert.ok((both.byBackend['cluster1/v2'] ?? 0) > both.ok * 0.2, `v2 gets a share: ${JSON.stringify(both.byBackend)}`);

  // a Pod that turns not-ready stops getting calls
  await kubectlApply(slice(1, false));
  await log.waitFor(log.mark(), 2, (x) => x.ok > 0 && (x.byBackend['cluster1/v1'] ?? 0) === 0);
});
