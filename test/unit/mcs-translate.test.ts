// The MCS consumer-side translation (src/translate/mcs): golden files of what
// two clusters' agents would write (ServiceImports, EndpointSlices, ServiceExport
// conditions, skipped services), then the behaviours the goldens encode, one by one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { federate } from '../../src/federation/federate.js';
import type { FederatedView } from '../../src/federation/types.js';
import { MAX_ENDPOINTS_PER_SLICE, translateMcs, type McsInput } from '../../src/translate/mcs/index.js';
import { goldenFiles } from '../helpers/golden.js';
import { cluster, service, workload } from '../helpers/mesh-fixture.js';

const golden = goldenFiles(import.meta.url, 'test/unit/golden');
const NOW = '2025-01-02T03:04:05Z';

function fixtureView(extraBackends = 0): FederatedView {
  const clusters = [cluster('cluster1', 'us-east1', ['us-east1-a']), cluster('cluster2', 'us-west1', ['us-west1-a']), cluster('cluster3', 'eu-west1', ['eu-west1-a'])];
  const grpc = { name: 'grpc', port: 8080, protocol: 'GRPC' as const };
  const services = [
    service('cluster1', 'helloworld', 'sample', [grpc]),
    service('cluster2', 'helloworld', 'sample', [grpc]),
    service('cluster3', 'helloworld', 'sample', [grpc]),
    service('cluster1', 'echo', 'sample', [
      { name: 'http', port: 9001, protocol: 'HTTP' },
      { name: 'metrics', port: 9100, protocol: 'TCP' },
    ]),
    service('cluster2', 'local', 'sample', [grpc], { exported: false }),
    service('cluster1', 'conflicted', 'sample', [{ name: 'grpc', port: 7000, protocol: 'GRPC' }], { since: '2024-01-01T00:00:00Z' }),
    service('cluster3', 'conflicted', 'sample', [{ name: 'grpc', port: 7001, protocol: 'GRPC' }], { since: '2024-02-01T00:00:00Z' }),
    service('cluster2', 'billing', 'payments', [grpc]),
    service('cluster2', 'big', 'sample', [grpc]),
  ];
  const workloads = [
    workload('cluster1', 'hw-1b', 'sample', 'helloworld', '10.1.0.2', { grpc: 50051 }, { zone: 'us-east1-a', health: 'DRAINING' }),
    workload('cluster1', 'hw-1a', 'sample', 'helloworld', '10.1.0.1', { grpc: 50051 }, { zone: 'us-east1-a' }),
    workload('cluster2', 'hw-2a', 'sample', 'helloworld', '10.2.0.1', { grpc: 50051 }),
    workload('cluster2', 'hw-2b', 'sample', 'helloworld', 'fd00::2:1', { grpc: 50051 }, { health: 'UNHEALTHY' }),
    // Another target port: its own slice (a slice has one port list).
    workload('cluster2', 'hw-2c', 'sample', 'helloworld', '10.2.0.3', { grpc: 50052 }),
    workload('cluster3', 'hw-3a', 'sample', 'helloworld', '10.3.0.1', { grpc: 50051 }),
    workload('cluster1', 'echo-1', 'sample', 'echo', 'echo-1.vm.example.com', { http: 9001, metrics: 9100 }),
    workload('cluster1', 'echo-2', 'sample', 'echo', 'not an address', { http: 9001 }),
    workload('cluster2', 'local-1', 'sample', 'local', '10.2.2.1', { grpc: 8080 }),
    workload('cluster1', 'conflicted-1', 'sample', 'conflicted', '10.1.3.1', { grpc: 7000 }),
    workload('cluster3', 'conflicted-3', 'sample', 'conflicted', '10.3.3.1', { grpc: 7001 }),
    workload('cluster2', 'billing-1', 'payments', 'billing', '10.2.4.1', { grpc: 8080 }),
  ];
  for (let i = 0; i < 150 + extraBackends; i++)
    workloads.push(workload('cluster2', `big-${String(i).padStart(3, '0')}`, 'sample', 'big', `10.9.${Math.floor(i / 250)}.${(i % 250) + 1}`, { grpc: 8080 }));
  return federate({ clusters, services, workloads });
}

function input(clusterName: string, over: Partial<McsInput> = {}): McsInput {
  return {
    cluster: clusterName,
    view: fixtureView(),
    namespaces: new Set(['default', 'sample']),
    serviceExports: [
      { namespace: 'sample', name: 'helloworld', generation: 1 },
      { namespace: 'sample', name: 'conflicted', generation: 2 },
      { namespace: 'sample', name: 'ghost' },
    ],
    now: NOW,
    ...over,
  };
}

/** The big service's slices are many and alike: the golden shows how many endpoints each holds, not every endpoint. */
function summarized(desired: ReturnType<typeof translateMcs>): unknown {
  return desired.endpointSlices.map((s) => (s.metadata.labels?.['multicluster.kubernetes.io/service-name'] === 'big' ? { ...s, endpoints: `${s.endpoints.length} endpoints` } : s));
}

