// Federation: services merge by namespace and name into global services, per-cluster
// parts stay addressable, conflicts resolve oldest-export-wins, hostnames resolve. Pure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster, Mesh, Service, Workload } from '../../src/api/index.js';
import { federate, resolveHostname } from '../../src/federation/federate.js';

const V = 'meshfed.io/v1alpha1' as const;
export const clusters: Cluster[] = [
  { apiVersion: V, kind: 'Cluster', metadata: { name: 'cluster1' }, spec: { network: 'net1', region: 'us-east1', zones: ['us-east1-a', 'us-east1-c'] } },
  { apiVersion: V, kind: 'Cluster', metadata: { name: 'cluster2' }, spec: { network: 'net1', region: 'us-east1', zones: ['us-east1-b'] } },
  { apiVersion: V, kind: 'Cluster', metadata: { name: 'cluster3' }, spec: { network: 'net2', region: 'us-west1', zones: ['us-west1-a'] } },
];

function svc(cluster: string, port = 50051, since = '2026-01-01T00:00:00Z', exported = true, name = 'helloworld'): Service {
  return {
    apiVersion: V,
    kind: 'Service',
    metadata: { name, namespace: 'sample', creationTimestamp: since },
    spec: { cluster, ports: [{ name: 'grpc', port, protocol: 'GRPC' }], exported },
  };
}

function wl(cluster: string, name: string, address: string, extra: Partial<Workload['spec']> = {}, labels: Record<string, string> = {}): Workload {
  return {
    apiVersion: V,
    kind: 'Workload',
    metadata: { name, namespace: 'sample', labels },
    spec: { cluster, service: 'helloworld', address, ports: { grpc: 50051 }, serviceAccount: 'helloworld', health: 'HEALTHY', ...extra },
  };
}

test('a service exported from three clusters is one global service with three parts', () => {
  const view = federate({
    clusters,
    services: [svc('cluster1'), svc('cluster2'), svc('cluster3')],
    workloads: [wl('cluster1', 'a', '10.0.0.1', {}, { version: 'v1' }), wl('cluster2', 'b', '10.0.0.2'), wl('cluster3', 'c', '10.1.0.3')],
  });
  assert.equal(view.services.length, 1);
  const g = view.services[0]!;
  assert.deepEqual(g.hostnames, ['helloworld.sample', 'helloworld.sample.svc.clusterset.local']);
  assert.deepEqual(
    g.parts.map((p) => [p.cluster, p.hostname, p.inGlobal]),
    [
      ['cluster1', 'helloworld.sample.cluster1', true],
      ['cluster2', 'helloworld.sample.cluster2', true],
      ['cluster3', 'helloworld.sample.cluster3', true],
    ],
  );
  const e = g.parts[2]!.endpoints[0]!;
  assert.deepEqual([e.cluster, e.region, e.zone, e.network], ['cluster3', 'us-west1', 'us-west1-a', 'net2']);
  assert.deepEqual(g.parts[0]!.endpoints[0]!.labels, { version: 'v1' });
  assert.equal(g.conflicts.length, 0);
});

test("a workload without a zone gets its cluster's first zone; an explicit zone is kept", () => {
  const view = federate({ clusters, services: [svc('cluster1')], workloads: [wl('cluster1', 'a', '10.0.0.1'), wl('cluster1', 'b', '10.0.0.2', { zone: 'us-east1-c' })] });
  assert.deepEqual(
    view.services[0]!.parts[0]!.endpoints.map((e) => e.zone),
    ['us-east1-a', 'us-east1-c'],
  );
});

