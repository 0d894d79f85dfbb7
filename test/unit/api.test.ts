// The API model: parsing YAML/JSON documents all or nothing, field-path errors,
// defaults, and CRDs from the same schemas. Pure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterKind, InvalidInputError, parseDocuments, WorkloadKind } from '../../src/api/index.js';
import { parseAndValidate } from '../../src/registry.js';

const cluster = (spec: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'meshfed.io/v1alpha1',
  kind: 'Cluster',
  metadata: { name: 'cluster1' },
  spec,
  ...extra,
});

test('a valid Cluster gets its defaults', () => {
  const r = ClusterKind.check(cluster({ region: 'us-east1', zones: ['a'] }));
  assert.ok(r.ok);
  assert.equal(r.value.spec.network, 'default');
});

test('a rejected input is not mutated by defaulting', () => {
  const input = cluster({ zones: ['a'] });
  const r = ClusterKind.check(input);
  assert.equal(r.ok, false);
  assert.deepEqual(input.spec, { zones: ['a'] });
});

test('field errors name the field path', () => {
  const r = ClusterKind.check(cluster({ region: 'r', zones: [], netwrok: 'x' }));
  assert.equal(r.ok, false);
  if (r.ok) return;
  const paths = r.errors.map((e) => e.path);
  assert.ok(paths.includes('/spec/zones'), JSON.stringify(r.errors));
  assert.ok(
    paths.some((p) => p.startsWith('/spec/netwrok')),
    `unknown field reported: ${JSON.stringify(r.errors)}`,
  );
});

test('multi-document YAML yields every object; JSON works too', () => {
  const text = `
apiVersion: meshfed.io/v1alpha1
kind: Cluster
metadata: {name: c1}
spec: {region: r1, zones: [z1]}
---
apiVersion: meshfed.io/v1alpha1
kind: Mesh
metadata: {name: default}
spec: {}
---
`;
  const objs = parseAndValidate(text, 'f.yaml');
  assert.deepEqual(
    objs.map((o) => `${o.kind}/${o.metadata.name}`),
    ['Cluster/c1', 'Mesh/default'],
  );
  assert.equal((objs[1]!.spec as { trustDomain: string }).trustDomain, 'meshfed.local');
  const json = parseAndValidate(JSON.stringify([cluster({ region: 'r', zones: ['z'] })]), 'f.json');
  assert.equal(json.length, 1);
});

test('one bad document rejects the whole input and names document, object and field', () => {
  const text = `
apiVersion: meshfed.io/v1alpha1
kind: Cluster
metadata: {name: good}
spec: {region: r1, zones: [z1]}
---
apiVersion: meshfed.io/v1alpha1
kind: Cluster
metadata: {name: bad}
spec: {region: r1, zones: [z1, z1]}
`;
  assert.throws(
    () => parseAndValidate(text, 'clusters.yaml'),
    (err: unknown) => {
      assert.ok(err instanceof InvalidInputError);
      assert.match(err.message, /clusters\.yaml document 2 \(Cluster bad\)/);
      assert.match(err.message, /\/spec\/zones/);
      return true;
    },
  );
});

test('unknown kind and wrong apiVersion are named', () => {
  assert.throws(
    () => parseAndValidate('apiVersion: meshfed.io/v1alpha1\nkind: Frobnicator\nmetadata: {name: x}\nspec: {}\n'),
    /unknown kind "Frobnicator"; known kinds: Cluster, Mesh, Service, Workload/,
  );
  assert.throws(() => parseAndValidate('apiVersion: v1\nkind: Cluster\nmetadata: {name: x}\nspec: {}\n'), /\/apiVersion: expected "meshfed.io\/v1alpha1"/);
});

test('malformed YAML is reported as such', () => {
  assert.throws(() => parseDocuments('kind: [unclosed\n', 'broken.yaml'), /broken\.yaml document 1:\n\s+\/: malformed YAML/);
});

test('a Workload needs an IP address and a cluster', () => {
  const r = WorkloadKind.check({
    apiVersion: 'meshfed.io/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'w', namespace: 'ns' },
    spec: { service: 'svc', address: '10.0.0.1', ports: { grpc: 80 } },
  });
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.deepEqual(
    r.errors.map((e) => e.path),
    ['/spec/cluster'],
  );
  const bad = WorkloadKind.check({
    apiVersion: 'meshfed.io/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'w', namespace: 'ns' },
    spec: { cluster: 'c', service: 'svc', address: 'host.example', ports: { grpc: 80 } },
  });
  assert.equal(bad.ok, false);
  if (!bad.ok)
    assert.deepEqual(
      bad.errors.map((e) => e.path),
      ['/spec/address'],
    );
});

test('namespaced kinds require a namespace', () => {
  const r = WorkloadKind.check({
    apiVersion: 'meshfed.io/v1alpha1',
    kind: 'Workload',
    metadata: { name: 'w' },
    spec: { cluster: 'c', service: 'svc', address: '10.0.0.1', ports: { grpc: 80 } },
  });
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.errors[0]!.message, /namespace is required/);
});

test('every kind yields a structural CRD from its one schema', async () => {
  const { crdFor } = await import('../../src/api/index.js');
  const { KINDS } = await import('../../src/registry.js');
  for (const k of KINDS) {
    const crd = crdFor(k) as { metadata: { name: string }; spec: { scope: string; versions: { schema: { openAPIV3Schema: unknown } }[] } };
    assert.equal(crd.metadata.name, `${k.plural}.meshfed.io`);
    assert.equal(crd.spec.scope, k.namespaced ? 'Namespaced' : 'Cluster');
    const schema = crd.spec.versions[0]!.schema.openAPIV3Schema;
    const text = JSON.stringify(schema);
    for (const banned of ['"const"', '"patternProperties"', '"anyOf"', '"$id"']) assert.ok(!text.includes(banned), `${k.kind} CRD has ${banned}`);
    // additionalProperties never sits beside properties (Kubernetes rejects that).
    const walk = (n: unknown): void => {
      if (typeof n !== 'object' || n === null) return;
      const o = n as Record<string, unknown>;
      assert.ok(!(o.properties && 'additionalProperties' in o), `${k.kind}: properties with additionalProperties`);
      Object.values(o).forEach(walk);
    };
    walk(schema);
  }
  const cluster = crdFor(KINDS.find((k) => k.kind === 'Cluster')!) as {
    spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: { required: string[]; properties: Record<string, { type: string }> } } } } }[] };
  };
  const spec = cluster.spec.versions[0]!.schema.openAPIV3Schema.properties.spec;
  assert.deepEqual(spec.required.sort(), ['network', 'region', 'zones']);
  assert.equal(spec.properties.zones!.type, 'array');
});
