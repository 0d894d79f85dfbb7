// Cluster: a member of the fleet. The hub holds no credentials for it; its agent dials out.
import { Type, type Static } from '@sinclair/typebox';
import { DnsLabel, Name } from '../meta.js';
import { defineKind } from '../kind.js';

export const ClusterSpec = Type.Object(
  {
    network: DnsLabel({ default: 'default', description: 'endpoints on one network reach each other directly' }),
    region: Type.String({ minLength: 1, maxLength: 63, description: 'topology region of the cluster' }),
    zones: Type.Array(Type.String({ minLength: 1, maxLength: 63 }), { minItems: 1, uniqueItems: true, description: 'topology zones of the cluster' }),
    displayName: Type.Optional(Type.String({ maxLength: 253 })),
  },
  { additionalProperties: false },
);
export type ClusterSpec = Static<typeof ClusterSpec>;

export const ClusterStatus = Type.Object({
  agent: Type.Optional(
    Type.Object({
      connected: Type.Boolean(),
      lastSeen: Type.Optional(Type.String()),
      since: Type.Optional(Type.String()),
      version: Type.Optional(Type.String()),
      viewVersion: Type.Optional(Type.String()),
      reportGeneration: Type.Optional(Type.Integer()),
      message: Type.Optional(Type.String()),
    }),
  ),
  // Written by the hub (src/hub/cluster-liveness.ts) on each transition only, not per heartbeat.
  liveness: Type.Optional(
    Type.Object({
      state: Type.Union([Type.Literal('Live'), Type.Literal('Suspect'), Type.Literal('Withdrawn')]),
      /** When the cluster entered this state. */
      since: Type.String(),
      /** Suspect and Withdrawn: when its agent was last heard (its endpoints are stale since then). */
      lastHeartbeat: Type.Optional(Type.String()),
    }),
  ),
  services: Type.Optional(Type.Integer()),
  workloads: Type.Optional(Type.Integer()),
});
export type ClusterStatus = Static<typeof ClusterStatus>;

export const ClusterKind = defineKind({
  kind: 'Cluster',
  plural: 'clusters',
  shortNames: ['cl'],
  namespaced: false,
  discovered: false,
  spec: ClusterSpec,
  status: ClusterStatus,
  columns: [
    { header: 'NETWORK', value: (o) => o.spec.network },
    { header: 'REGION', value: (o) => o.spec.region },
    { header: 'ZONES', value: (o) => o.spec.zones.join(',') },
    { header: 'AGENT', value: (o) => (o.status?.agent ? (o.status.agent.connected ? 'Connected' : 'Disconnected') : 'Never') },
    { header: 'LIVENESS', value: (o) => o.status?.liveness?.state ?? (o.status?.agent ? 'Live' : '-') },
    { header: 'SERVICES', value: (o) => String(o.status?.services ?? 0) },
    { header: 'WORKLOADS', value: (o) => String(o.status?.workloads ?? 0) },
  ],
  validateObject: (o) => (o.metadata.namespace ? [{ path: '/metadata/namespace', message: 'Cluster is not namespaced' }] : []),
});
export type Cluster = typeof ClusterKind.$object;
void Name;
