// `meshfed crds` yields CustomResourceDefinitions a real API server takes: each
// validates against kubernetes-models' apiextensions.k8s.io/v1
// CustomResourceDefinition, and its schema obeys Kubernetes' structural-schema
// rules (test/helpers/structural-schema.ts; the checker is proven here to fail
// on planted violations). Short names never take a built-in's, and the
// discovered kinds (reported by agents) get no CRD.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { crdFor, KUBERNETES_SHORT_NAMES } from '../../src/api/index.js';
import { CRD_KINDS, crds, KINDS } from '../../src/registry.js';
import { structuralProblems, valueProblems } from '../helpers/structural-schema.js';

type Json = Record<string, unknown>;
interface Crd {
  metadata: { name: string };
  spec: { names: { kind: string; shortNames?: string[] }; versions: { schema: { openAPIV3Schema: Json }; subresources?: Json }[] };
}
const schemaOf = (c: Crd): Json => c.spec.versions[0]!.schema.openAPIV3Schema;

test('every CRD of meshfed crds validates as an apiextensions.k8s.io/v1 CustomResourceDefinition', () => {
  const all = crds() as unknown as Crd[];
  assert.deepEqual(
    all.map((c) => c.spec.names.kind),
    CRD_KINDS.map((k) => k.kind),
  );
  for (const c of all) assert.doesNotThrow(() => new CustomResourceDefinition(c as never).validate(), c.metadata.name);
});

test('every kind, emitted or not, has a structural schema', () => {
  for (const k of KINDS) {
    const problems = structuralProblems(schemaOf(crdFor(k) as unknown as Crd));
    assert.deepEqual(problems, [], `${k.kind}:\n${problems.join('\n')}`);
  }
});

test('the CRDs are the kinds the hub reads from Kubernetes: Mesh and the policies, each with a status subresource and conditions', () => {
  const names = (crds() as unknown as Crd[]).map((c) => c.spec.names.kind);
  for (const discovered of KINDS.filter((k) => k.discovered)) assert.ok(!names.includes(discovered.kind), `${discovered.kind} is reported by agents: no CRD`);
  assert.ok(names.includes('Mesh') && names.includes('TrafficPolicy') && names.includes('AccessPolicy') && names.includes('FailoverPolicy'));
  for (const c of crds() as unknown as Crd[]) {
    assert.deepEqual(c.spec.versions[0]!.subresources, { status: {} }, c.metadata.name);
    const status = (schemaOf(c).properties as Json).status as Json;
    const conditions = (status.properties as Json).conditions as Json;
    assert.equal(conditions.type, 'array', c.metadata.name);
    // A condition as the hub writes it is valid and survives pruning.
    const cond = { type: 'Accepted', status: 'False', reason: 'Invalid', message: 'spec.x: bad', lastTransitionTime: '2024-01-01T00:00:00Z', observedGeneration: 2 };
    assert.deepEqual(valueProblems(status, { conditions: [cond] }, 'status'), []);
  }
});

test("short names never take one of Kubernetes' built-ins (svc stays the core Service's)", () => {
  assert.ok(KUBERNETES_SHORT_NAMES.has('svc') && KUBERNETES_SHORT_NAMES.has('po') && KUBERNETES_SHORT_NAMES.has('crd'));
  for (const k of KINDS) {
    const c = crdFor(k) as unknown as Crd;
    for (const s of c.spec.names.shortNames ?? []) assert.ok(!KUBERNETES_SHORT_NAMES.has(s), `${k.kind}: short name ${s} is a built-in's`);
  }
  const service = crdFor(KINDS.find((k) => k.kind === 'Service')!) as unknown as Crd;
  assert.ok(!(service.spec.names.shortNames ?? []).includes('svc'));
  assert.deepEqual((crdFor(KINDS.find((k) => k.kind === 'TrafficPolicy')!) as unknown as Crd).spec.names.shortNames, ['tp']);
});

test('the checker finds planted violations, each naming its path', () => {
  const base = (): Json => schemaOf(crdFor(KINDS.find((k) => k.kind === 'TrafficPolicy')!) as unknown as Crd);
  const spec = (s: Json): Json => (s.properties as Json).spec as Json;
  const cases: [string, (s: Json) => void, RegExp][] = [
    ['a node without a type', (s) => delete spec(s).type, /no type/],
    ['$ref', (s) => (spec(s).$ref = '#/definitions/x'), /\$ref: not allowed/],
    ['const (not a JSONSchemaProps field)', (s) => (spec(s).const = 1), /const: not a field/],
    ['properties beside additionalProperties', (s) => (spec(s).additionalProperties = { type: 'string' }), /mutually exclusive/],
    ['additionalProperties false', (s) => (s.additionalProperties = false), /cannot be false/],
    ['uniqueItems', (s) => (spec(s).uniqueItems = true), /uniqueItems: cannot be true/],
    ['a type inside anyOf', (s) => (spec(s).anyOf = [{ type: 'object' }]), /anyOf\[0\]\.type: not allowed inside/],
    ['a field only inside oneOf', (s) => (spec(s).oneOf = [{ properties: { nowhere: { minLength: 1 } } }]), /nowhere: specified inside a junctor but not outside/],
    ['metadata beyond name/generateName', (s) => ((s.properties as Json).metadata = { type: 'object', properties: { labels: { type: 'object' } } }), /metadata allows only/],
    ['a default of the wrong type', (s) => (spec(s).default = 'x'), /default: "x" is not of type object/],
    ['a default with a pruned field', (s) => (spec(s).default = { unknownField: 1 }), /unknownField: not specified by the schema/],
    ['a default outside the enum', (s) => ((s.properties as Json).kind = { type: 'string', enum: ['TrafficPolicy'], default: 'Other' }), /not one of/],
    ['the int-or-string pattern with a type', (s) => (spec(s)['x-kubernetes-int-or-string'] = true), /takes no type/],
  ];
  for (const [what, plant, expected] of cases) {
    const s = base();
    assert.deepEqual(structuralProblems(s), [], 'the base is structural');
    plant(s);
    const problems = structuralProblems(s);
    assert.ok(
      problems.some((p) => expected.test(p)),
      `${what}: expected ${String(expected)}, got ${JSON.stringify(problems)}`,
    );
  }
  // The int-or-string patterns Kubernetes allows are not flagged.
  assert.deepEqual(structuralProblems({ type: 'object', properties: { port: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] } } }), []);
});
