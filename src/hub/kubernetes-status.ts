// The pure half of the hub's Kubernetes source (kubernetes-policies.ts): a
// custom resource to the meshfed object it stands for (validated as an API
// write is, the problems named by field), and the status patch that makes a
// custom resource's status say what the hub made of it.
// Invariants: crToObject keeps only what meshfed objects have (name,
// namespace, labels, annotations, spec; never Kubernetes' system fields or
// kubectl's last-applied annotation) and marks the object as the Kubernetes
// source's. statusPatch is undefined when the custom resource already shows
// the wanted status (so writing it back cannot loop), and Accepted's
// lastTransitionTime moves only when its status does.
import type { KubernetesObject } from '@kubernetes/client-node';
import { API_VERSION, fieldName, type ApiObject, type FieldError, type KindDef } from '../api/index.js';
import { validateObject } from '../registry.js';
import { KUBERNETES_SOURCE, SOURCE_ANNOTATION } from './objects.js';

/** Annotations a Kubernetes client adds that mean nothing to meshfed (and would double an object's size). */
const DROPPED_ANNOTATIONS = ['kubectl.kubernetes.io/last-applied-configuration'];
/** Field problems named in one condition message at most. */
const MAX_PROBLEMS = 5;

export type Outcome = { accepted: true; object: ApiObject } | { accepted: false; reason: 'Invalid' | 'Conflict'; message: string };

type Json = Record<string, unknown>;

/** The problems of a custom resource, each naming its field. */
export function describeProblems(errors: readonly FieldError[]): string {
  const shown = errors.slice(0, MAX_PROBLEMS).map((e) => `${fieldName(e.path)}: ${e.message}`);
  const more = errors.length > MAX_PROBLEMS ? `; and ${errors.length - MAX_PROBLEMS} more` : '';
  return shown.join('; ') + more;
}

/** The meshfed object a custom resource stands for, or why it is not one. */
export function crToObject(cr: KubernetesObject, def: KindDef): { ok: true; object: ApiObject } | { ok: false; message: string } {
  const meta = cr.metadata ?? {};
  const annotations: Record<string, string> = { ...(meta.annotations ?? {}) };
  for (const k of DROPPED_ANNOTATIONS) delete annotations[k];
  annotations[SOURCE_ANNOTATION] = KUBERNETES_SOURCE;
  const metadata: Json = { name: meta.name, annotations };
  if (def.namespaced) metadata.namespace = meta.namespace;
  if (meta.labels && Object.keys(meta.labels).length > 0) metadata.labels = meta.labels;
  const doc = { apiVersion: API_VERSION, kind: def.kind, metadata, spec: (cr as { spec?: unknown }).spec };
  const r = validateObject(doc);
  return r.ok ? { ok: true, object: r.value } : { ok: false, message: describeProblems(r.errors) };
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

/** JSON with sorted keys: statuses compare by content, not by key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Json)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Json)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * The JSON merge patch of /status that makes the custom resource's status
 * the wanted one: the hub's computed status (accepted) and the Accepted
 * condition; undefined when it already is. Keys the status has and the wanted
 * one does not are removed (null).
 */
export function statusPatch(cr: KubernetesObject, outcome: Outcome, computed: Json | undefined, now = new Date()): { status: Json } | undefined {
  const old = ((cr as { status?: unknown }).status ?? {}) as Json;
  const oldConditions = Array.isArray(old.conditions) ? (old.conditions as Condition[]) : [];
  const prior = oldConditions.find((c) => c.type === 'Accepted');
  const cond: Condition = outcome.accepted
    ? { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'the hub applied it' }
    : { type: 'Accepted', status: 'False', reason: outcome.reason, message: outcome.message };
  if (cr.metadata?.generation !== undefined) cond.observedGeneration = cr.metadata.generation;
  cond.lastTransitionTime = prior && prior.status === cond.status && prior.lastTransitionTime ? prior.lastTransitionTime : now.toISOString().replace(/\.\d+Z$/, 'Z');
  const wanted: Json = { ...(outcome.accepted ? (computed ?? {}) : {}), conditions: [...oldConditions.filter((c) => c.type !== 'Accepted'), cond] };
  delete wanted.metadata;
  if (canonical(old) === canonical(wanted)) return undefined;
  const patch: Json = { ...wanted };
  for (const k of Object.keys(old)) if (!(k in wanted)) patch[k] = null;
  return { status: patch };
}
