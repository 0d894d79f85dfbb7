// The MCS importer (src/kube/mcs-importer.ts) against the stand-in Kubernetes
// API server (test/helpers/kube-apiserver: a stand-in, not Kubernetes; see
// docs/kubernetes.md), checked as a user would with the real `kubectl get -o
// yaml`: ServiceImports and EndpointSlices appear for what cluster3 imports, a
// change in the view reaches them, a service gone is garbage-collected,
// objects not meshfed's are never touched, a missing namespace is reported, an
// API server that goes away and comes back converges, and a ServiceExport gets
// its Conflict condition through /status. The importer reaches the API server
// through a TCP relay the test can stop, so "going away" keeps the server's
// state, as a restarted kube-apiserver keeps etcd's. Skipped, saying so, when
// kubectl is not installed (.ci/run installs it).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { federate } from '../../src/federation/federate.js';
import type { FederatedView } from '../../src/federation/types.js';
import type { Service, Workload } from '../../src/api/index.js';
import { McsImporter } from '../../src/kube/mcs-importer.js';
import { KubeApiServer } from '../helpers/kube-apiserver/server.js';
import { cluster, service, workload } from '../helpers/mesh-fixture.js';
import { eventually as eventuallyFor } from '../helpers/eventually.js';
import { KUBECTL_SKIP, Kubectl } from '../helpers/kubectl.js';

const eventually = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 8000) => eventuallyFor(what, probe, timeoutMs);

const skip = KUBECTL_SKIP;

const GRPC = { name: 'grpc', port: 8080, protocol: 'GRPC' as const };
const CLUSTERS = [cluster('cluster1', 'us-east1', ['us-east1-a']), cluster('cluster2', 'us-west1', ['us-west1-a']), cluster('cluster3', 'eu-west1', ['eu-west1-a'])];

let api: KubeApiServer;
let relay: Relay;
let dir: string;
let kubeconfig: string;
let importer: McsImporter;
let services: Service[];
let workloads: Workload[];
let view: FederatedView | undefined;

function refederate(): void {
  view = federate({ clusters: CLUSTERS, services, workloads });
}