describe('MCS translation (golden)', () => {
  it('cluster3 and cluster1: ServiceImports, EndpointSlices, ServiceExport conditions, skipped services', () => {
    const cases: [string, unknown][] = [];
    for (const c of ['cluster3', 'cluster1']) {
      const d = translateMcs(input(c));
      cases.push([`${c}/ServiceImports`, d.serviceImports], [`${c}/EndpointSlices`, summarized(d)], [`${c}/ServiceExportStatus`, d.exportStatuses], [`${c}/skipped`, d.skipped]);
    }
    golden.expectCases('mcs', cases);
  });
});

describe('MCS translation', () => {
  it('imports exactly the services exported by another cluster, without conflict, in an existing namespace', () => {
    const d = translateMcs(input('cluster3'));
    // local: not exported; billing: namespace payments missing in cluster3.
    assert.deepEqual(
      d.serviceImports.map((s) => `${s.metadata.namespace}/${s.metadata.name}`),
      ['sample/big', 'sample/conflicted', 'sample/echo', 'sample/helloworld'],
    );
    assert.deepEqual(d.skipped.map((s) => `${s.namespace}/${s.name}`).sort(), ['payments/billing', 'sample/echo']);
    assert.match(d.skipped.find((s) => s.name === 'billing')!.reason, /namespace "payments" does not exist in cluster cluster3/);
    // cluster3's own conflicting part is not an import source; cluster1's is.
    const conflicted = d.endpointSlices.filter((s) => s.metadata.labels!['multicluster.kubernetes.io/service-name'] === 'conflicted');
    assert.deepEqual(
      conflicted.map((s) => s.metadata.labels!['multicluster.kubernetes.io/source-cluster']),
      ['cluster1'],
    );
    // A cluster that is the only exporter imports nothing of it.
    const c2 = translateMcs(input('cluster2', { namespaces: new Set(['sample', 'payments']) }));
    assert.ok(!c2.serviceImports.some((s) => s.metadata.name === 'big' || s.metadata.name === 'billing'));
  });

  it('respects the agent import namespaces', () => {
    const d = translateMcs(input('cluster3', { importNamespaces: ['payments'], namespaces: new Set(['sample', 'payments']) }));
    assert.deepEqual(
      d.serviceImports.map((s) => s.metadata.name),
      ['billing'],
    );
  });

  it('at most 100 endpoints per slice; names stable when endpoints are added', () => {
    const before = translateMcs(input('cluster3')).endpointSlices.filter((s) => s.metadata.name.startsWith('big-'));
    assert.deepEqual(
      before.map((s) => s.endpoints.length),
      [100, 50],
    );
    const after = translateMcs(input('cluster3', { view: fixtureView(60) })).endpointSlices.filter((s) => s.metadata.name.startsWith('big-'));
    assert.deepEqual(
      after.map((s) => s.endpoints.length),
      [100, 100, 10],
    );
    assert.ok(after.every((s) => s.endpoints.length <= MAX_ENDPOINTS_PER_SLICE));
    assert.deepEqual(
      after.slice(0, 2).map((s) => s.metadata.name),
      before.map((s) => s.metadata.name),
    );
  });

  it('a condition whose status stays keeps its lastTransitionTime; one that changes gets now', () => {
    const first = translateMcs(input('cluster3')).exportStatuses.find((s) => s.metadata.name === 'conflicted')!;
    const conditions = first.status.conditions.map((c) => ({ ...c, lastTransitionTime: '2020-01-01T00:00:00Z' }));
    // Conflict was "False" before: it changed now; Valid stays True.
    conditions.find((c) => c.type === 'Conflict')!.status = 'False';
    const again = translateMcs(input('cluster3', { serviceExports: [{ namespace: 'sample', name: 'conflicted', generation: 2, conditions }] })).exportStatuses[0]!;
    const t = Object.fromEntries(again.status.conditions.map((c) => [c.type, c.lastTransitionTime]));
    assert.deepEqual(t, { Valid: '2020-01-01T00:00:00Z', Ready: '2020-01-01T00:00:00Z', Conflict: NOW });
  });

  it('the losing export names the field and the winning cluster; the winner says it is the reference', () => {
    const lost = translateMcs(input('cluster3')).exportStatuses.find((s) => s.metadata.name === 'conflicted')!;
    const c = lost.status.conditions.find((x) => x.type === 'Conflict')!;
    assert.equal(c.status, 'True');
    assert.equal(c.reason, 'PortConflict');
    assert.match(c.message, /^spec\.ports: .*uses cluster1's .*oldest export wins/);
    const won = translateMcs(input('cluster1')).exportStatuses.find((s) => s.metadata.name === 'conflicted')!;
    assert.match(won.status.conditions.find((x) => x.type === 'Conflict')!.message, /cluster3 conflict with cluster1's.*this cluster is the reference/);
    assert.equal(won.status.conditions.find((x) => x.type === 'Ready')!.status, 'True');
  });
});
