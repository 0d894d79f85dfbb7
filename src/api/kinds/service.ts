// Service (discovered): one cluster's definition of a service, reported by its agent.
// spec.cluster names the owning cluster and is part of the object's identity.
// Services with the same namespace/name in several clusters federate into one
// global service (see src/federation).
import { Type, type Static } from '@sinclair/typebox';
import { defineKind, type FieldError } from '../kind.js';
import { DnsLabel } from '../meta.js';

/** The owning cluster of a discovered object: part of its identity (refOf). */
export const OwningCluster = DnsLabel({ minLength: 1, maxLength: 63, description: 'the cluster that reported this object' });

export const ServicePort = Type.Object(
  {
    name: DnsLabel({ maxLength: 15 }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    protocol: Type.Union([Type.Literal('GRPC'), Type.Literal('HTTP'), Type.Literal('TCP')], { default: 'GRPC' }),
  },
  { additionalProperties: false },
);
export type ServicePort = Static<typeof ServicePort>;

export const ServiceSpec = Type.Object(
  {
    cluster: OwningCluster,
    ports: Type.Array(ServicePort, { minItems: 1 }),
    exported: Type.Boolean({ default: true, description: 'false keeps the service local to its cluster' }),
    shared: Type.Optional(
      Type.Boolean({
        description:
          "false (Cilium's service.cilium.io/shared: \"false\"): an exported service whose endpoints are not offered to other clusters; this cluster's clients still reach the global service (its own endpoints and every other cluster's)",
      }),
    ),
    affinity: Type.Optional(
      Type.Union([Type.Literal('local'), Type.Literal('remote'), Type.Literal('none')], {
        description: "Default failover affinity for this cluster's clients of the global service when no FailoverPolicy selects it (Cilium's service.cilium.io/affinity); a FailoverPolicy wins",
      }),
    ),
  },
  { additionalProperties: false },
);
export type ServiceSpec = Static<typeof ServiceSpec>;

export const ServiceKind = defineKind({
  kind: 'Service',
  plural: 'services',
  shortNames: ['svc'],
  namespaced: true,
  discovered: true,
  spec: ServiceSpec,
  status: Type.Object({ endpoints: Type.Optional(Type.Integer()) }),
  columns: [
    { header: 'CLUSTER', value: (o) => o.spec.cluster },
    { header: 'PORTS', value: (o) => o.spec.ports.map((p) => `${p.name}:${p.port}/${p.protocol}`).join(',') },
    { header: 'EXPORTED', value: (o) => String(o.spec.exported) },
  ],
  validateObject: (o) => {
    const errs: FieldError[] = [];
    const names = new Set<string>();
    o.spec.ports.forEach((p, i) => {
      if (names.has(p.name)) errs.push({ path: `/spec/ports/${i}/name`, message: `duplicate port name "${p.name}"` });
      names.add(p.name);
    });
    return errs;
  },
});
export type Service = typeof ServiceKind.$object;
