// The Kubernetes discovery source against the stand-in Kubernetes API server
// (test/helpers/kube-apiserver, a stand-in, not Kubernetes; its fidelity is
// proven with real kubectl in test/e2e/kube-standin.test.ts), reached through a
// TCP proxy so the server can go away and come back at the same address.
// Objects are written over HTTP (server-side apply) as a controller would. The
// source runs real client-node informers: list + watch, bookmarks, 410 Gone.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeFile } from 'node:fs/promises';
import type { Service, Workload } from '../../src/api/index.js';
import { exportRules } from '../../src/discovery/kubernetes/export.js';
import { protocolOf } from '../../src/discovery/kubernetes/mapping.js';
import { KubernetesSource } from '../../src/discovery/kubernetes/source.js';
import type { DiscoveredState, DiscoveryDelta } from '../../src/discovery/source.js';
import { loadKubeConfig } from '../../src/kube/config.js';
import { kubeError } from '../../src/kube/errors.js';
import { KubeApiServer } from '../helpers/kube-apiserver/server.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kube-disc-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function kubeconfigFor(api: KubeApiServer, url: string, name: string): Promise<string> {
  const file = join(dir, name);
  // client-node 1.x refuses plain http unless TLS verification is off (the stand-in speaks http)
  await writeFile(file, (await api.kubeconfig()).replace(`    server: ${api.url}`, `    server: ${url}\n    insecure-skip-tls-verify: true`));
  return file;
}

/** Server-side apply of one object (create or update), as a controller writes. */
async function apply(url: string, obj: Record<string, unknown>): Promise<void> {
  const apiVersion = String(obj['apiVersion']);
  const meta = obj['metadata'] as { name: string; namespace?: string };
  const plural: Record<string, string> = { Service: 'services', Pod: 'pods', Node: 'nodes', Namespace: 'namespaces', EndpointSlice: 'endpointslices', ServiceExport: 'serviceexports' };
  const base = apiVersion === 'v1' ? '/api/v1' : `/apis/${apiVersion}`;
  const path = `${base}${meta.namespace ? `/namespaces/${meta.namespace}` : ''}/${plural[String(obj['kind'])]}/${meta.name}?fieldManager=test&force=true`;
  const res = await fetch(url + path, { method: 'PATCH', headers: { 'content-type': 'application/apply-patch+yaml' }, body: JSON.stringify(obj) });
  assert.ok(res.ok, `apply ${path}: ${res.status} ${await res.text()}`);
}

async function del(url: string, path: string): Promise<void> {
  const res = await fetch(url + path, { method: 'DELETE' });
  assert.ok(res.ok, `delete ${path}: ${res.status}`);
}

const node = (name: string, zone: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'topology.kubernetes.io/zone': zone, 'topology.kubernetes.io/region': 'us-east1' } } });
const pod = (ns: string, name: string, nodeName: string, labels: Record<string, string>, sa = 'helloworld') => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, labels },
  spec: { nodeName, serviceAccountName: sa, containers: [{ name: 'app', image: 'x' }] },
});
const svc = (ns: string, name: string, annotations: Record<string, string> = {}, ports: unknown[] = [{ name: 'grpc', port: 8080, appProtocol: 'grpc' }]) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: ns, annotations },
  spec: { selector: { app: name }, ports },
});
type Ep = { ip: string; pod?: string; node?: string; ready?: boolean; serving?: boolean; terminating?: boolean };
const slice = (ns: string, name: string, service: string, eps: Ep[], extraLabels: Record<string, string> = {}) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io', ...extraLabels } },
  addressType: 'IPv4',
  ports: [{ name: 'grpc', port: 50051, protocol: 'TCP' }],
  endpoints: eps.map((e) => ({
    addresses: [e.ip],
    conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
    ...(e.node ? { nodeName: e.node } : {}),
    ...(e.pod ? { targetRef: { kind: 'Pod', name: e.pod, namespace: ns } } : {}),
  })),
});

