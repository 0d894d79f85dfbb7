// What apply warns and plan shows (src/analysis/warnings.ts: one line per
// problem, naming object, field and problem, the same lines for both), the
// proxy facts read from proxy-status reports, and validation errors in words
// (patterns described, unknown fields with "did you mean"). Pure.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { API_VERSION, theMesh, type ApiObject, type Mesh } from '../../src/api/index.js';
import { computePlan, dryRunObjects, formatPlan, viewOf } from '../../src/analysis/plan.js';
import { applyWarnings, proxyFacts } from '../../src/analysis/warnings.js';
import { closest } from '../../src/util/suggest.js';
import { InvalidInputError } from '../../src/api/index.js';
import { KINDS, parseAndValidate } from '../../src/registry.js';
import { cluster, GRPC_PORT, service, workload } from '../helpers/mesh-fixture.js';

function obj(kind: string, name: string, spec: unknown): ApiObject {
  return parseAndValidate(JSON.stringify({ apiVersion: API_VERSION, kind, metadata: { name, namespace: 'sample' }, spec }))[0]!;
}

// rebel-base runs in cluster1 and cluster2; cluster3 is a member without any of its endpoints.
const fleet: ApiObject[] = [
  cluster('cluster1', 'us-east1', ['us-east1-a']),
  cluster('cluster2', 'us-east1', ['us-east1-b']),
  cluster('cluster3', 'us-west1', ['us-west1-a']),
  service('cluster1', 'rebel-base', 'sample', [GRPC_PORT]),
  service('cluster2', 'rebel-base', 'sample', [GRPC_PORT]),
  workload('cluster1', 'rebel-base-0', 'sample', 'rebel-base', '10.0.0.1', { grpc: 8080 }),
  workload('cluster2', 'rebel-base-1', 'sample', 'rebel-base', '10.0.0.2', { grpc: 8080 }),
];

/** The warnings apply computes at the hub: the dry-run view, every policy after the apply. */
function warningsOf(current: ApiObject[], toApply: ApiObject[], reports: Parameters<typeof proxyFacts>[0] = []): string[] {
  const after = dryRunObjects(current, toApply);
  return applyWarnings(viewOf(after), theMesh(after) as Mesh | undefined, after, toApply, proxyFacts(reports));
}

const split = obj('TrafficPolicy', 'split', {
  destinations: [{ name: 'rebel-base' }],
  routes: [
    {
      split: [
        { cluster: 'cluster1', weight: 80 },
        { cluster: 'cluster3', weight: 20 },
      ],
    },
  ],
});

