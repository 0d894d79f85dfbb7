// Kubernetes CustomResourceDefinitions from the same schemas that validate the
// API, so Kubernetes mode can never drift from the hub's validation.
//
// Kubernetes accepts only "structural" schemas: no `const` (use enum), no
// patternProperties, no additionalProperties beside properties (unknown fields
// are pruned instead), and metadata left to the API server.
import type { TSchema } from '@sinclair/typebox';
import { API_GROUP } from './meta.js';
import type { KindDef } from './kind.js';

type Json = Record<string, unknown>;

export function crdFor(def: KindDef): Json {
  const schema = toStructural(plain(def.schema)) as Json;
  const props = schema.properties as Json;
  props.metadata = { type: 'object' };
  const version: Json = {
    name: 'v1alpha1',
    served: true,
    storage: true,
    schema: { openAPIV3Schema: schema },
    additionalPrinterColumns: def.kind === 'Cluster' ? [{ name: 'Region', type: 'string', jsonPath: '.spec.region' }] : [],
  };
  if (props.status) version.subresources = { status: {} };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.plural}.${API_GROUP}` },
    spec: {
      group: API_GROUP,
      scope: def.namespaced ? 'Namespaced' : 'Cluster',
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.kind.toLowerCase(),
        ...(def.shortNames?.length ? { shortNames: def.shortNames } : {}),
      },
      versions: [version],
    },
  };
}

/** Drops TypeBox's symbol keys. */
function plain(s: TSchema): unknown {
  return JSON.parse(JSON.stringify(s)) as unknown;
}

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
    n['x-kubernetes-int-or-string'] = true;
  }
  if ('const' in n) {
    n.type = typeof n.const;
    n.enum = [n.const];
    delete n.const;
  }
  if (n.patternProperties) {
    const values = Object.values(n.patternProperties as Json);
    delete n.patternProperties;
    n.additionalProperties = values[0] ?? {};
  }
  if (n.properties && n.additionalProperties === false) delete n.additionalProperties;
  if (n.type === 'object' && !n.properties && n.additionalProperties === undefined) n['x-kubernetes-preserve-unknown-fields'] = true;
  for (const k of ['properties', 'items', 'additionalProperties'] as const) {
    const v = n[k];
    if (k === 'properties' && v && typeof v === 'object') {
      n[k] = Object.fromEntries(Object.entries(v as Json).map(([pk, pv]) => [pk, toStructural(pv)]));
    } else if (v && typeof v === 'object') n[k] = toStructural(v);
  }
  return n;
}