test('conflicting ports: the oldest export wins, the other part is excluded and reported', () => {
  const view = federate({
    clusters,
    services: [svc('cluster1', 50051, '2026-02-01T00:00:00Z'), svc('cluster2', 9000, '2026-01-01T00:00:00Z'), svc('cluster3', 50051, '2026-03-01T00:00:00Z')],
    workloads: [],
  });
  const g = view.services[0]!;
  assert.equal(g.referenceCluster, 'cluster2');
  assert.deepEqual(
    g.ports.map((p) => p.port),
    [9000],
  );
  assert.deepEqual(
    g.parts.map((p) => [p.cluster, p.inGlobal]),
    [
      ['cluster1', false],
      ['cluster2', true],
      ['cluster3', false],
    ],
  );
  assert.deepEqual(
    g.conflicts.map((c) => c.cluster),
    ['cluster1', 'cluster3'],
  );
  assert.match(g.conflicts[0]!.message, /cluster1 defines ports grpc:50051\/GRPC .* uses cluster2's grpc:9000\/GRPC \(oldest export wins\).*helloworld\.sample\.cluster1 only/);
});

test('equal ages break ties by cluster name, so every agent picks the same reference', () => {
  const view = federate({ clusters, services: [svc('cluster3', 1), svc('cluster2', 2)], workloads: [] });
  assert.equal(view.services[0]!.referenceCluster, 'cluster2');
});

test('an unexported part is not in the global service', () => {
  const view = federate({ clusters, services: [svc('cluster1', 50051, undefined, false), svc('cluster2')], workloads: [] });
  const g = view.services[0]!;
  assert.deepEqual(
    g.parts.map((p) => [p.cluster, p.inGlobal]),
    [
      ['cluster1', false],
      ['cluster2', true],
    ],
  );
  assert.equal(g.conflicts.length, 0);
});

test('the Mesh limits which clusters federate; unknown clusters are ignored', () => {
  const mesh: Mesh = { apiVersion: V, kind: 'Mesh', metadata: { name: 'default' }, spec: { trustDomain: 'x', clusters: ['cluster1', 'cluster2'] } };
  const view = federate({ clusters, mesh, services: [svc('cluster1'), svc('cluster3'), svc('nowhere')], workloads: [wl('cluster3', 'c', '10.0.0.3')] });
  assert.deepEqual(
    view.clusters.map((c) => c.name),
    ['cluster1', 'cluster2'],
  );
  assert.deepEqual(
    view.services[0]!.parts.map((p) => p.cluster),
    ['cluster1'],
  );
});

test('hostnames resolve in every documented form', () => {
  const view = federate({ clusters, services: [svc('cluster1'), svc('cluster2')], workloads: [] });
  for (const name of ['helloworld.sample', 'helloworld.sample.svc.clusterset.local', 'helloworld.sample:50051']) {
    const r = resolveHostname(view, name);
    assert.ok(!('error' in r), name);
    assert.equal(r.part, undefined);
  }
  const r = resolveHostname(view, 'helloworld.sample.cluster2');
  assert.ok(!('error' in r) && r.part?.cluster === 'cluster2');
  assert.deepEqual(resolveHostname(view, 'helloworld.sample:1'), { error: 'helloworld.sample has no port 1; ports: grpc:50051/GRPC' });
  assert.deepEqual(resolveHostname(view, 'nope.sample'), { error: 'no service is named nope.sample' });
});

test('the incremental index always agrees with federate() and recomputes only what a change touches', async () => {
  const { FederationIndex } = await import('../../src/federation/incremental.js');
  const idx = new FederationIndex();
  let services: Service[] = [svc('cluster1'), svc('cluster2', 9000, '2026-05-01T00:00:00Z'), svc('cluster3', 50051, undefined, true, 'other')];
  let workloads: Workload[] = [
    wl('cluster1', 'a', '10.0.0.1'),
    wl('cluster2', 'b', '10.0.0.2'),
    { ...wl('cluster3', 'c', '10.0.0.3'), spec: { ...wl('cluster3', 'c', '10.0.0.3').spec, service: 'other' } },
  ];
  idx.setClusters(clusters);
  services.forEach((s) => idx.upsertService(s));
  workloads.forEach((w) => idx.upsertWorkload(w));
  let r = idx.flush();
  assert.deepEqual([...r.changed.keys()].sort(), ['sample/helloworld', 'sample/other']);
  assert.deepEqual(idx.view(), federate({ clusters, services, workloads }));

  // One workload moves from helloworld to other: both services change, nothing else.
  const moved = { ...workloads[0]!, spec: { ...workloads[0]!.spec, service: 'other' } };
  idx.upsertWorkload(moved);
  workloads = [moved, ...workloads.slice(1)];
  r = idx.flush();
  assert.deepEqual([...r.changed.keys()].sort(), ['sample/helloworld', 'sample/other']);
  assert.deepEqual(idx.view(), federate({ clusters, services, workloads }));

  // A workload of an untouched service changes: only that service is recomputed.
  const b2 = { ...workloads[1]!, spec: { ...workloads[1]!.spec, health: 'UNHEALTHY' as const } };
  idx.upsertWorkload(b2);
  workloads = [workloads[0]!, b2, workloads[2]!];
  assert.deepEqual([...idx.flush().changed.keys()], ['sample/helloworld']);
  assert.deepEqual(idx.view(), federate({ clusters, services, workloads }));

  // Status-only cluster changes touch nothing; a topology change touches everything.
  idx.setClusters(clusters.map((c) => ({ ...c, status: { services: 3 } })));
  assert.equal(idx.pending, 0);
  const moved3 = clusters.map((c) => (c.metadata.name === 'cluster3' ? { ...c, spec: { ...c.spec, region: 'eu-west1' } } : c));
  idx.setClusters(moved3);
  assert.equal(idx.flush().changed.size, 2);
  assert.deepEqual(idx.view(), federate({ clusters: moved3, services, workloads }));

  // Removing the last definition removes the global service.
  idx.removeService({ kind: 'Service', name: 'other', namespace: 'sample', cluster: 'cluster3' });
  services = services.slice(0, 2);
  r = idx.flush();
  assert.deepEqual([...r.removed], ['sample/other']);
  assert.deepEqual(idx.view(), federate({ clusters: moved3, services, workloads }));
});
