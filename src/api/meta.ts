// Object metadata shared by every kind: nothing a Kubernetes ObjectMeta cannot
// hold, so every object can live in a Kubernetes API server. Discovered kinds
// (Service, Workload) are owned by one cluster: their `spec.cluster` is part of
// their identity (ObjectRef.cluster). Labels and
// annotations obey Kubernetes' rules (metaErrors): keys are qualified names
// (an optional DNS-subdomain prefix and a 63-character name), label values at
// most 63 characters of the same alphabet, annotations at most 256 KiB in all
// (an object is sent to every agent: its size is bounded).
import { Type, type Static } from '@sinclair/typebox';
import { flat } from '../util/intern.js';

export const API_GROUP = 'meshfed.io';
export const API_VERSION = 'meshfed.io/v1alpha1';

/** DNS-1123 label: what Kubernetes accepts for names and namespaces. */
export const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** DNS_LABEL in words: what a validation error says instead of the regular expression (schema option `patternMessage`). */
export const DNS_LABEL_WORDS = "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit";
/** Dotted names (trust domains, service accounts): DNS_LABEL that may also hold '.'. */
export const DNS_NAME = '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$';
export const DNS_NAME_WORDS = "must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit";

/** A string holding a DNS label (names, namespaces, clusters, networks), with its error in words. */
export function DnsLabel(opts: { minLength?: number; maxLength?: number; description?: string; default?: string } = {}) {
  return Type.String({ ...opts, pattern: DNS_LABEL, patternMessage: DNS_LABEL_WORDS });
}

/** A dotted DNS name (DNS_NAME), with its error in words. */
export function DnsName(opts: { description?: string; default?: string } = {}) {
  return Type.String({ ...opts, pattern: DNS_NAME, patternMessage: DNS_NAME_WORDS });
}

export const Name = DnsLabel({ minLength: 1, maxLength: 63, description: 'DNS-1123 label' });

// Keys up to a 253-character prefix, '/' and a 63-character name; metaErrors checks their form.
export const Labels = Type.Record(Type.String({ minLength: 1, maxLength: 317 }), Type.String({ maxLength: 63 }), {
  description: 'key/value labels, e.g. version: v1',
});

export const ObjectMeta = Type.Object(
  {
    name: Name,
    namespace: Type.Optional(Name),
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

/** Total size of metadata.annotations (keys and values), as Kubernetes: 256 KiB. */
export const MAX_ANNOTATIONS_BYTES = 256 * 1024;

const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** What is wrong with a label or annotation key (Kubernetes' qualified name), or undefined. */
export function qualifiedNameProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined) {
    if (!prefix) return 'the prefix before "/" is empty';
    if (prefix.length > 253) return `the prefix is ${prefix.length} characters, at most 253`;
    if (!DNS_SUBDOMAIN.test(prefix)) return `the prefix "${prefix}" is not a DNS subdomain (lowercase letters, digits, "-" and ".")`;
  }
  if (!name) return 'the name is empty';
  if (name.length > 63) return `the name is ${name.length} characters, at most 63`;
  if (!QUALIFIED_NAME.test(name)) return 'the name must be letters, digits, "-", "_" and ".", starting and ending with a letter or digit';
  return undefined;
}

/** What is wrong with a label value, or undefined (empty is allowed). */
export function labelValueProblem(value: string): string | undefined {
  if (value.length > 63) return `the value is ${value.length} characters, at most 63`;
  if (value && !QUALIFIED_NAME.test(value)) return 'the value must be letters, digits, "-", "_" and ".", starting and ending with a letter or digit';
  return undefined;
}

/** Kubernetes' rules for labels and annotations; each error names the key. */
export function metaErrors(meta: ObjectMeta): { path: string; message: string }[] {
  const errs: { path: string; message: string }[] = [];
  const at = (field: string, key: string) => `/metadata/${field}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
  for (const [k, v] of Object.entries(meta.labels ?? {})) {
    const kp = qualifiedNameProblem(k);
    if (kp) errs.push({ path: at('labels', k), message: `label key "${k}": ${kp}` });
    const vp = labelValueProblem(v);
    if (vp) errs.push({ path: at('labels', k), message: `label "${k}": ${vp}` });
    if (errs.length >= 20) return errs;
  }
  let size = 0;
  for (const [k, v] of Object.entries(meta.annotations ?? {})) {
    size += Buffer.byteLength(k) + Buffer.byteLength(v);
    const kp = qualifiedNameProblem(k);
    if (kp) errs.push({ path: at('annotations', k), message: `annotation key "${k.slice(0, 100)}": ${kp}` });
    if (errs.length >= 20) return errs;
  }
  if (size > MAX_ANNOTATIONS_BYTES) {
    errs.push({ path: '/metadata/annotations', message: `annotations are ${size} bytes in all, at most ${MAX_ANNOTATIONS_BYTES} (256 KiB)` });
  }
  return errs;
}

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

/** The owning cluster of a discovered object (its spec.cluster), else undefined. */
export function clusterOf(o: { spec?: unknown }): string | undefined {
  const c = (o.spec as { cluster?: unknown } | undefined)?.cluster;
  return typeof c === 'string' ? c : undefined;
}

export function refOf(o: { kind: string; metadata: { name: string; namespace?: string }; spec?: unknown }): ObjectRef {
  const r: ObjectRef = { kind: o.kind, name: o.metadata.name };
  if (o.metadata.namespace !== undefined) r.namespace = o.metadata.namespace;
  const cluster = clusterOf(o);
  if (cluster !== undefined) r.cluster = cluster;
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
