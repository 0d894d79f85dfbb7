// AccessPolicy: who may call which services. Sources are identities (cluster,
// namespace, service account; or workload labels, resolved to the identities of
// the matching workloads), destinations are services of the policy's namespace
// (optionally one cluster's workloads, some ports, some gRPC methods or paths).
// Enforced by the destination workloads' servers (xDS RBAC, gRFC A41); the rule
// (DENY wins, then ALLOW policies, then the Mesh default) is in evaluate.ts.
import { Type, type Static } from '@sinclair/typebox';
import { defineKind, type FieldError } from '../../api/kind.js';
import { DnsName, Labels, Name } from '../../api/meta.js';
import { PolicyStatus } from '../common.js';

export const AccessAction = Type.Union([Type.Literal('ALLOW'), Type.Literal('DENY')]);
export type AccessAction = Static<typeof AccessAction>;

/** `pkg.Service/Method`, or `pkg.Service/*` for every method of the service. */
export const METHOD_PATTERN = '^[A-Za-z_][A-Za-z0-9_.]*/(\\*|[A-Za-z_][A-Za-z0-9_]*)$';

export const AccessDestination = Type.Object(
  {
    name: Type.Optional(Name),
    labels: Type.Optional({ ...Labels, description: 'Service labels' }),
    cluster: Type.Optional(Type.String({ minLength: 1, description: "only the service's workloads in this cluster" })),
    ports: Type.Optional(
      Type.Array(Type.Union([Type.Integer({ minimum: 1, maximum: 65535 }), Type.String({ minLength: 1 })]), {
        minItems: 1,
        description: 'service ports, by number or name; unset: every port',
      }),
    ),
    methods: Type.Optional(
      Type.Array(Type.String({ pattern: METHOD_PATTERN, patternMessage: 'must be a gRPC method: package.Service/Method or package.Service/*' }), {
        minItems: 1,
        description: 'gRPC methods: pkg.Service/Method or pkg.Service/*; unset: every method',
      }),
    ),
    paths: Type.Optional(
      Type.Array(
        Type.Object(
          { exact: Type.Optional(Type.String({ pattern: '^/', patternMessage: "must start with '/'" })), prefix: Type.Optional(Type.String({ pattern: '^/', patternMessage: "must start with '/'" })) },
          { additionalProperties: false },
        ),
        {
          minItems: 1,
          description: 'request paths (gRPC: /pkg.Service/Method)',
        },
      ),
    ),
  },
  { additionalProperties: false, description: 'services of the policy namespace; every set field must match' },
);
export type AccessDestination = Static<typeof AccessDestination>;

export const AccessSource = Type.Object(
  {
    cluster: Type.Optional(Type.String({ minLength: 1 })),
    namespace: Type.Optional(Name),
    serviceAccount: Type.Optional(DnsName()),
    labels: Type.Optional({ ...Labels, description: 'workload labels: the identities of the matching workloads (from the federated view)' }),
  },
  { additionalProperties: false, description: 'caller identities; every set field must match; {} is every identity of the mesh' },
);
export type AccessSource = Static<typeof AccessSource>;

export const AccessPolicySpec = Type.Object(
  {
    action: { ...AccessAction, description: 'ALLOW or DENY; DENY wins over ALLOW' },
    destinations: Type.Array(AccessDestination, { minItems: 1 }),
    sources: Type.Optional(Type.Array(AccessSource, { minItems: 1, description: 'callers; unset: every caller, with or without an identity' })),
  },
  { additionalProperties: false },
);
export type AccessPolicySpec = Static<typeof AccessPolicySpec>;

/** Status: what the policy resolved to (computed by the hub at read time). */
export const AccessPolicyStatus = Type.Object({
  ...PolicyStatus.properties,
  destinations: Type.Optional(Type.Array(Type.String(), { description: 'workloads that enforce it: cluster/namespace/workload (service)' })),
  sources: Type.Optional(Type.Array(Type.String(), { description: 'identities (or identity patterns, * = any) it matches' })),
});

export const AccessPolicyKind = defineKind({
  kind: 'AccessPolicy',
  plural: 'accesspolicies',
  shortNames: ['ap'],
  namespaced: true,
  discovered: false,
  spec: AccessPolicySpec,
  status: AccessPolicyStatus,
  columns: [
    { header: 'ACTION', value: (o) => o.spec.action },
    { header: 'DESTINATIONS', value: (o) => o.spec.destinations.map((d) => `${d.name ?? '*'}${d.cluster ? `@${d.cluster}` : ''}${d.methods ? `[${d.methods.join(',')}]` : ''}`).join(',') },
    { header: 'SOURCES', value: (o) => (o.spec.sources ? o.spec.sources.map(describeSource).join(',') : '*') },
    { header: 'WORKLOADS', value: (o) => String(o.status?.destinations?.length ?? 0) },
    { header: 'PROBLEMS', value: (o) => String(o.status?.problems?.length ?? 0) },
  ],
  validateObject: (o) => validateAccessPolicy(o.spec),
});
export type AccessPolicy = typeof AccessPolicyKind.$object;

/** Rules the schema cannot say. Each error names the field. */
export function validateAccessPolicy(spec: AccessPolicySpec): FieldError[] {
  const errs: FieldError[] = [];
  spec.destinations.forEach((d, i) => {
    const p = `/spec/destinations/${i}`;
    d.paths?.forEach((x, j) => {
      if ((x.exact === undefined) === (x.prefix === undefined)) errs.push({ path: `${p}/paths/${j}`, message: 'set exactly one of exact, prefix' });
    });
    const seen = new Set<string>();
    d.methods?.forEach((m, j) => {
      if (seen.has(m)) errs.push({ path: `${p}/methods/${j}`, message: `method "${m}" is listed twice` });
      seen.add(m);
    });
  });
  const seen = new Set<string>();
  spec.sources?.forEach((s, i) => {
    const k = JSON.stringify([s.cluster, s.namespace, s.serviceAccount, Object.entries(s.labels ?? {}).sort()]);
    if (seen.has(k)) errs.push({ path: `/spec/sources/${i}`, message: 'the same source is listed twice' });
    seen.add(k);
  });
  return errs;
}

export function describeSource(s: AccessSource): string {
  const parts = [`${s.cluster ?? '*'}/${s.namespace ?? '*'}/${s.serviceAccount ?? '*'}`];
  if (s.labels)
    parts.push(
      Object.entries(s.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join('+'),
    );
  return parts.join(':');
}
