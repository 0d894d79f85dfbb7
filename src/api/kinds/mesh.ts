// Mesh: mesh-wide settings. Trust and mTLS settings attach here (see issue on federated trust).
import { Type, type Static } from '@sinclair/typebox';
import { defineKind } from '../kind.js';

export const MeshSpec = Type.Object(
  {
    trustDomain: Type.String({ pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', default: 'meshfed.local', description: 'SPIFFE trust domain' }),
    clusters: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), { uniqueItems: true, description: 'clusters that federate; empty or unset means every Cluster' }),
    ),
  },
  { additionalProperties: false },
);
export type MeshSpec = Static<typeof MeshSpec>;

export const MeshKind = defineKind({
  kind: 'Mesh',
  plural: 'meshes',
  namespaced: false,
  discovered: false,
  spec: MeshSpec,
  status: Type.Object({ clusters: Type.Optional(Type.Array(Type.String())) }),
  columns: [
    { header: 'TRUST-DOMAIN', value: (o) => o.spec.trustDomain },
    { header: 'CLUSTERS', value: (o) => (o.spec.clusters?.length ? o.spec.clusters.join(',') : '*') },
  ],
  validateObject: (o) => (o.metadata.namespace ? [{ path: '/metadata/namespace', message: 'Mesh is not namespaced' }] : []),
});
export type Mesh = typeof MeshKind.$object;
