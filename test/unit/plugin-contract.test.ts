// The policy plugin contract, held to its promise: a kind defined only by its
// own folder's pieces (a schema and a PolicyPlugin, here in the test) is
// validated, resolved with precedence, reported in status and translated by
// the unchanged xDS builders once it is in the plugin list; and the list in
// src/registry.ts is the one every derived list comes from. Pure.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import { API_VERSION, defineKind, KindRegistry, parseAndValidate, type ApiObject, type KindDef } from '../../src/api/index.js';
import { applicable, clientPolicyStatus, DestinationSelector, policyId, PolicyStatus, SourceSelector } from '../../src/policies/common.js';
import { PolicySet, type PolicyPlugin, type PolicyStatusOut, type Winner } from '../../src/policies/plugin.js';
import { policyStatuses, resolveServicePolicy } from '../../src/policies/resolve.js';
import { KINDS, POLICY_KINDS, POLICY_PLUGINS, VIEW_KINDS, findKind } from '../../src/registry.js';
import { translateService } from '../../src/translate/xds/index.js';
import { CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/xdsapi/index.js';
import { helloworldView } from '../helpers/mesh-fixture.js';

// A kind that exists only here: a per-service request timeout cap, applied to every route and as a Cluster field.
const TimeoutCapKind = defineKind({
  kind: 'TimeoutCapPolicy',
  plural: 'timeoutcappolicies',
  namespaced: true,
  discovered: false,
  spec: Type.Object(
    {
      destinations: Type.Array(DestinationSelector, { minItems: 1 }),
      sources: Type.Optional(Type.Array(SourceSelector, { minItems: 1 })),
      seconds: Type.Integer({ minimum: 1, maximum: 3600 }),
    },
    { additionalProperties: false },
  ),
  status: PolicyStatus,
  columns: [{ header: 'SECONDS', value: (o) => String(o.spec.seconds) }],
});
type TimeoutCap = typeof TimeoutCapKind.$object;

const TimeoutCapPlugin: PolicyPlugin<TimeoutCap, Winner<number>> = {
  kind: TimeoutCapKind,
  enforcedBy: 'client',
  resolve(policies, service, cluster, lose) {
    let won: Winner<number> | undefined;
    for (const p of applicable(policies, service, cluster)) {
      if (won) lose(p, 'spec.seconds', won.from);
      else won = { value: p.spec.seconds, from: policyId(p) };
    }
    return won;
  },
  status: (view, policies) => new Map<string, PolicyStatusOut>(policies.map((p) => [policyId(p), clientPolicyStatus(view, p).status])),
  xds: {
    routes: (_ctx, _backend, r, routes) =>
      r ? routes.map((e) => ({ ...e, route: { ...(e.route as Record<string, unknown>), max_stream_duration: { max_stream_duration: { seconds: r.value } } } })) : routes,
    clusterFields: (_ctx, _backend, r) => (r ? { connect_timeout: { seconds: r.value } } : {}),
  },
};

const plugins = [...POLICY_PLUGINS, TimeoutCapPlugin];
const kinds = new KindRegistry([...KINDS, TimeoutCapKind as KindDef]);
const view = helloworldView([
  { cluster: 'cluster1', version: 'v1', address: '10.1.0.1', port: 50051 },
  { cluster: 'cluster2', version: 'v2', address: '10.2.0.1', port: 50051 },
]);
const hw = view.services.find((s) => s.name === 'helloworld')!;

function cap(name: string, seconds: number, created: string, extra: Record<string, unknown> = {}): ApiObject {
  const [o] = parseAndValidate(
    kinds,
    JSON.stringify({ apiVersion: API_VERSION, kind: 'TimeoutCapPolicy', metadata: { name, namespace: 'sample' }, spec: { destinations: [{ name: 'helloworld' }], seconds, ...extra } }),
  );
  o!.metadata.creationTimestamp = created;
  return o!;
}

describe('a policy kind added through the contract alone', () => {
  it('is parsed and validated from its schema, with the field named', () => {
    assert.throws(() => cap('bad', 0, '2024-01-01T00:00:00Z'), /\/spec\/seconds/);
    assert.equal(cap('ok', 5, '2024-01-01T00:00:00Z').kind, 'TimeoutCapPolicy');
  });

  it('is translated by the unchanged builders: its route and Cluster hooks shape the resources', () => {
    const set = new PolicySet(plugins, [cap('c', 7, '2024-01-01T00:00:00Z')]);
    const res = translateService(hw, { cluster: 'cluster1', policies: set }).resources;
    const route = res.find((r) => r.typeUrl === ROUTE_TYPE && r.name === 'helloworld.sample')!;
    const entry = (route.message.virtual_hosts as { routes: { route: Record<string, unknown> }[] }[])[0]!.routes[0]!;
    assert.deepEqual(entry.route.max_stream_duration, { max_stream_duration: { seconds: 7 } });
    const cl = res.find((r) => r.typeUrl === CLUSTER_TYPE && r.name === 'outbound|8080||helloworld.sample')!;
    assert.deepEqual(cl.message.connect_timeout, { seconds: 7 });
    // The other plugins still run: the TrafficPolicy plugin's fault filter and outlier detection are there.
    const listener = res.find((r) => r.typeUrl === LISTENER_TYPE && r.name === 'helloworld.sample')!;
    assert.match(JSON.stringify(listener.message), /envoy\.filters\.http\.fault/);
    assert.ok(cl.message.outlier_detection);
    // Without the policy the builders' output has none of it.
    const plain = translateService(hw, { cluster: 'cluster1', policies: new PolicySet(plugins, []) }).resources;
    assert.ok(!JSON.stringify(plain).includes('connect_timeout'));
  });

  it('takes part in precedence (oldest wins) and in status, with the conflict reported on the newer one', () => {
    const set = new PolicySet(plugins, [cap('newer', 9, '2024-02-01T00:00:00Z'), cap('older', 3, '2024-01-01T00:00:00Z')]);
    const { policy, conflicts } = resolveServicePolicy(hw, set, 'cluster1');
    assert.deepEqual(policy.get(TimeoutCapPlugin), { value: 3, from: 'TimeoutCapPolicy sample/older' });
    assert.deepEqual(
      conflicts.map((c) => [c.policy, c.field, c.winner]),
      [['TimeoutCapPolicy sample/newer', 'spec.seconds', 'TimeoutCapPolicy sample/older']],
    );
    const st = policyStatuses(view, set);
    assert.deepEqual(st.get('TimeoutCapPolicy sample/older')!.services, ['helloworld.sample']);
    assert.equal(st.get('TimeoutCapPolicy sample/newer')!.conflicts.length, 1);
    // A source cluster it does not apply in gets nothing.
    const only2 = new PolicySet(plugins, [cap('c2', 4, '2024-01-01T00:00:00Z', { sources: [{ cluster: 'cluster2' }] })]);
    assert.equal(resolveServicePolicy(hw, only2, 'cluster1').policy.get(TimeoutCapPlugin), undefined);
  });
});

describe('the one list of plugins', () => {
  it('is where the API registry, the policy kinds and the view kinds come from', () => {
    for (const p of POLICY_PLUGINS) {
      assert.equal(findKind(p.kind.kind), p.kind);
      assert.ok(POLICY_KINDS.has(p.kind.kind));
      assert.ok(VIEW_KINDS.has(p.kind.kind));
    }
    assert.deepEqual([...POLICY_KINDS], ['TrafficPolicy', 'FailoverPolicy', 'AccessPolicy']);
    assert.deepEqual(
      KINDS.map((k) => k.kind),
      ['Cluster', 'Mesh', 'Service', 'Workload', 'Role', 'RoleBinding', ...POLICY_KINDS],
    );
    // Roles and RoleBindings stay at the hub: agents never receive who may do what.
    assert.deepEqual([...VIEW_KINDS], ['Cluster', 'Mesh', 'Service', 'Workload', ...POLICY_KINDS]);
  });
});
