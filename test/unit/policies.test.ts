// TrafficPolicy and FailoverPolicy: validation (field paths), translation
// (golden files beside the policies in src/policies/*/testdata), precedence,
// status and plan. Pure: no processes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { API_VERSION, type ApiObject } from '../../src/api/index.js';
import { FederationIndex } from '../../src/federation/incremental.js';
import { computePlan, expectedSplit, formatPlan } from '../../src/analysis/plan.js';
import { policyStatuses } from '../../src/policies/resolve.js';
import { translateService } from '../../src/translate/xds/index.js';
import { encodeResource } from '../../src/xds/proto.js';
import { goldenFiles } from '../helpers/golden.js';
import { cluster, GRPC_PORT, helloworldView, service, workload } from '../helpers/mesh-fixture.js';
import { ENDPOINT_TYPE, ROUTE_TYPE, type XdsResource } from '../../src/xdsapi/index.js';
import { parseAndValidate, policySet } from '../../src/registry.js';

const golden = goldenFiles(import.meta.url, 'src/policies');

/**
 * Resources as one golden case per type ("Cluster": [{ name, message }] in
 * order) plus "names" ("Type name", in the order given): together exactly the
 * list, so a golden split this way is as strict as one file of the whole list.
 */
function goldenCasesByType(res: readonly XdsResource[]): [string, unknown][] {
  const typeOf = (r: XdsResource) => r.typeUrl.slice(r.typeUrl.lastIndexOf('.') + 1);
  const perType = new Map<string, { name: string; message: unknown }[]>();
  for (const r of res) perType.set(typeOf(r), [...(perType.get(typeOf(r)) ?? []), { name: r.name, message: r.message }]);
  return [['names', res.map((r) => `${typeOf(r)} ${r.name}`)], ...perType];
}

const view = helloworldView([
  { cluster: 'cluster1', version: 'v1', address: '10.1.0.1', port: 50051, zone: 'us-east1-a' },
  { cluster: 'cluster1', version: 'v2', address: '10.1.0.2', port: 50051, zone: 'us-east1-b' },
  { cluster: 'cluster2', version: 'v3', address: '10.2.0.1', port: 50051 },
  { cluster: 'cluster3', version: 'v3', address: '10.3.0.1', port: 50051 },
]);
const hw = view.services.find((s) => s.name === 'helloworld')!;

function obj(kind: string, name: string, spec: unknown, created = '2024-01-01T00:00:00Z'): ApiObject {
  const [o] = parseAndValidate(JSON.stringify({ apiVersion: API_VERSION, kind, metadata: { name, namespace: 'sample' }, spec }));
  o!.metadata.creationTimestamp = created;
  return o!;
}

const split = obj('TrafficPolicy', 'split', {
  destinations: [{ name: 'helloworld' }],
  routes: [
    { name: 'canary', match: { headers: [{ name: 'x-canary', exact: 'yes' }] }, split: [{ cluster: 'cluster3', weight: 100 }], fault: { abort: { percent: 10 } } },
    {
      name: 'main',
      split: [
        { cluster: 'cluster2', subset: { version: 'v3' }, weight: 75 },
        { cluster: 'cluster1', subset: { version: 'v1' }, weight: 15 },
        { cluster: 'cluster1', subset: { version: 'v2' }, weight: 10 },
      ],
      retries: { attempts: 3 },
      timeout: '2s',
    },
  ],
  loadBalancing: { policy: 'RING_HASH', hashHeader: 'x-user' },
  outlierDetection: { failurePercentage: { threshold: 50 } },
});

function resources(ctxCluster: string, objects: ApiObject[]): XdsResource[] {
  const c = view.clusters.find((x) => x.name === ctxCluster)!;
  return translateService(hw, { cluster: ctxCluster, locality: { region: c.region, zones: c.zones }, policies: policySet(objects) }).resources;
}

