// Workload (discovered): one instance (pod or VM process) serving a service in one cluster.
// spec.cluster names the owning cluster and is part of the object's identity.
import { Type, type Static } from '@sinclair/typebox';
import { isIP } from 'node:net';
import { defineKind, type FieldError } from '../kind.js';
import { OwningCluster } from './service.js';
import { DnsLabel, DnsName } from '../meta.js';

export const Health = Type.Union([Type.Literal('HEALTHY'), Type.Literal('UNHEALTHY'), Type.Literal('DRAINING')], { default: 'HEALTHY' });
export type Health = Static<typeof Health>;

export const WorkloadSpec = Type.Object(
  {
    cluster: OwningCluster,
    service: DnsLabel({ description: 'name of the Service (same namespace and cluster)' }),
    address: Type.String({ minLength: 1, description: 'IP address (gRPC xDS endpoints must be IPs)' }),
    ports: Type.Record(Type.String(), Type.Integer({ minimum: 1, maximum: 65535 }), { description: 'service port name -> workload port' }),
    serviceAccount: DnsName({ default: 'default' }),
    zone: Type.Optional(Type.String({ minLength: 1 })),
    health: Health,
  },
  { additionalProperties: false },
);
export type WorkloadSpec = Static<typeof WorkloadSpec>;

export const WorkloadKind = defineKind({
  kind: 'Workload',
  plural: 'workloads',
  shortNames: ['wl'],
  namespaced: true,
  discovered: true,
  spec: WorkloadSpec,
  // Set by the agent for a registration with an active health check (src/discovery/health-check.ts).
  status: Type.Object({
    healthCheck: Type.Optional(
      Type.Object({
        type: Type.Union([Type.Literal('tcp'), Type.Literal('grpc')]),
        state: Type.Union([Type.Literal('Unknown'), Type.Literal('Passing'), Type.Literal('Failing')]),
        since: Type.String(),
        message: Type.Optional(Type.String({ maxLength: 1024 })),
      }),
    ),
  }),
  columns: [
    { header: 'CLUSTER', value: (o) => o.spec.cluster },
    { header: 'SERVICE', value: (o) => o.spec.service },
    { header: 'ADDRESS', value: (o) => `${o.spec.address}:${Object.values(o.spec.ports).join(',')}` },
    { header: 'ZONE', value: (o) => o.spec.zone ?? '' },
    { header: 'HEALTH', value: (o) => o.spec.health },
    {
      header: 'LABELS',
      value: (o) =>
        Object.entries(o.metadata.labels ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(','),
    },
  ],
  validateObject: (o) => {
    const errs: FieldError[] = [];
    if (isIP(o.spec.address) === 0) errs.push({ path: '/spec/address', message: `"${o.spec.address}" is not an IP address` });
    if (Object.keys(o.spec.ports).length === 0) errs.push({ path: '/spec/ports', message: 'at least one port is required' });
    return errs;
  },
});
export type Workload = typeof WorkloadKind.$object;
