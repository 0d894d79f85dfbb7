// Kubernetes CustomResourceDefinitions from the same schemas that validate the
// API, so Kubernetes mode can never drift from the hub's validation.
//
// Kubernetes accepts only "structural" schemas (apiextensions.k8s.io/v1): every
// node typed (but int-or-string), no `const` (an enum instead), no
// patternProperties, no `$id`/`$ref`, no additionalProperties beside
// properties nor set to false (unknown fields are pruned instead), no
// uniqueItems (x-kubernetes-list-type: set says it), exclusiveMinimum/Maximum
// as booleans, junctors (anyOf/oneOf/allOf/not) without types, and metadata
// left to the API server. toStructural rewrites a TypeBox schema to that form;
// test/unit/crd-structural.test.ts checks every kind against these rules.
// A CRD's short names never take one of Kubernetes' built-ins (KUBERNETES_SHORT_NAMES):
// `kubectl get svc` must stay the core Service's.
import type { TSchema } from '@sinclair/typebox';
import { API_GROUP } from './meta.js';
import type { KindDef } from './kind.js';

type Json = Record<string, unknown>;

/** The short names of Kubernetes' built-in resources (kubectl api-resources of a v1.32 cluster). */
export const KUBERNETES_SHORT_NAMES: ReadonlySet<string> = new Set([
  'cm',
  'cs',
  'csr',
  'crd',
  'crds',
  'cj',
  'deploy',
  'ds',
  'ep',
  'ev',
  'hpa',
  'ing',
  'limits',
  'netpol',
  'no',
  'ns',
  'pc',
  'pdb',
  'po',
  'psp',
  'pv',
  'pvc',
  'quota',
  'rc',
  'rs',
  'sa',
  'sc',
  'sts',
  'svc',
  'vac',
]);

/** Annotation key on a CRD of a kind agents report: written by meshfed, never by users. */
export const DISCOVERED_ANNOTATION = 'meshfed.io/discovered';

/**
 * A Kubernetes Condition (metav1.Condition) as the status' `conditions` list
 * holds them: the hub writes `Accepted` on every object it reads from Kubernetes.
 */
const CONDITIONS: Json = {
  type: 'array',
  description: 'conditions of the object as meshfed sees it (Accepted: the hub took it, or why not)',
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
  items: {
    type: 'object',
    required: ['type', 'status'],
    properties: {
      type: { type: 'string', maxLength: 316 },
      status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
      reason: { type: 'string', maxLength: 1024 },
      message: { type: 'string', maxLength: 32768 },
      lastTransitionTime: { type: 'string', format: 'date-time' },
      observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    },
  },
};

export function crdFor(def: KindDef): Json {
  const schema = toStructural(plain(def.schema)) as Json;
  const props = schema.properties as Json;
  props.metadata = { type: 'object' };
  // Status written through the /status subresource: the kind's status and the conditions.
  const status = (props.status as Json | undefined) ?? { type: 'object', properties: {} };
  if (status.properties === undefined) delete status['x-kubernetes-preserve-unknown-fields'];
  status.properties = { ...((status.properties as Json | undefined) ?? {}), conditions: CONDITIONS };
  props.status = status;
  const version: Json = {
    name: 'v1alpha1',
    served: true,
    storage: true,
    schema: { openAPIV3Schema: schema },
    subresources: { status: {} },
    additionalPrinterColumns: [
      ...(def.kind === 'Cluster' ? [{ name: 'Region', type: 'string', jsonPath: '.spec.region' }] : []),
      ...(def.discovered ? [] : [{ name: 'Accepted', type: 'string', jsonPath: '.status.conditions[?(@.type=="Accepted")].status' }]),
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  };
  const shortNames = (def.shortNames ?? []).filter((s) => !KUBERNETES_SHORT_NAMES.has(s));
  const metadata: Json = { name: `${def.plural}.${API_GROUP}` };
  // A discovered kind is reported by agents: marked, so a reader knows not to write it.
  if (def.discovered) metadata.annotations = { [DISCOVERED_ANNOTATION]: 'true' };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata,
    spec: {
      group: API_GROUP,
      scope: def.namespaced ? 'Namespaced' : 'Cluster',
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.kind.toLowerCase(),
        categories: ['meshfed'],
        ...(shortNames.length ? { shortNames } : {}),
      },
      versions: [version],
    },
  };
}

/** Drops TypeBox's symbol keys. */
function plain(s: TSchema): unknown {
  return JSON.parse(JSON.stringify(s)) as unknown;
}

/** JSON Schema keys a CRD schema has no field for (the API server would drop or refuse them). */
const NOT_IN_CRD = ['$id', '$schema', 'examples', 'const', 'patternProperties', 'uniqueItems', 'patternMessage'];

export function toStructural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toStructural);
  if (typeof node !== 'object' || node === null) return node;
  const n = { ...(node as Json) };
  // A union of literals becomes an enum.
  const alts = (n.anyOf ?? n.oneOf) as Json[] | undefined;
  if (alts && alts.every((a) => 'const' in a)) {
    delete n.anyOf;
    delete n.oneOf;
    n.type = typeof alts[0]!.const;
    n.enum = alts.map((a) => a.const);
  }
  // integer | string (a port by number or name) is Kubernetes' int-or-string.
  if (alts && alts.length === 2 && alts.some((a) => a.type === 'integer') && alts.some((a) => a.type === 'string')) {
    delete n.anyOf;
    delete n.oneOf;
    delete n.type;
    n['x-kubernetes-int-or-string'] = true;
  }
  if ('const' in n) {
    n.type = typeof n.const;
    n.enum = [n.const];
  }
  if (n.patternProperties) {
    const values = Object.values(n.patternProperties as Json);
    n.additionalProperties = values[0] ?? {};
  }
  // A set of scalars: the API server refuses duplicates in an x-kubernetes-list-type set, as uniqueItems would.
  if (n.uniqueItems === true) n['x-kubernetes-list-type'] = 'set';
  for (const k of NOT_IN_CRD) delete n[k];
  // JSON Schema 2019's numeric exclusive bounds are OpenAPI 3.0's booleans beside minimum/maximum.
  if (typeof n.exclusiveMinimum === 'number') {
    n.minimum = n.exclusiveMinimum;
    n.exclusiveMinimum = true;
  }
  if (typeof n.exclusiveMaximum === 'number') {
    n.maximum = n.exclusiveMaximum;
    n.exclusiveMaximum = true;
  }
  if (n.additionalProperties === false) delete n.additionalProperties;
  if (n.properties && n.additionalProperties !== undefined) delete n.additionalProperties;
  if (n.type === 'object' && !n.properties && n.additionalProperties === undefined) n['x-kubernetes-preserve-unknown-fields'] = true;
  for (const k of ['properties', 'items', 'additionalProperties'] as const) {
    const v = n[k];
    if (k === 'properties' && v && typeof v === 'object') {
      n[k] = Object.fromEntries(Object.entries(v as Json).map(([pk, pv]) => [pk, toStructural(pv)]));
    } else if (v && typeof v === 'object') n[k] = toStructural(v);
  }
  return n;
}
