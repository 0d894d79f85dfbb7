// AccessPolicy: validation (field paths), RBAC translation (golden file beside
// the kind, strict Envoy encoding), the rule (DENY wins, ALLOW restricts, the
// Mesh default), our evaluator checked against grpc-js-xds's own RBAC engine on
// the encoded bytes, status problems, explain, and the proxy-status hint. Pure.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { API_VERSION, type ApiObject, type Workload } from '../../src/api/index.js';
import { nackHint } from '../../src/agent/proxy-status.js';
import { federate } from '../../src/federation/federate.js';
import { compileAccess, evaluateAccess, identityMatcher, type AccessEnv, type AccessTarget } from '../../src/policies/access/evaluate.js';
import type { AccessPolicy } from '../../src/policies/access/kind.js';
import { viewEndpoints } from '../../src/policies/access/status.js';
import { accessHttpFilters, RBAC_TYPE } from '../../src/policies/access/xds.js';
import { explain, formatExplain } from '../../src/analysis/explain.js';
import { policyStatuses } from '../../src/policies/resolve.js';
import { serverListenerResource, translateServerListener } from '../../src/translate/xds/index.js';
import { encodeResource, protoRoot } from '../../src/xds/proto.js';
import { goldenFiles } from '../helpers/golden.js';
import { MeshfedError } from '../../src/util/errors.js';
import { cluster, service, workload } from '../helpers/mesh-fixture.js';
import { serverListenerName } from '../../src/xdsapi/index.js';
import { parseAndValidate, policySet } from '../../src/registry.js';
import { listenerTarget } from '../../src/translate/xds/index.js';

const golden = goldenFiles(import.meta.url, 'src/policies');
const TD = 'meshfed.local';
const id = (c: string, sa: string, ns = 'sample') => `spiffe://${TD}/cluster/${c}/ns/${ns}/sa/${sa}`;

function ap(name: string, spec: unknown, created = '2024-01-01T00:00:00Z'): AccessPolicy {
  const [o] = parseAndValidate(JSON.stringify({ apiVersion: API_VERSION, kind: 'AccessPolicy', metadata: { name, namespace: 'sample' }, spec }));
  o!.metadata.creationTimestamp = created;
  return o as AccessPolicy;
}