/** A TCP relay to the API server that can be stopped and started on the same port. */
class Relay {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  constructor(private readonly target: number) {}
  async start(): Promise<void> {
    this.server = net.createServer((c) => {
      const up = net.connect(this.target, '127.0.0.1');
      for (const s of [c, up]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      c.pipe(up).pipe(c);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mcs-import-'));
  api = await KubeApiServer.start({ historyLimit: 1000 });
  kubeconfig = join(dir, 'kubeconfig');
  await api.kubeconfig(kubeconfig);
  relay = new Relay(api.port);
  await relay.start();
  const kc = new KubeConfig();
  kc.loadFromString((await api.kubeconfig()).replace(api.url, `http://127.0.0.1:${relay.port}`));
  await ok('create', 'namespace', 'sample');
  services = [service('cluster1', 'helloworld', 'sample', [GRPC]), service('cluster2', 'helloworld', 'sample', [GRPC]), service('cluster3', 'helloworld', 'sample', [GRPC])];
  workloads = [
    workload('cluster1', 'hw-1a', 'sample', 'helloworld', '10.1.0.1', { grpc: 50051 }),
    workload('cluster2', 'hw-2a', 'sample', 'helloworld', '10.2.0.1', { grpc: 50051 }, { health: 'DRAINING' }),
    workload('cluster3', 'hw-3a', 'sample', 'helloworld', '10.3.0.1', { grpc: 50051 }),
  ];
  refederate();
  importer = new McsImporter({ kubeConfig: kc, cluster: 'cluster3', view: () => view, debounceMs: 20, resyncMs: 60_000, backoffMs: 50, maxBackoffMs: 200 });
  importer.start();
});

after(async () => {
  await importer?.stop();
  await relay?.stop().catch(() => undefined);
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const kubectl = (...args: string[]) => new Kubectl(kubeconfig, dir).run(args);
const ok = (...args: string[]) => new Kubectl(kubeconfig, dir).ok(args);

interface Obj {
  kind: string;
  metadata: { name: string; namespace: string; labels?: Record<string, string>; resourceVersion: string };
  [k: string]: unknown;
}

/** `kubectl get serviceimports,endpointslices -n sample -o yaml`, as objects. */
async function getImported(): Promise<Obj[]> {
  const doc = parseYaml(await ok('get', 'serviceimports,endpointslices', '-n', 'sample', '-o', 'yaml')) as { items: Obj[] };
  return doc.items;
}

const sliceEndpoints = (items: Obj[], source: string): unknown[] =>
  items.filter((o) => o.kind === 'EndpointSlice' && o.metadata.labels?.['multicluster.kubernetes.io/source-cluster'] === source).flatMap((o) => o['endpoints'] as unknown[]);

describe('MCS importer against the stand-in API server, seen with kubectl', { skip }, () => {
  it('writes the ServiceImport and one EndpointSlice set per source cluster', async () => {
    const items = await eventually('the ServiceImport and its slices', async () => {
      const items = await getImported();
      return items.filter((o) => o.kind === 'EndpointSlice').length === 2 ? items : undefined;
    });
    const si = items.find((o) => o.kind === 'ServiceImport')!;
    assert.equal(si.metadata.name, 'helloworld');
    assert.deepEqual(si['spec'], { type: 'ClusterSetIP', ports: [{ name: 'grpc', protocol: 'TCP', appProtocol: 'grpc', port: 8080 }] });
    assert.deepEqual(si['status'], { clusters: [{ cluster: 'cluster1' }, { cluster: 'cluster2' }, { cluster: 'cluster3' }] });
    assert.equal(si.metadata.labels?.['app.kubernetes.io/managed-by'], 'meshfed');
    const slices = items.filter((o) => o.kind === 'EndpointSlice');
    for (const s of slices) {
      assert.equal(s.metadata.labels?.['multicluster.kubernetes.io/service-name'], 'helloworld');
      assert.equal(s.metadata.labels?.['endpointslice.kubernetes.io/managed-by'], 'meshfed.io');
      assert.equal(s.metadata.labels?.['meshfed.io/agent-cluster'], 'cluster3');
      assert.equal(s['addressType'], 'IPv4');
      assert.deepEqual(s['ports'], [{ name: 'grpc', port: 50051, protocol: 'TCP', appProtocol: 'grpc' }]);
    }
    assert.deepEqual(sliceEndpoints(items, 'cluster2'), [{ addresses: ['10.2.0.1'], conditions: { ready: false, serving: true, terminating: true }, zone: 'us-west1-a' }]);
    // cluster3's own endpoints are in its own Service's slices, not in an import.
    assert.deepEqual(sliceEndpoints(items, 'cluster3'), []);
    const st = importer.status();
    assert.ok(st.lastSuccess && !st.lastError, JSON.stringify(st));
    assert.deepEqual(st.objects, { serviceImports: 1, endpointSlices: 2, serviceExports: 0 });
  });

  it('a quiet reconcile writes nothing', async () => {
    const before = (await getImported()).map((o) => `${o.metadata.name}@${o.metadata.resourceVersion}`);
    await importer.reconcileNow();
    assert.equal(importer.status().lastReconcile?.applied, 0);
    assert.deepEqual(
      (await getImported()).map((o) => `${o.metadata.name}@${o.metadata.resourceVersion}`),
      before,
    );
  });

  it('a change in the view updates the slices', async () => {
    workloads.push(workload('cluster1', 'hw-1b', 'sample', 'helloworld', '10.1.0.2', { grpc: 50051 }, { health: 'UNHEALTHY' }));
    refederate();
    importer.update();
    const eps = await eventually('the new endpoint', async () => {
      const eps = sliceEndpoints(await getImported(), 'cluster1');
      return eps.length === 2 ? eps : undefined;
    });
    assert.deepEqual(eps[1], { addresses: ['10.1.0.2'], conditions: { ready: false, serving: false, terminating: false }, zone: 'us-east1-a' });
  });

  it('never touches objects that are not meshfed’s, and reports a name they take', async () => {
    const foreign = `apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceImport
metadata: {name: echo, namespace: sample}
spec: {type: ClusterSetIP, ports: [{port: 1, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: helloworld-other
  namespace: sample
  labels: {multicluster.kubernetes.io/service-name: helloworld, multicluster.kubernetes.io/source-cluster: elsewhere}
addressType: IPv4
endpoints: [{addresses: [10.9.9.9]}]
ports: [{name: grpc, port: 1, protocol: TCP}]
`;
    await writeFile(join(dir, 'foreign.yaml'), foreign);
    await ok('apply', '-f', join(dir, 'foreign.yaml'));
    const rv = async (): Promise<string[]> => (await getImported()).filter((o) => o.metadata.name === 'echo' || o.metadata.name === 'helloworld-other').map((o) => o.metadata.resourceVersion);
    const before = await rv();
    assert.equal(before.length, 2);
    services.push(service('cluster1', 'echo', 'sample', [GRPC]));
    workloads.push(workload('cluster1', 'echo-1', 'sample', 'echo', '10.1.5.1', { grpc: 8080 }));
    refederate();
    await importer.reconcileNow();
    assert.deepEqual(await rv(), before);
    const st = importer.status();
    assert.ok(
      st.skipped.some((s) => s.name === 'echo' && /ServiceImport sample\/echo exists and is not meshfed's/.test(s.reason)),
      JSON.stringify(st.skipped),
    );
    // No slices for a service whose ServiceImport is someone else's.
    assert.ok(!(await getImported()).some((o) => o.kind === 'EndpointSlice' && o.metadata.labels?.['multicluster.kubernetes.io/service-name'] === 'echo'));
    await ok('delete', 'serviceimport', 'echo', '-n', 'sample');
    await importer.reconcileNow();
    assert.ok((await getImported()).some((o) => o.kind === 'ServiceImport' && o.metadata.name === 'echo' && o.metadata.labels?.['app.kubernetes.io/managed-by'] === 'meshfed'));
  });

  it('a service gone is garbage-collected; the foreign slice stays', async () => {
    services = services.filter((s) => s.metadata.name !== 'echo');
    workloads = workloads.filter((w) => w.spec.service !== 'echo');
    refederate();
    importer.update();
    await eventually('echo collected', async () => ((await getImported()).some((o) => o.metadata.name === 'echo' || o.metadata.name.startsWith('echo-')) ? undefined : true));
    // helloworld's slices stay; the user's slice with the same service-name label too.
    const names = (await getImported()).map((o) => o.metadata.name);
    assert.ok(names.includes('helloworld-other'));
    assert.ok(names.includes('helloworld'));
  });

  it('a namespace missing in this cluster is reported, the rest still written', async () => {
    services.push(service('cluster2', 'billing', 'payments', [GRPC]));
    workloads.push(workload('cluster2', 'billing-1', 'payments', 'billing', '10.2.4.1', { grpc: 8080 }));
    refederate();
    await importer.reconcileNow();
    const st = importer.status();
    assert.equal(st.lastError, undefined);
    assert.ok(
      st.skipped.some((s) => s.namespace === 'payments' && /namespace "payments" does not exist in cluster cluster3/.test(s.reason)),
      JSON.stringify(st.skipped),
    );
    const r = await kubectl('get', 'namespace', 'payments');
    assert.notEqual(r.code, 0, 'meshfed does not create namespaces');
    // Once the namespace exists, the import follows.
    await ok('create', 'namespace', 'payments');
    await importer.reconcileNow();
    assert.match(await ok('get', 'serviceimports', '-n', 'payments', '-o', 'name'), /serviceimport.multicluster.x-k8s.io\/billing/);
  });

  it('the ServiceExport gets its Conflict condition through /status', async () => {
    await writeFile(join(dir, 'export.yaml'), 'apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: conflicted, namespace: sample}\n');
    await ok('apply', '-f', join(dir, 'export.yaml'));
    services.push(
      service('cluster1', 'conflicted', 'sample', [{ name: 'grpc', port: 7000, protocol: 'GRPC' }], { since: '2024-01-01T00:00:00Z' }),
      service('cluster3', 'conflicted', 'sample', [{ name: 'grpc', port: 7001, protocol: 'GRPC' }], { since: '2024-02-01T00:00:00Z' }),
    );
    refederate();
    importer.update();
    const conditions = await eventually('the Conflict condition', async () => {
      const se = parseYaml(await ok('get', 'serviceexport', 'conflicted', '-n', 'sample', '-o', 'yaml')) as {
        status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
      };
      return se.status?.conditions?.length ? se.status.conditions : undefined;
    });
    const conflict = conditions.find((c) => c.type === 'Conflict')!;
    assert.equal(conflict.status, 'True');
    assert.equal(conflict.reason, 'PortConflict');
    assert.match(conflict.message, /^spec\.ports: .*uses cluster1's grpc:7000\/GRPC \(oldest export wins\)/);
    assert.equal(conditions.find((c) => c.type === 'Valid')!.status, 'True');
    // Written by the status subresource under meshfed's field manager.
    const managed = parseYaml(await ok('get', 'serviceexport', 'conflicted', '-n', 'sample', '-o', 'yaml', '--show-managed-fields')) as {
      metadata: { managedFields: { manager: string; subresource?: string }[] };
    };
    assert.ok(
      managed.metadata.managedFields.some((m) => m.manager === 'meshfed-agent' && m.subresource === 'status'),
      JSON.stringify(managed.metadata.managedFields),
    );
  });

  it('the API server going away is reported with since when; coming back converges', async () => {
    await relay.stop();
    workloads.push(workload('cluster2', 'hw-2b', 'sample', 'helloworld', '10.2.0.2', { grpc: 50051 }));
    refederate();
    importer.update();
    const st = await eventually('the failure in the status', () => Promise.resolve(importer.status().lastError ? importer.status() : undefined));
    assert.match(st.lastError!, /127\.0\.0\.1/);
    assert.ok(st.failingSince);
    await relay.start();
    await eventually('recovery', async () => {
      const s = importer.status();
      return !s.lastError && sliceEndpoints(await getImported(), 'cluster2').length === 2 ? true : undefined;
    });
    assert.equal(importer.status().failingSince, undefined);
  });

  it('writes nothing and deletes nothing while the view is not complete', async () => {
    const before = (await getImported()).length;
    view = undefined;
    await importer.reconcileNow();
    assert.equal((await getImported()).length, before);
    assert.match(importer.status().waiting ?? '', /complete federated view/);
    refederate();
  });
});