describe('TrafficPolicy', () => {
  it('rejects invalid input naming the field', () => {
    const bad = (spec: unknown) => {
      try {
        parseAndValidate(JSON.stringify({ apiVersion: API_VERSION, kind: 'TrafficPolicy', metadata: { name: 'x', namespace: 'sample' }, spec }));
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    };
    assert.match(
      bad({
        destinations: [{ name: 'helloworld' }],
        routes: [
          {
            split: [
              { cluster: 'a', weight: 50 },
              { cluster: 'b', weight: 40 },
            ],
          },
        ],
      }),
      /\/spec\/routes\/0\/split.*add up to 90/,
    );
    assert.match(bad({ destinations: [{ name: 'helloworld' }], routes: [{ retrys: {} }] }), /\/spec\/routes\/0/);
    assert.match(bad({ destinations: [{ name: 'helloworld' }], loadBalancing: { policy: 'RING_HASH' } }), /hashHeader/);
    assert.match(bad({ destinations: [{ name: 'helloworld' }], routes: [{ split: [{ weight: 100 }] }, { split: [{ weight: 100 }] }] }), /\/spec\/routes\/0\/match/);
  });

  it('translates routes, weighted subset clusters, retries, faults, ring hash, outlier detection (golden, strict encoding)', () => {
    const res = resources('cluster1', [split]);
    for (const r of res) encodeResource(r);
    const names = res.map((r) => r.name);
    for (const n of [
      'outbound|8080|cluster=cluster2,version=v3|helloworld.sample',
      'outbound|8080|cluster=cluster1,version=v1|helloworld.sample',
      'outbound|8080|cluster=cluster3|helloworld.sample',
    ]) {
      assert.ok(names.filter((x) => x === n).length === 2, `${n}: a Cluster and its ClusterLoadAssignment`);
    }
    golden.expectCases('traffic/testdata/split-cluster1', goldenCasesByType(res.filter((r) => !r.name.includes(':') && !r.name.includes('clusterset') && !/\.cluster\d$/.test(r.name))));
    const shares = expectedSplit(res, 'helloworld.sample', hw);
    assert.deepEqual(
      shares.map((s) => s.shares),
      [
        { 'failed (fault)': 10, 'cluster3/v3': 90 },
        { 'cluster2/v3': 75, 'cluster1/v1': 15, 'cluster1/v2': 10 },
        { 'cluster1/v1': 25, 'cluster1/v2': 25, 'cluster2/v3': 25, 'cluster3/v3': 25 },
      ].slice(0, shares.length),
    );
  });

  it('oldest policy wins per field; the newer one reports the conflict; status lists services, clusters and problems', () => {
    const newer = obj(
      'TrafficPolicy',
      'newer',
      { destinations: [{}], loadBalancing: { policy: 'ROUND_ROBIN' }, routes: [{ split: [{ cluster: 'cluster1', subset: { version: 'v9' }, weight: 100 }] }] },
      '2024-06-01T00:00:00Z',
    );
    const ghost = obj('TrafficPolicy', 'ghost', { destinations: [{ name: 'nope' }], outlierDetection: {} }, '2024-06-02T00:00:00Z');
    const st = policyStatuses(view, policySet([newer, split, ghost]));
    const n = st.get('TrafficPolicy sample/newer')!;
    assert.deepEqual(n.services, ['helloworld.sample']);
    assert.deepEqual(n.clusters, ['cluster1', 'cluster2', 'cluster3']);
    assert.deepEqual(n.conflicts.map((c) => `${c.field}<${c.winner}`).sort(), ['spec.loadBalancing<TrafficPolicy sample/split', 'spec.routes<TrafficPolicy sample/split']);
    assert.equal(n.problems[0]!.path, '/spec/routes/0/split/0/subset');
    assert.equal(st.get('TrafficPolicy sample/split')!.conflicts.length, 0);
    assert.equal(st.get('TrafficPolicy sample/ghost')!.problems[0]!.path, '/spec/destinations/0');
    const cla = resources('cluster1', [newer, split]).find((r) => r.typeUrl === ROUTE_TYPE && r.name === 'helloworld.sample')!;
    assert.match(JSON.stringify(cla.message), /version=v3/, 'the older policy routes');
  });
});

describe('FailoverPolicy', () => {
  const prio = (from: string, spec: unknown) => {
    const res = resources(from, [obj('FailoverPolicy', 'fo', { destinations: [{ name: 'helloworld' }], ...(spec as object) })]);
    const cla = res.find((r) => r.typeUrl === ENDPOINT_TYPE && r.name === 'outbound|8080||helloworld.sample')!;
    return Object.fromEntries((cla.message.endpoints as { locality: { sub_zone: string; zone: string }; priority: number }[]).map((l) => [`${l.locality.sub_zone}/${l.locality.zone}`, l.priority]));
  };
  it('local: own cluster, then same region/zone tiers, then the rest; contiguous priorities', () => {
    const p = prio('cluster2', { affinity: 'local' });
    assert.equal(p['cluster2/us-west1-a'], 0);
    assert.deepEqual(new Set(Object.values(p)), new Set([0, 1]), 'no gaps');
    assert.deepEqual(prio('cluster2', { affinity: 'local', clusters: ['cluster3'] }), { 'cluster1/us-east1-a': 2, 'cluster1/us-east1-b': 2, 'cluster2/us-west1-a': 0, 'cluster3/eu-west1-a': 1 });
    golden.expect(
      'failover/testdata/local-from-cluster2.yaml',
      resources('cluster2', [obj('FailoverPolicy', 'fo', { destinations: [{ name: 'helloworld' }], affinity: 'local', clusters: ['cluster3'] })]).filter(
        (r) => r.typeUrl === ENDPOINT_TYPE && r.name === 'outbound|8080||helloworld.sample',
      )[0]!.message,
    );
  });
  it('remote: other clusters first, own last; none: one priority', () => {
    const p = prio('cluster1', { affinity: 'remote' });
    assert.equal(p['cluster1/us-east1-a'], 1);
    assert.equal(p['cluster2/us-west1-a'], 0);
    assert.deepEqual(new Set(Object.values(prio('cluster1', { affinity: 'none' }))), new Set([0]));
  });
  it('zone tier: a remote locality in one of the source cluster zones comes before the same region', () => {
    const v = helloworldView([
      { cluster: 'cluster1', version: 'v1', address: '10.1.0.1', port: 1, zone: 'us-east1-a' },
      { cluster: 'cluster2', version: 'v2', address: '10.2.0.1', port: 1, zone: 'us-east1-a' },
      { cluster: 'cluster3', version: 'v3', address: '10.3.0.1', port: 1 },
    ]);
    const s = v.services[0]!;
    const res = translateService(s, {
      cluster: 'cluster1',
      locality: { region: 'us-east1', zones: ['us-east1-a'] },
      policies: policySet([obj('FailoverPolicy', 'fo', { destinations: [{}] })]),
    }).resources;
    const cla = res.find((r) => r.typeUrl === ENDPOINT_TYPE && r.name === 'outbound|8080||helloworld.sample')!;
    assert.deepEqual(
      (cla.message.endpoints as { priority: number }[]).map((l) => l.priority),
      [0, 1, 2],
    );
  });
  it("no FailoverPolicy: the Service's own affinity in the client's cluster (Cilium's service.cilium.io/affinity) sets the priorities; a FailoverPolicy wins", () => {
    // cluster1's part carries affinity remote, the others none: only cluster1's clients are affected
    const withAffinity = (affinity: 'local' | 'remote' | 'none', cluster = 'cluster1') => ({
      ...hw,
      parts: hw.parts.map((p) => (p.cluster === cluster ? { ...p, affinity } : p)),
    });
    const cla = (s: typeof hw, from: string, objects: ApiObject[] = []) => {
      const c = view.clusters.find((x) => x.name === from)!;
      const res = translateService(s, { cluster: from, locality: { region: c.region, zones: c.zones }, policies: policySet(objects) }).resources;
      const m = res.find((r) => r.typeUrl === ENDPOINT_TYPE && r.name === 'outbound|8080||helloworld.sample')!.message;
      return Object.fromEntries((m.endpoints as { locality: { sub_zone: string; zone: string }; priority?: number }[]).map((l) => [`${l.locality.sub_zone}/${l.locality.zone}`, l.priority ?? 0]));
    };
    const remote = cla(withAffinity('remote'), 'cluster1');
    assert.equal(remote['cluster1/us-east1-a'], 1, 'own cluster last');
    assert.equal(remote['cluster2/us-west1-a'], 0);
    const local = cla(withAffinity('local'), 'cluster1');
    assert.equal(local['cluster1/us-east1-a'], 0);
    assert.equal(local['cluster2/us-west1-a'], 1);
    assert.deepEqual(new Set(Object.values(cla(withAffinity('local'), 'cluster2'))), new Set([0]), "another cluster's affinity does not apply to cluster2's clients");
    assert.deepEqual(new Set(Object.values(cla(hw, 'cluster1'))), new Set([0]), 'no affinity, no policy: one priority');
    const explicit = cla(withAffinity('local'), 'cluster1', [obj('FailoverPolicy', 'fo', { destinations: [{ name: 'helloworld' }], affinity: 'remote' })]);
    assert.equal(explicit['cluster1/us-east1-a'], 1, 'the FailoverPolicy (remote) wins over the Service affinity (local)');
  });
  it('rejects a cluster order with affinity none', () => {
    assert.throws(() => obj('FailoverPolicy', 'x', { destinations: [{}], affinity: 'none', clusters: ['cluster1'] }), /\/spec\/clusters/);
  });
});

describe('incrementality and plan', () => {
  it('FederationIndex.touch / touchNamespace mark only the named or the namespace services', () => {
    const idx = new FederationIndex();
    idx.touch('sample/helloworld');
    assert.equal(idx.pending, 1);
  });
  it('plan: nothing to change when no service exists', () => {
    assert.equal(computePlan([], [split]).clusters.length, 0);
  });
  it('plan: per-cluster diffs, affected services and split before/after; the printout groups identical clusters and aliases', () => {
    const clusters = [cluster('cluster1', 'us-east1', ['us-east1-a']), cluster('cluster2', 'us-east1', ['us-east1-b']), cluster('cluster3', 'us-west1', ['us-west1-a'])];
    const objects: ApiObject[] = [
      ...clusters,
      ...clusters.map((c) => service(c.metadata.name, 'helloworld', 'sample', [GRPC_PORT])),
      ...clusters.map((c, i) => workload(c.metadata.name, `hw-v${i + 1}`, 'sample', 'helloworld', `10.0.0.${i + 1}`, { grpc: 8080 }, { labels: { version: `v${i + 1}` } })),
    ];
    const shift = obj('TrafficPolicy', 'shift', {
      destinations: [{ name: 'helloworld' }],
      routes: [
        {
          name: 'main',
          split: [
            { cluster: 'cluster2', weight: 75 },
            { cluster: 'cluster3', weight: 25 },
          ],
        },
      ],
    });
    const p = computePlan(objects, [shift]);
    assert.deepEqual(
      p.clusters.map((c) => c.cluster),
      ['cluster1', 'cluster2', 'cluster3'],
    );
    const c1 = p.clusters[0]!.changes;
    assert.deepEqual(
      c1
        .filter((c) => c.change === 'added')
        .map((c) => c.name)
        .sort(),
      [
        'outbound|8080|cluster=cluster2|helloworld.sample',
        'outbound|8080|cluster=cluster2|helloworld.sample',
        'outbound|8080|cluster=cluster3|helloworld.sample',
        'outbound|8080|cluster=cluster3|helloworld.sample',
      ],
    );
    assert.ok(c1.some((c) => c.change === 'changed' && c.type === 'RouteConfiguration' && c.diff!.some((l) => l.startsWith('+') && l.includes('weighted_clusters'))));
    const sp = p.services[0]!;
    assert.equal(sp.service, 'helloworld.sample');
    assert.deepEqual(sp.workloads, ['cluster1/sample/hw-v1', 'cluster2/sample/hw-v2', 'cluster3/sample/hw-v3']);
    // Default (no policy): spread equally over the three; after: the weights.
    for (const src of ['cluster1', 'cluster2', 'cluster3']) {
      const b = sp.split[src]!.before[0]!.shares;
      assert.deepEqual(Object.keys(b).sort(), ['cluster1/v1', 'cluster2/v2', 'cluster3/v3']);
      assert.deepEqual(sp.split[src]!.after[0]!.shares, { 'cluster2/v2': 75, 'cluster3/v3': 25 });
    }
    assert.deepEqual(p.policies['TrafficPolicy sample/shift']!.clusters, ['cluster1', 'cluster2', 'cluster3']);
    const text = formatPlan(p);
    assert.match(text, /== clusters cluster1, cluster2, cluster3: 4 added, 4 changed, 0 removed/);
    assert.match(text, /~ RouteConfiguration helloworld\.sample \(same change: [^)]*helloworld\.sample\.svc\.clusterset\.local/);
    assert.match(text, /cluster1, cluster2, cluster3\s+main \(every call\)\s+cluster\d\/v\d 33\.33%.*\s+cluster2\/v2 75%, cluster3\/v3 25%/);
    // A subset nobody runs is a problem naming the field, and the share shows as failing.
    const bad = obj('TrafficPolicy', 'shift', { destinations: [{ name: 'helloworld' }], routes: [{ split: [{ cluster: 'cluster2', subset: { version: 'v9' }, weight: 100 }] }] });
    const pb = computePlan(objects, [bad]);
    assert.match(pb.policies['TrafficPolicy sample/shift']!.problems[0]!.path, /\/spec\/routes\/0\/split\/0\/subset/);
    assert.deepEqual(pb.services[0]!.split.cluster1!.after[0]!.shares, { 'failed (no endpoint)': 100 });
  });
});