describe('apply warnings', () => {
  it('a split to a member cluster without endpoints names object, field and the share that fails; plan shows the same line', () => {
    const w = warningsOf(fleet, [split]);
    assert.deepEqual(w, ['TrafficPolicy sample/split: spec.routes[0].split[1].cluster: cluster "cluster3" has no endpoints of rebel-base.sample: its 20% of calls would fail (UNAVAILABLE)']);
    const plan = computePlan(fleet, [split]);
    assert.deepEqual(plan.warnings, w);
    assert.ok(formatPlan(plan).includes(`  Warning: ${w[0]}\n`), formatPlan(plan));
  });

  it('a cluster no Cluster object names, in Traffic, Failover and Access policies', () => {
    const bad = obj('TrafficPolicy', 'to-nowhere', {
      destinations: [{ name: 'rebel-base' }],
      routes: [
        {
          split: [
            { cluster: 'cluster1', weight: 50 },
            { cluster: 'clusterx', weight: 50 },
          ],
        },
      ],
    });
    const failover = obj('FailoverPolicy', 'order', { destinations: [{ name: 'rebel-base' }], clusters: ['cluster1', 'cluster9'] });
    const access = obj('AccessPolicy', 'allow', { action: 'ALLOW', destinations: [{ name: 'rebel-base', cluster: 'cluster7' }], sources: [{ namespace: 'sample' }] });
    assert.deepEqual(warningsOf(fleet, [bad, failover, access]), [
      'TrafficPolicy sample/to-nowhere: spec.routes[0].split[1].cluster: no member cluster "clusterx"',
      'FailoverPolicy sample/order: spec.clusters[1]: no member cluster "cluster9"',
      'AccessPolicy sample/allow: spec.destinations[0].cluster: no member cluster "cluster7"',
    ]);
  });

  it('a Cluster applied with the policy counts (the dry run), and a clean apply warns nothing', () => {
    const fine = obj('FailoverPolicy', 'order', { destinations: [{ name: 'rebel-base' }], clusters: ['cluster1', 'cluster4'] });
    assert.deepEqual(warningsOf(fleet, [cluster('cluster4', 'eu-west1', ['eu-west1-a']), fine]), []);
    assert.deepEqual(warningsOf(fleet, [cluster('cluster4', 'eu-west1', ['eu-west1-a'])]), []);
  });

  it('a newer policy that loses a field to an older one warns the conflict', () => {
    const older = { ...split, metadata: { ...split.metadata, name: 'older', creationTimestamp: '2024-01-01T00:00:00Z' } };
    const fine = obj('TrafficPolicy', 'newer', { destinations: [{ name: 'rebel-base' }], routes: [{ split: [{ cluster: 'cluster1', weight: 100 }] }] });
    const w = warningsOf([...fleet, older], [fine]);
    assert.equal(w.length, 1, w.join('\n'));
    assert.match(w[0]!, /^TrafficPolicy sample\/newer: spec\.routes: spec\.routes for rebel-base\.sample comes from the older TrafficPolicy sample\/older; this policy's spec\.routes is ignored/);
  });

  it('an AccessPolicy on a server whose proxy NACKed RBAC filters (proxy-status) warns; other NACKs and unknown servers do not', () => {
    const access = obj('AccessPolicy', 'allow', { action: 'ALLOW', destinations: [{ name: 'rebel-base' }], sources: [{ namespace: 'sample' }] });
    const report = (nodeId: string, nack: string) => ({ cluster: 'cluster1', items: [{ nodeId, types: { LDS: { state: 'NACKED', nack } } }] });
    const rbacNack = 'envoy.filters.http.router filter validation failed: meshfed.access.allow-0 unknown filter';
    assert.deepEqual(proxyFacts([report('cluster1~sample~rebel-base-0', rbacNack)]).serversWithoutRbac, new Set(['cluster1/sample/rebel-base-0']));
    assert.deepEqual(proxyFacts([report('cluster1~sample~rebel-base-0', 'some other problem')]).serversWithoutRbac, new Set());
    const w = warningsOf(fleet, [access], [report('cluster1~sample~rebel-base-0', rbacNack)]);
    assert.equal(w.length, 1, w.join('\n'));
    assert.match(w[0]!, /^AccessPolicy sample\/allow: spec\.destinations: the gRPC server of cluster1\/sample\/rebel-base-0 rejected RBAC filters .*GRPC_XDS_EXPERIMENTAL_RBAC=true/);
    assert.deepEqual(warningsOf(fleet, [access]), []);
  });
});

function validationErrors(doc: Record<string, unknown>): string {
  try {
    parseAndValidate(JSON.stringify({ apiVersion: API_VERSION, ...doc }), 'f.yaml');
  } catch (err) {
    assert.ok(err instanceof InvalidInputError);
    return err.message;
  }
  assert.fail('expected a validation error');
}

describe('validation errors in words', () => {
  it('a pattern failure says what the value must be, not the regular expression', () => {
    const m = validationErrors({ kind: 'TrafficPolicy', metadata: { name: 'Split', namespace: 'sample' }, spec: { destinations: [{ name: 'x' }], routes: [{ timeout: '3 sec' }] } });
    assert.match(m, /\/metadata\/name: "Split" must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit/);
    assert.match(m, /\/spec\/routes\/0\/timeout: "3 sec" must be a duration/);
    assert.doesNotMatch(m, /\^\[/);
  });

  it('an unknown field names the nearest allowed field at its path, or lists them', () => {
    let m = validationErrors({ kind: 'TrafficPolicy', metadata: { name: 's', namespace: 'sample' }, spec: { destinaton: [{ name: 'x' }], destinations: [{ name: 'x' }] } });
    assert.match(m, /\/spec\/destinaton: unknown field "destinaton"; did you mean "destinations"\?/);
    m = validationErrors({ kind: 'Cluster', metadata: { name: 'c' }, spec: { region: 'r', zones: ['z'], netwrk: 'x' } });
    assert.match(m, /\/spec\/netwrk: unknown field "netwrk"; did you mean "network"\?/);
    m = validationErrors({ kind: 'Cluster', metadata: { name: 'c' }, spec: { region: 'r', zones: ['z'], qqqqqq: 'x' } });
    assert.match(m, /\/spec\/qqqqqq: unknown field "qqqqqq"; allowed: .*region/);
  });

  it('every pattern of every kind has words (patternMessage)', () => {
    const missing: string[] = [];
    const walk = (node: unknown, at: string) => {
      if (typeof node !== 'object' || node === null) return;
      const n = node as Record<string, unknown>;
      if (typeof n.pattern === 'string' && typeof n.patternMessage !== 'string') missing.push(`${at}: ${n.pattern}`);
      for (const [k, v] of Object.entries(n)) walk(v, `${at}/${k}`);
    };
    for (const k of KINDS) walk(k.schema, k.kind);
    assert.deepEqual(missing, []);
  });

  it('closest: near misses and case, nothing for a far or tiny key', () => {
    assert.equal(closest('destinaton', ['destinations', 'sources']), 'destinations');
    assert.equal(closest('Sources', ['destinations', 'sources']), 'sources');
    assert.equal(closest('zzz', ['destinations', 'sources']), undefined);
    assert.equal(closest('x', ['y']), undefined);
  });
});