function invalid(spec: unknown): string {
  try {
    parseAndValidate(JSON.stringify({ apiVersion: API_VERSION, kind: 'AccessPolicy', metadata: { name: 'x', namespace: 'sample' }, spec }));
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

// rebel-base in cluster2 and cluster3; x-wing workloads (labelled) in cluster1 and cluster2.
const clusters = [cluster('cluster1', 'us-east1', ['us-east1-a']), cluster('cluster2', 'us-east1', ['us-east1-b']), cluster('cluster3', 'us-west1', ['us-west1-a'])];
const port = { name: 'grpc', port: 50051, protocol: 'GRPC' as const };
const sa = (w: Workload, s: string): Workload => ({ ...w, spec: { ...w.spec, serviceAccount: s } });
const objects: ApiObject[] = [
  ...clusters,
  service('cluster2', 'rebel-base', 'sample', [port]),
  service('cluster3', 'rebel-base', 'sample', [port]),
  service('cluster1', 'x-wing', 'sample', [port]),
  service('cluster2', 'x-wing', 'sample', [port]),
  sa(workload('cluster2', 'rebel-base-c2', 'sample', 'rebel-base', '10.2.0.1', { grpc: 40001 }), 'rebel-base'),
  sa(workload('cluster3', 'rebel-base-c3', 'sample', 'rebel-base', '10.3.0.1', { grpc: 40002 }), 'rebel-base'),
  sa(workload('cluster1', 'x-wing-c1', 'sample', 'x-wing', '10.1.0.9', { grpc: 40003 }, { labels: { app: 'x-wing', squadron: 'red' } }), 'x-wing'),
  sa(workload('cluster2', 'x-wing-c2', 'sample', 'x-wing', '10.2.0.9', { grpc: 40004 }, { labels: { app: 'x-wing', squadron: 'gold' } }), 'x-wing'),
];
const view = federate({ clusters, services: objects.filter((o) => o.kind === 'Service') as never, workloads: objects.filter((o) => o.kind === 'Workload') as never });
const rb2 = objects.find((o) => o.metadata.name === 'rebel-base-c2') as Workload;
const target = (mode: 'STRICT' | 'PERMISSIVE' = 'STRICT'): AccessTarget =>
  listenerTarget(
    rb2,
    40001,
    view.services.find((g) => g.name === 'rebel-base'),
    mode,
  );
const env = (policies: AccessPolicy[], defaultAction: 'ALLOW' | 'DENY' = 'ALLOW'): AccessEnv => ({ trustDomain: TD, defaultAction, policies, endpoints: () => viewEndpoints(view) });

const allowC1 = ap('x-wing-c1', {
  action: 'ALLOW',
  destinations: [{ name: 'rebel-base', methods: ['helloworld.Greeter/SayHello'] }],
  sources: [{ cluster: 'cluster1', namespace: 'sample', serviceAccount: 'x-wing' }],
});
const denyGold = ap('no-gold', { action: 'DENY', destinations: [{ name: 'rebel-base', cluster: 'cluster2' }], sources: [{ labels: { squadron: 'gold' } }] }, '2024-02-01T00:00:00Z');

describe('AccessPolicy validation', () => {
  it('rejects invalid input naming the field', () => {
    assert.match(invalid({ action: 'ALLOW', destinations: [{ name: 'rebel-base', methods: ['SayHello'] }] }), /\/spec\/destinations\/0\/methods\/0/);
    assert.match(invalid({ action: 'ALLOW', destinations: [{ paths: [{ exact: '/a/b', prefix: '/a/' }] }] }), /\/spec\/destinations\/0\/paths\/0: set exactly one of exact, prefix/);
    assert.match(invalid({ action: 'PERMIT', destinations: [{}] }), /\/spec\/action/);
    assert.match(invalid({ action: 'ALLOW', destinations: [{}], sources: [{ cluster: 'c1' }, { cluster: 'c1' }] }), /\/spec\/sources\/1: the same source is listed twice/);
    assert.match(invalid({ action: 'ALLOW', destinations: [{ service: 'x' }] }), /\/spec\/destinations\/0/);
    assert.match(invalid({ action: 'ALLOW', destinations: [] }), /\/spec\/destinations/);
    assert.equal(invalid({ action: 'DENY', destinations: [{ name: 'a', ports: [50051, 'grpc'], methods: ['helloworld.Greeter/*'] }], sources: [{}] }), '');
  });
  it('Mesh.spec.access.default accepts ALLOW or DENY only', () => {
    const mesh = (d: string) => JSON.stringify({ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { access: { default: d } } });
    assert.doesNotThrow(() => parseAndValidate(mesh('DENY')));
    assert.throws(() => parseAndValidate(mesh('MAYBE')), /\/spec\/access\/default/);
  });
});

describe('AccessPolicy translation', () => {
  it('identity matchers: exact when complete, prefix when the tail is open, regex otherwise', () => {
    assert.deepEqual(identityMatcher(TD, { cluster: 'c1', namespace: 'ns', serviceAccount: 'sa' }), { exact: id('c1', 'sa', 'ns') });
    assert.deepEqual(identityMatcher(TD, { cluster: 'c1' }), { prefix: `spiffe://${TD}/cluster/c1/ns/` });
    assert.deepEqual(identityMatcher(TD, { cluster: 'c1', namespace: 'ns' }), { prefix: `spiffe://${TD}/cluster/c1/ns/ns/sa/` });
    assert.deepEqual(identityMatcher(TD, {}), { prefix: `spiffe://${TD}/cluster/` });
    assert.deepEqual(identityMatcher(TD, { serviceAccount: 'x-wing' }), { safe_regex: { regex: 'spiffe://meshfed\\.local/cluster/[^/]+/ns/[^/]+/sa/x-wing' } });
  });

  it('DENY filter then ALLOW filter before the router; labels resolved to identities; strict Envoy encoding (golden)', () => {
    const filters = accessHttpFilters(compileAccess(env([allowC1, denyGold]), target()));
    assert.deepEqual(
      filters.map((f) => f.name),
      ['meshfed.access.deny', 'meshfed.access.allow'],
    );
    const listener = serverListenerResource(serverListenerName('10.2.0.1', 40001), { address: '10.2.0.1', port: 40001, mode: 'STRICT', httpFilters: filters });
    encodeResource(listener);
    const hcm = (listener.message.filter_chains as { filters: { typed_config: { http_filters: { name: string; is_optional?: boolean }[] } }[] }[])[0]!.filters[0]!.typed_config;
    assert.deepEqual(
      hcm.http_filters.map((f) => f.name),
      ['meshfed.access.deny', 'meshfed.access.allow', 'envoy.filters.http.router'],
    );
    assert.ok(
      hcm.http_filters.every((f) => f.is_optional === undefined),
      'never optional',
    );
    golden.expect('access/testdata/rebel-base-cluster2.yaml', filters);
    assert.match(JSON.stringify(filters[0]), new RegExp(id('cluster2', 'x-wing')), 'gold squadron label -> the identity of x-wing-c2');
  });

  it('no policy and default ALLOW: no filter (servers without RBAC support keep working); default DENY: an empty ALLOW filter', () => {
    assert.deepEqual(accessHttpFilters(compileAccess(env([]), target())), []);
    const deny = accessHttpFilters(compileAccess(env([], 'DENY'), target()));
    assert.deepEqual(deny, [{ name: 'meshfed.access.allow', typed_config: { '@type': RBAC_TYPE, rules: { action: 'ALLOW', policies: {} } } }]);
    const noFilters = translateServerListener(
      serverListenerName('10.2.0.1', 40001),
      () => 'STRICT',
      () => [],
    )!;
    assert.equal(JSON.stringify(noFilters.message).includes('rbac'), false);
  });

  it('a policy for another cluster, namespace or port does not select the workload', () => {
    const other = [
      ap('c3', { action: 'DENY', destinations: [{ name: 'rebel-base', cluster: 'cluster3' }] }),
      ap('port', { action: 'DENY', destinations: [{ name: 'rebel-base', ports: [9999] }] }),
      ap('name', { action: 'DENY', destinations: [{ name: 'x-wing' }] }),
    ];
    assert.deepEqual(accessHttpFilters(compileAccess(env(other), target())), []);
    assert.equal(accessHttpFilters(compileAccess(env([ap('p', { action: 'DENY', destinations: [{ ports: ['grpc'] }] })]), target())).length, 1);
  });
});

// grpc-js-xds's RBAC engine, run on what the server would decode from our bytes.
const require = createRequire(import.meta.url);
const { parseConfig } = require('@grpc/grpc-js-xds/build/src/rbac.js') as { parseConfig: (rules: unknown) => { apply(info: unknown): boolean } };

function libraryVerdict(filters: Record<string, unknown>[], identity: string | undefined, urlPath: string): 'ALLOW' | 'DENY' {
  const type = protoRoot().lookupType('envoy.extensions.filters.http.rbac.v3.RBAC');
  for (const f of filters) {
    const { '@type': _t, ...fields } = f.typed_config as Record<string, unknown>;
    const decoded = type.toObject(type.decode(type.encode(type.fromObject(fields)).finish()), { enums: String, longs: String, defaults: true, oneofs: true }) as { rules: unknown };
    const info = {
      urlPath,
      headers: { get: () => [] },
      tls: identity !== undefined,
      peerCertificate: identity ? { subjectaltname: `URI:${identity}`, subject: {} } : null,
      sourceIp: '::ffff:127.0.0.1',
      destinationIp: '::ffff:127.0.0.1',
      destinationPort: 40001,
    };
    if (!parseConfig(decoded.rules).apply(info)) return 'DENY';
  }
  return 'ALLOW';
}

describe('the rule, and explain agreeing with the RBAC engine gRPC runs', () => {
  const callers = [id('cluster1', 'x-wing'), id('cluster2', 'x-wing'), id('cluster3', 'tie-fighter', 'empire'), undefined];
  const methods = ['/helloworld.Greeter/SayHello', '/helloworld.Greeter/SayGoodbye'];
  const cases: [string, AccessPolicy[], 'ALLOW' | 'DENY', ('ALLOW' | 'DENY')[][]][] = [
    [
      'no policy, default ALLOW',
      [],
      'ALLOW',
      [
        ['ALLOW', 'ALLOW'],
        ['ALLOW', 'ALLOW'],
        ['ALLOW', 'ALLOW'],
        ['ALLOW', 'ALLOW'],
      ],
    ],
    [
      'no policy, default DENY',
      [],
      'DENY',
      [
        ['DENY', 'DENY'],
        ['DENY', 'DENY'],
        ['DENY', 'DENY'],
        ['DENY', 'DENY'],
      ],
    ],
    [
      'x-wing@cluster1 may SayHello; ALLOW restricts everyone else',
      [allowC1],
      'ALLOW',
      [
        ['ALLOW', 'DENY'],
        ['DENY', 'DENY'],
        ['DENY', 'DENY'],
        ['DENY', 'DENY'],
      ],
    ],
    [
      'DENY (gold squadron = x-wing@cluster2) wins over ALLOW everyone in sample',
      [ap('sample', { action: 'ALLOW', destinations: [{ name: 'rebel-base' }], sources: [{ namespace: 'sample' }] }), denyGold],
      'ALLOW',
      [
        ['ALLOW', 'ALLOW'],
        ['DENY', 'DENY'],
        ['DENY', 'DENY'],
        ['DENY', 'DENY'],
      ],
    ],
    [
      'DENY every caller of SayGoodbye, default ALLOW',
      [ap('bye', { action: 'DENY', destinations: [{ name: 'rebel-base', methods: ['helloworld.Greeter/SayGoodbye'] }] })],
      'ALLOW',
      [
        ['ALLOW', 'DENY'],
        ['ALLOW', 'DENY'],
        ['ALLOW', 'DENY'],
        ['ALLOW', 'DENY'],
      ],
    ],
    [
      'ALLOW every identity (sources [{}]) of any service of the namespace',
      [ap('mesh', { action: 'ALLOW', destinations: [{}], sources: [{}] })],
      'DENY',
      [
        ['ALLOW', 'ALLOW'],
        ['ALLOW', 'ALLOW'],
        ['ALLOW', 'ALLOW'],
        ['DENY', 'DENY'],
      ],
    ],
  ];
  for (const [name, policies, def, want] of cases) {
    it(name, () => {
      const c = compileAccess(env(policies, def), target());
      const filters = accessHttpFilters(c);
      callers.forEach((caller, i) =>
        methods.forEach((m, j) => {
          const ours = evaluateAccess(c, { ...(caller ? { identity: caller } : {}), path: m });
          const lib = libraryVerdict(filters, caller, m);
          assert.equal(ours.action, lib, `${caller ?? 'no identity'} ${m}: explain ${ours.action} (${ours.reason}), gRPC ${lib}`);
          assert.equal(ours.action, want[i]![j], `${caller ?? 'no identity'} ${m}: ${ours.reason}`);
        }),
      );
    });
  }

  it('PERMISSIVE: a DENY policy with sources denies callers without an identity (fail closed); an ALLOW by identity matches none', () => {
    const deny = compileAccess(env([denyGold]), target('PERMISSIVE'));
    const v = evaluateAccess(deny, { path: methods[0]! });
    assert.equal(v.action, 'DENY');
    assert.match(v.reason, /callers without an identity/);
    assert.equal(libraryVerdict(accessHttpFilters(deny), undefined, methods[0]!), 'DENY');
    const allow = compileAccess(env([allowC1]), target('PERMISSIVE'));
    assert.equal(evaluateAccess(allow, { path: methods[0]! }).action, 'DENY');
    assert.equal(libraryVerdict(accessHttpFilters(allow), undefined, methods[0]!), 'DENY');
  });
});

describe('AccessPolicy status', () => {
  it('lists the workloads and identities it resolved to; names the field of every unknown reference', () => {
    const bad = ap('bad', {
      action: 'ALLOW',
      destinations: [{ name: 'death-star' }, { name: 'rebel-base', cluster: 'cluster9' }, { name: 'rebel-base', cluster: 'cluster1' }, { name: 'rebel-base', ports: ['http'] }],
      sources: [{ cluster: 'cluster7' }, { cluster: 'cluster1', serviceAccount: 'tie-fighter' }, { labels: { squadron: 'rogue' } }, { namespace: 'empire' }],
    });
    const st = policyStatuses(view, policySet([allowC1, denyGold, bad]));
    const ok = st.get('AccessPolicy sample/x-wing-c1')!;
    assert.deepEqual(ok.destinations, ['cluster2/sample/rebel-base-c2 (rebel-base)', 'cluster3/sample/rebel-base-c3 (rebel-base)']);
    assert.deepEqual(ok.sources, [id('cluster1', 'x-wing')]);
    assert.deepEqual(ok.problems, []);
    assert.deepEqual(st.get('AccessPolicy sample/no-gold')!.sources, [id('cluster2', 'x-wing')]);
    const b = st.get('AccessPolicy sample/bad')!;
    assert.deepEqual(b.destinations, []);
    assert.deepEqual(
      b.problems.map((p) => p.path),
      [
        '/spec/destinations/0/name',
        '/spec/destinations/1/cluster',
        '/spec/destinations/2/cluster',
        '/spec/destinations/3/ports/0',
        '/spec/sources/0/cluster',
        '/spec/sources/1/serviceAccount',
        '/spec/sources/2/labels',
        '/spec/sources/3/namespace',
      ],
    );
    assert.match(b.problems[0]!.message, /no service "death-star" in namespace "sample"/);
    assert.match(b.problems[4]!.message, /no member cluster "cluster7"/);
    assert.match(b.problems[5]!.message, /service account "tie-fighter"/);
  });

  it('reports a PERMISSIVE destination: identity sources cannot match there', () => {
    const mesh = parseAndValidate(JSON.stringify({ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { mtls: { mode: 'PERMISSIVE' } } }))[0] as never;
    const st = policyStatuses(view, policySet([denyGold]), mesh).get('AccessPolicy sample/no-gold')!;
    assert.match(st.problems.at(-1)!.message, /not STRICT.*fail closed/);
  });
});

describe('explain', () => {
  const mesh: ApiObject = { apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { trustDomain: TD } };
  const from = { cluster: 'cluster1', namespace: 'sample', workload: 'x-wing-c1' };

  it('route, endpoints with priorities and shares, and a verdict per destination with the deciding policy', () => {
    const r = explain([...objects, mesh, allowC1], { from, to: 'rebel-base', method: 'helloworld.Greeter/SayGoodbye' });
    assert.equal(r.from.identity, id('cluster1', 'x-wing'));
    assert.deepEqual(r.route, { name: 'default', match: 'every call', from: 'no TrafficPolicy (default route)' });
    assert.deepEqual(
      r.endpoints.map((e) => [e.cluster, e.workload, e.priority, e.share, e.access.action, e.access.decidedBy]),
      [
        ['cluster2', 'rebel-base-c2', 0, 50, 'DENY', 'AccessPolicy sample/x-wing-c1'],
        ['cluster3', 'rebel-base-c3', 0, 50, 'DENY', 'AccessPolicy sample/x-wing-c1'],
      ],
    );
    assert.equal(r.verdict, 'DENY');
    const hello = explain([...objects, mesh, allowC1], { from, to: 'rebel-base.sample.cluster2', method: 'helloworld.Greeter/SayHello' });
    assert.equal(hello.verdict, 'ALLOW');
    assert.match(hello.endpoints[0]!.access.reason, /sources\[0\].*destinations\[0\] \(\/helloworld\.Greeter\/SayHello\)/);
    assert.match(formatExplain(hello), /verdict: allowed/);
  });

  it('--with: the same dry run as plan; failover priorities and a TrafficPolicy split show', () => {
    const failover: ApiObject = {
      apiVersion: API_VERSION,
      kind: 'FailoverPolicy',
      metadata: { name: 'fo', namespace: 'sample', creationTimestamp: '2024-01-01T00:00:00Z' },
      spec: { destinations: [{ name: 'rebel-base' }], affinity: 'local', order: ['zone', 'region'] },
    };
    const r = explain([...objects, mesh, failover], { from, to: 'rebel-base', with: [denyGold] });
    assert.deepEqual(r.applied, ['AccessPolicy sample/no-gold']);
    assert.deepEqual(
      r.endpoints.map((e) => [e.cluster, e.priority, e.share, e.access.action]),
      [
        ['cluster2', 0, 100, 'ALLOW'],
        ['cluster3', 1, 0, 'ALLOW'],
      ],
    );
    const gold = explain([...objects, mesh], { from: { cluster: 'cluster2', namespace: 'sample', workload: 'x-wing-c2' }, to: 'rebel-base', with: [denyGold] });
    assert.equal(gold.verdict, 'MIXED', 'cluster2 denies the gold squadron, cluster3 has no policy');
    assert.match(formatExplain(gold), /cluster2\s+rebel-base-c2.*DENY\s+AccessPolicy sample\/no-gold/);
  });

  it('names the field of what it cannot find', () => {
    assert.throws(() => explain(objects, { from: { ...from, workload: 'ghost' }, to: 'rebel-base' }), /from: .*--service-account/);
    // Unknown caller or service: not found (HTTP 404, exit 4); a malformed method: invalid (400).
    assert.throws(
      () => explain(objects, { from, to: 'death-star' }),
      (e: unknown) => e instanceof MeshfedError && e.code === 'not-found' && e.httpStatus === 404 && /^to: no service/.test(e.message),
    );
    assert.throws(
      () => explain(objects, { from, to: 'rebel-base', method: 'SayHello' }),
      (e: unknown) => e instanceof MeshfedError && e.code === 'invalid' && /method: "SayHello" is not pkg.Service\/Method/.test(e.message),
    );
    assert.equal(explain(objects, { from: { ...from, workload: 'ghost', serviceAccount: 'x-wing' }, to: 'rebel-base' }).verdict, 'ALLOW');
  });
});

describe('proxy-status hint', () => {
  it('a Listener NACKed over our RBAC filter gets the GRPC_XDS_EXPERIMENTAL_RBAC hint', () => {
    assert.match(nackHint('type.googleapis.com/envoy.config.listener.v3.Listener', 'meshfed.access.allow filter validation failed') ?? '', /GRPC_XDS_EXPERIMENTAL_RBAC=true/);
    assert.equal(nackHint('type.googleapis.com/envoy.config.cluster.v3.Cluster', 'meshfed.access.allow'), undefined);
  });
});