async function until<T>(what: string, f: () => T | undefined | false, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

class Recorder {
  state: DiscoveredState = { services: [], workloads: [] };
  deltas: DiscoveryDelta[] = [];
  on = (s: DiscoveredState, d?: DiscoveryDelta): void => {
    this.state = s;
    if (d) this.deltas.push(d);
  };
  service(ns: string, name: string): Service | undefined {
    return this.state.services.find((s) => s.metadata.namespace === ns && s.metadata.name === name);
  }
  workloads(ns: string, service: string): Workload[] {
    return this.state.workloads.filter((w) => w.metadata.namespace === ns && w.spec.service === service).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  }
}

describe('export rules (pure)', () => {
  const rule = (annotations: Record<string, string>, serviceExport = false, namespaceAnnotations?: Record<string, string>) =>
    exportRules({ namespace: 'shop', name: 'cart', annotations, serviceExport, namespaceAnnotations });
  it('exports with a ServiceExport, meshfed.io/export, both Cilium global annotations, or the namespace default; meshfed.io/export "false" wins', () => {
    assert.equal(rule({}).exported, false, 'local unless exported');
    assert.equal(rule({}, true).exported, true);
    assert.equal(rule({ 'meshfed.io/export': 'true' }).exported, true);
    assert.equal(rule({ 'service.cilium.io/global': 'true' }).exported, true);
    assert.equal(rule({ 'io.cilium/global-service': 'True' }).exported, true, 'case-insensitive, as Cilium');
    assert.equal(rule({ 'service.cilium.io/global': 'false' }).exported, false);
    assert.equal(rule({}, false, { 'meshfed.io/export': 'true' }).exported, true);
    assert.equal(rule({ 'meshfed.io/export': 'false' }, true).exported, false);
    assert.equal(rule({ 'meshfed.io/export': 'false' }, false, { 'meshfed.io/export': 'true' }).exported, false);
  });
  it('shared "false" keeps an exported service to its cluster; affinity local|remote|none (both spellings)', () => {
    assert.equal(rule({ 'service.cilium.io/global': 'true', 'service.cilium.io/shared': 'false' }).shared, false);
    assert.equal(rule({ 'service.cilium.io/global': 'true', 'service.cilium.io/shared': 'true' }).shared, undefined);
    assert.equal(rule({ 'service.cilium.io/shared': 'false' }).shared, undefined, 'meaningless on a local service');
    assert.equal(rule({ 'service.cilium.io/affinity': 'remote' }).affinity, 'remote');
    assert.equal(rule({ 'io.cilium/service-affinity': 'Local' }).affinity, 'local');
    assert.equal(rule({ 'service.cilium.io/affinity': 'none' }).affinity, 'none');
  });
  it('a malformed value is a problem naming object, field and value, and is ignored', () => {
    const r = rule({ 'service.cilium.io/affinity': 'sideways', 'service.cilium.io/global': 'yes' });
    assert.equal(r.affinity, undefined);
    assert.equal(r.exported, false);
    assert.deepEqual(
      r.problems.map((p) => [p.object.name, p.field, p.value, p.reason]),
      [
        ['cart', 'metadata.annotations[service.cilium.io/global]', 'yes', 'InvalidAnnotation'],
        ['cart', 'metadata.annotations[service.cilium.io/affinity]', 'sideways', 'InvalidAnnotation'],
      ],
    );
    assert.match(r.problems[1]!.message, /Service shop\/cart: annotation service.cilium.io\/affinity is "sideways"; expected "local" or "remote" or "none"/);
  });
  it('port protocols: appProtocol, then the port name prefix, else TCP', () => {
    assert.equal(protocolOf({ appProtocol: 'kubernetes.io/h2c' }), 'GRPC');
    assert.equal(protocolOf({ appProtocol: 'grpc' }), 'GRPC');
    assert.equal(protocolOf({ appProtocol: 'http' }), 'HTTP');
    assert.equal(protocolOf({ appProtocol: 'mysql', name: 'grpc' }), 'TCP');
    assert.equal(protocolOf({ name: 'grpc-web' }), 'GRPC');
    assert.equal(protocolOf({ name: 'http' }), 'HTTP');
    assert.equal(protocolOf({ name: 'db' }), 'TCP');
  });
  it('kubeError: a 403 names the permission and where to grant it', () => {
    const e = kubeError(
      { code: 403, body: JSON.stringify({ kind: 'Status', code: 403, reason: 'Forbidden', message: 'pods is forbidden: ...' }) },
      { verb: 'list', group: '', resource: 'pods', namespace: 'shop' },
    );
    assert.equal(e.code, 'forbidden');
    assert.match(e.message, /cannot list pods in API group "" in namespace "shop".*grant "list" on "pods" \(apiGroups: \[""\]\) in the agent's ClusterRole/);
  });
});

describe('KubernetesSource over the stand-in', () => {
  let api: KubeApiServer;
  let proxy: TcpProxy;
  let source: KubernetesSource;
  const rec = new Recorder();
  let url: string;

  before(async () => {
    api = await KubeApiServer.start({ historyLimit: 1000, bookmarkIntervalMs: 200 });
    proxy = await TcpProxy.start(api.port);
    url = api.url;
    await apply(url, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    await apply(url, node('node-a', 'us-east1-a'));
    await apply(url, node('node-b', 'us-east1-b'));
    await apply(url, pod('shop', 'cart-1', 'node-a', { app: 'cart', version: 'v1' }));
    await apply(url, pod('shop', 'cart-2', 'node-b', { app: 'cart', version: 'v2' }));
    await apply(url, pod('shop', 'cart-3', 'node-b', { app: 'cart', version: 'v2' }));
    await apply(url, svc('shop', 'cart', { 'service.cilium.io/global': 'true', 'service.cilium.io/affinity': 'local' }));
    await apply(
      url,
      slice('shop', 'cart-abc', 'cart', [
        { ip: '10.0.0.1', pod: 'cart-1', node: 'node-a' },
        { ip: '10.0.0.2', pod: 'cart-2', node: 'node-b', ready: false, serving: true, terminating: true },
        { ip: '10.0.0.3', pod: 'cart-3', node: 'node-b', ready: false, serving: false },
      ]),
    );
    // the agent's own slices for an imported service: never read back
    await apply(url, slice('shop', 'cart-imported', 'cart', [{ ip: '10.9.9.9' }], { 'endpointslice.kubernetes.io/managed-by': 'meshfed.io' }));
    await apply(url, svc('kube-system', 'dns'));
    const kc = loadKubeConfig({ kubeconfig: await kubeconfigFor(api, proxy.url, 'kubeconfig') });
    source = new KubernetesSource({ cluster: 'c1', kubeConfig: kc, retryMinMs: 50, retryMaxMs: 200 });
    await source.start(rec.on);
  });

  after(async () => {
    await source?.stop();
    await proxy?.close();
    await api?.close();
  });

  it('maps a Service and its EndpointSlice: health conditions, Pod labels, service account, Node zone; skips system namespaces and meshfed-managed slices', () => {
    assert.equal(source.status().synced, true);
    const s = rec.service('shop', 'cart')!;
    assert.deepEqual(s.spec, { cluster: 'c1', ports: [{ name: 'grpc', port: 8080, protocol: 'GRPC' }], exported: true, affinity: 'local' });
    const ws = rec.workloads('shop', 'cart');
    assert.deepEqual(
      ws.map((w) => [w.metadata.name, w.spec.address, w.spec.ports['grpc'], w.spec.health, w.spec.zone, w.spec.serviceAccount, w.metadata.labels?.['version']]),
      [
        ['cart-1', '10.0.0.1', 50051, 'HEALTHY', 'us-east1-a', 'helloworld', 'v1'],
        ['cart-2', '10.0.0.2', 50051, 'DRAINING', 'us-east1-b', 'helloworld', 'v2'],
        ['cart-3', '10.0.0.3', 50051, 'UNHEALTHY', 'us-east1-b', 'helloworld', 'v2'],
      ],
    );
    assert.equal(rec.service('kube-system', 'dns'), undefined);
    assert.deepEqual(source.status().topology, { regions: ['us-east1'], zones: ['us-east1-a', 'us-east1-b'] });
    assert.equal(source.current().workloads.length, 3);
  });

  it('a Node relabel changes the zone of the workloads on it, and only their service is recomputed', async () => {
    rec.deltas = [];
    await apply(url, node('node-a', 'us-east1-c'));
    await until('zone change', () => rec.workloads('shop', 'cart').find((w) => w.metadata.name === 'cart-1')?.spec.zone === 'us-east1-c');
    const d = rec.deltas.flatMap((x) => x.upserts);
    assert.deepEqual(
      d.map((o) => o.metadata.name),
      ['cart-1'],
      'one workload changed, nothing else re-sent',
    );
  });

  it('a ServiceExport exports; deleting it makes the Service local again', async () => {
    await apply(url, svc('shop', 'orders'));
    await until('orders local', () => rec.service('shop', 'orders')?.spec.exported === false);
    await apply(url, { apiVersion: 'multicluster.x-k8s.io/v1alpha1', kind: 'ServiceExport', metadata: { name: 'orders', namespace: 'shop' } });
    await until('orders exported', () => rec.service('shop', 'orders')?.spec.exported === true);
    await del(url, '/apis/multicluster.x-k8s.io/v1alpha1/namespaces/shop/serviceexports/orders');
    await until('orders local again', () => rec.service('shop', 'orders')?.spec.exported === false);
    await apply(url, svc('shop', 'orders', { 'service.cilium.io/global': 'true', 'service.cilium.io/shared': 'false' }));
    await until('orders global, not shared', () => rec.service('shop', 'orders')?.spec.shared === false && rec.service('shop', 'orders')?.spec.exported);
  });

  it('a malformed annotation is reported in status and as one Warning Event on the Service, never a crash', async () => {
    await apply(url, svc('shop', 'bad', { 'service.cilium.io/affinity': 'sideways' }));
    await until('bad discovered', () => rec.service('shop', 'bad'));
    assert.equal(rec.service('shop', 'bad')!.spec.affinity, undefined);
    const p = source.status().problems.items.find((x) => x.object.name === 'bad')!;
    assert.deepEqual([p.object.kind, p.object.namespace, p.field, p.value], ['Service', 'shop', 'metadata.annotations[service.cilium.io/affinity]', 'sideways']);
    const events = async () => {
      const r = (await (await fetch(`${url}/api/v1/namespaces/shop/events`)).json()) as {
        items: { involvedObject: { kind: string; name: string; uid?: string }; reason: string; type: string; message: string }[];
      };
      return r.items.filter((e) => e.involvedObject.name === 'bad');
    };
    const first = await until('event', () => source.status().problems.events.written >= 1);
    assert.ok(first);
    const evs = await events();
    assert.equal(evs.length, 1);
    assert.equal(evs[0]!.type, 'Warning');
    assert.equal(evs[0]!.reason, 'InvalidAnnotation');
    assert.equal(evs[0]!.involvedObject.kind, 'Service');
    assert.ok(evs[0]!.involvedObject.uid, 'the Event points at the object by uid');
    assert.match(evs[0]!.message, /sideways/);
    // the same problem again (the Service changes otherwise): no second Event
    await apply(url, {
      ...svc('shop', 'bad', { 'service.cilium.io/affinity': 'sideways' }),
      metadata: { name: 'bad', namespace: 'shop', labels: { x: 'y' }, annotations: { 'service.cilium.io/affinity': 'sideways' } },
    });
    await until('label seen', () => rec.service('shop', 'bad')?.metadata.labels?.['x'] === 'y');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await events()).length, 1);
    // fixed: the problem leaves the status
    await apply(url, svc('shop', 'bad', { 'service.cilium.io/affinity': 'remote' }));
    await until('fixed', () => rec.service('shop', 'bad')?.spec.affinity === 'remote');
    assert.equal(
      source.status().problems.items.some((x) => x.object.name === 'bad'),
      false,
    );
  });

  it('410 Gone: changes and deletions made while the watch was away (history compacted) are all seen after the re-list', async () => {
    await proxy.pause();
    await apply(url, slice('shop', 'cart-abc', 'cart', [{ ip: '10.0.0.1', pod: 'cart-1', node: 'node-a' }, { ip: '10.0.0.4' }]));
    await del(url, '/api/v1/namespaces/shop/services/orders');
    api.compact();
    api.closeWatches();
    await proxy.resume();
    await until('re-listed', () => rec.workloads('shop', 'cart').some((w) => w.spec.address === '10.0.0.4') && !rec.service('shop', 'orders'), 10_000);
    assert.deepEqual(
      rec.workloads('shop', 'cart').map((w) => [w.metadata.name, w.spec.address]),
      [
        ['cart-1', '10.0.0.1'],
        ['cart-10-0-0-4', '10.0.0.4'],
      ],
    );
    // and a live change after the re-list still arrives (the watch resumed)
    await apply(url, svc('shop', 'late'));
    await until('late', () => rec.service('shop', 'late'));
  });

  it('API server away: the last state is kept, status says since when; it resumes with what changed meanwhile', async () => {
    const before = JSON.stringify(source.current());
    const t0 = new Date().toISOString();
    await proxy.pause();
    api.closeWatches();
    const st = await until('disconnected', () => {
      const s = source.status();
      return s.connected ? undefined : s;
    });
    assert.ok(st.since && st.since >= t0, `since ${st.since}`);
    assert.match(st.lastError ?? '', /cannot be reached/);
    assert.equal(JSON.stringify(source.current()), before, 'last state kept');
    await apply(url, svc('shop', 'meanwhile'));
    await proxy.resume();
    await until('reconnected', () => source.status().connected, 10_000);
    await until('change made while away', () => rec.service('shop', 'meanwhile'), 10_000);
    assert.equal(source.status().since, undefined);
  });
});

describe('KubernetesSource: RBAC refusals', () => {
  it('a refused watch names the missing permission in status; a refused list keeps the source from publishing a partial state', async () => {
    const api = await KubeApiServer.start({ forbid: [{ verb: 'watch', resource: 'pods' }] });
    try {
      await apply(api.url, svc('default', 'web'));
      const kc = loadKubeConfig({ kubeconfig: await kubeconfigFor(api, api.url, 'kc-403') });
      const src = new KubernetesSource({ cluster: 'c1', kubeConfig: kc, retryMinMs: 50, retryMaxMs: 100, syncTimeoutMs: 2000 });
      const rec = new Recorder();
      await src.start(rec.on);
      const st = await until('forbidden', () => {
        const s = src.status();
        return s.forbidden.length ? s : undefined;
      });
      assert.deepEqual(
        st.forbidden.map((f) => [f.verb, f.resource, f.group, f.namespace]),
        [['watch', 'pods', '', '']],
      );
      // client-node's Watch drops a refused watch's body: the permission is named from the request itself
      assert.match(st.lastError!, /cannot watch pods in API group "" at the cluster scope; grant "watch" on "pods" \(apiGroups: \[""\]\) in the agent's ClusterRole/);
      await src.stop();

      api.forbid = [{ verb: 'list', resource: 'endpointslices' }];
      const src2 = new KubernetesSource({ cluster: 'c1', kubeConfig: kc, retryMinMs: 50, retryMaxMs: 100, syncTimeoutMs: 500 });
      const rec2 = new Recorder();
      await src2.start(rec2.on);
      assert.equal(src2.status().synced, false);
      assert.deepEqual(src2.current().services, [], 'nothing published from a partial cache');
      assert.deepEqual(
        src2.status().forbidden.map((f) => `${f.verb} ${f.resource} ${f.group}`),
        ['list endpointslices discovery.k8s.io'],
      );
      // a refused list carries the server's Status message too
      assert.match(
        src2.status().lastError!,
        /cannot list endpointslices in API group "discovery.k8s.io" at the cluster scope \(the API server says: endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:meshfed:meshfed-agent" cannot list resource "endpointslices" in API group "discovery.k8s.io" at the cluster scope\)/,
      );
      api.forbid = [];
      await until('synced once allowed', () => rec2.service('default', 'web'), 5000);
      assert.equal(src2.status().synced, true);
      await src2.stop();
    } finally {
      await api.close();
    }
  });
});
