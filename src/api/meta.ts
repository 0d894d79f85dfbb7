// Object metadata shared by every kind. Discovered kinds (Service, Workload) are
// owned by one cluster, so `cluster` is part of their identity.
import { Type, type Static } from '@sinclair/typebox';
import { flat } from '../util/intern.js';

export const API_GROUP = 'meshfed.io';
export const API_VERSION = 'meshfed.io/v1alpha1';

/** DNS-1123 label: what Kubernetes accepts for names and namespaces. */
export const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

export const Name = Type.String({ pattern: DNS_LABEL, minLength: 1, maxLength: 63, description: 'DNS-1123 label' });

export const Labels = Type.Record(Type.String({ minLength: 1, maxLength: 63 }), Type.String({ maxLength: 63 }), {
  description: 'key/value labels, e.g. version: v1',
});

export const ObjectMeta = Type.Object(
  {
    name: Name,
    namespace: Type.Optional(Name),
    cluster: Type.Optional(Type.String({ description: 'owning cluster (discovered kinds only)' })),
    labels: Type.Optional(Labels),
    annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
    // Set by the store; ignored on input.
    resourceVersion: Type.Optional(Type.String()),
    generation: Type.Optional(Type.Integer()),
    creationTimestamp: Type.Optional(Type.String()),
    uid: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type ObjectMeta = Static<typeof ObjectMeta>;

/** The common envelope; every kind narrows `kind`, `spec` and `status`. */
export interface ApiObject<K extends string = string, S = unknown, St = unknown> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: ObjectMeta;
  spec: S;
  status?: St;
}

/** Identity of an object in the store and in every index. */
export interface ObjectRef {
  kind: string;
  name: string;
  namespace?: string;
  cluster?: string;
}

export function refOf(o: { kind: string; metadata: { name: string; namespace?: string; cluster?: string } }): ObjectRef {
  const r: ObjectRef = { kind: o.kind, name: o.metadata.name };
  if (o.metadata.namespace !== undefined) r.namespace = o.metadata.namespace;
  if (o.metadata.cluster !== undefined) r.cluster = o.metadata.cluster;
  return r;
}

/** Stable key: kind/cluster/namespace/name with empty segments for unset parts. */
export function keyOf(ref: ObjectRef): string {
  // Flat: keys are held by the hundred thousand (store, agent view, indexes).
  return flat(`${ref.kind}/${ref.cluster ?? ''}/${ref.namespace ?? ''}/${ref.name}`);
}

export function parseKey(key: string): ObjectRef {
  const [kind, cluster, namespace, name] = key.split('/');
  if (kind === undefined || name === undefined || cluster === undefined || namespace === undefined) {
    throw new Error(`malformed object key "${key}"`);
  }
  const r: ObjectRef = { kind, name };
  if (cluster) r.cluster = cluster;
  if (namespace) r.namespace = namespace;
  return r;
}

/** Human form used in messages: Kind cluster/namespace/name. */
export function describeRef(ref: ObjectRef): string {
  const parts = [ref.cluster, ref.namespace, ref.name].filter((p) => p !== undefined && p !== '');
  return `${ref.kind} ${parts.join('/')}`;
}
