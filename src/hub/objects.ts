// The hub's write path for API objects: validation beyond the schema, reference
// rules, and the atomic commit. Shared by the HTTP API and the agent channel so
// both obey the same rules. Refusals are MeshfedErrors (code `invalid`, with a
// reason word such as ReadOnlyKind) that the HTTP router answers as they are.
// Objects the hub reads from Kubernetes (annotation meshfed.io/source:
// kubernetes, kubernetes-policies.ts) are written only by that source: an API
// write to one is a 409 naming the source (else GitOps and the API would undo
// each other), and no API write may set the annotation.
import { describeRef, keyOf, refOf, type ApiObject, type ObjectRef } from '../api/index.js';
import type { OpOutcome, Store, StoreOp } from '../store/store.js';
import { MeshfedError } from '../util/errors.js';
import { findKind } from '../registry.js';

/** Annotation on objects the hub reads from elsewhere; its value names the source. */
export const SOURCE_ANNOTATION = 'meshfed.io/source';
/** The value of SOURCE_ANNOTATION on objects from the hub's Kubernetes cluster. */
export const KUBERNETES_SOURCE = 'kubernetes';

/** Who writes: the API (default) or a source of objects (its name, as SOURCE_ANNOTATION holds it). */
export interface WriteOptions {
  source?: string;
}

function sourceOf(o: ApiObject | undefined): string | undefined {
  return o?.metadata.annotations?.[SOURCE_ANNOTATION];
}

/** Refuses a write by `writer` to an object another source owns, or an API write claiming a source. */
function checkOwner(ref: ObjectRef, existing: ApiObject | undefined, next: ApiObject | undefined, writer: string | undefined): void {
  const owner = sourceOf(existing);
  if (owner !== undefined && owner !== writer) {
    const where = owner === KUBERNETES_SOURCE ? "the hub's Kubernetes cluster (--kubernetes-policies): change it there, with kubectl or your GitOps repository" : `source "${owner}"`;
    throw new MeshfedError('conflict', `${describeRef(ref)} is owned by ${where}; the hub API does not write it (annotation ${SOURCE_ANNOTATION}: ${owner})`, {
      reason: 'OwnedBySource',
      details: { source: owner },
    });
  }
  const claimed = sourceOf(next);
  if (claimed !== undefined && claimed !== writer) {
    throw new MeshfedError('invalid', `${describeRef(ref)}: annotation ${SOURCE_ANNOTATION} is set by the hub for objects it reads from a source; remove it`, { reason: 'ReservedAnnotation' });
  }
}

export interface ApplyResult {
  object: string;
  outcome: OpOutcome;
  resourceVersion?: string;
}

/** Applies user objects (never discovered kinds) atomically: all or nothing. */
export async function applyObjects(store: Store, objects: ApiObject[], opts: WriteOptions = {}): Promise<ApplyResult[]> {
  const seen = new Set<string>();
  const ops: StoreOp[] = [];
  for (const o of objects) {
    const def = findKind(o.kind);
    if (!def) throw new MeshfedError('invalid', `unknown kind "${o.kind}"`, { reason: 'UnknownKind' });
    if (def.discovered) {
      throw new MeshfedError('invalid', `${describeRef(refOf(o))}: ${o.kind} objects are reported by agents and read-only; register workloads with the cluster's agent (meshfed register)`, {
        reason: 'ReadOnlyKind',
      });
    }
    const key = keyOf(refOf(o));
    if (seen.has(key)) throw new MeshfedError('invalid', `${describeRef(refOf(o))} appears twice in one apply`, { reason: 'Duplicate' });
    seen.add(key);
    const existing = await store.get(refOf(o));
    checkOwner(refOf(o), existing, o, opts.source);
    // Status belongs to the system: applying a spec keeps the status it has.
    const next: ApiObject = { ...o, metadata: { ...o.metadata } };
    if (existing?.status !== undefined) next.status = existing.status;
    else delete next.status;
    for (const f of ['resourceVersion', 'uid', 'creationTimestamp', 'generation'] as const) delete next.metadata[f];
    ops.push({ type: 'put', object: next });
  }
  const r = await store.commit(ops);
  return r.results.map((res, i) => {
    const out: ApplyResult = { object: describeRef(refOf(objects[i]!)), outcome: res.outcome };
    if (res.object?.metadata.resourceVersion) out.resourceVersion = res.object.metadata.resourceVersion;
    return out;
  });
}

/** Deletes objects; deleting a Cluster also removes what its agent reported, in the same commit. */
export async function deleteObjects(store: Store, refs: ObjectRef[], opts: WriteOptions = {}): Promise<ApplyResult[]> {
  const ops: StoreOp[] = [];
  const described: string[] = [];
  for (const ref of refs) {
    const def = findKind(ref.kind);
    if (!def) throw new MeshfedError('invalid', `unknown kind "${ref.kind}"`, { reason: 'UnknownKind' });
    if (def.discovered) {
      throw new MeshfedError('invalid', `${describeRef(ref)}: ${ref.kind} objects are reported by agents; deregister the workload at its agent`, { reason: 'ReadOnlyKind' });
    }
    checkOwner(ref, await store.get(ref), undefined, opts.source);
    ops.push({ type: 'delete', ref });
    described.push(describeRef(ref));
  }
  const cascade: StoreOp[] = [];
  for (const ref of refs) {
    if (ref.kind !== 'Cluster') continue;
    for (const kind of ['Service', 'Workload']) {
      for (const o of store.scan({ kind, cluster: ref.name }).objects) cascade.push({ type: 'delete', ref: refOf(o) });
    }
  }
  const r = await store.commit([...ops, ...cascade]);
  return described.map((object, i) => ({ object, outcome: r.results[i]!.outcome }));
}

/**
 * Replaces everything a cluster reported with its new full report (level-triggered:
 * the report is the whole truth for that cluster). Returns the store revision.
 */
export async function replaceClusterReport(store: Store, cluster: string, reported: ApiObject[]): Promise<number> {
  const ops: StoreOp[] = [];
  const keep = new Set<string>();
  for (const o of reported) {
    keep.add(keyOf(refOf(o)));
    ops.push({ type: 'put', object: o });
  }
  for (const kind of ['Service', 'Workload']) {
    // What the hub holds for this cluster only (an index), not copies.
    for (const o of store.scan({ kind, cluster }).objects) {
      if (!keep.has(keyOf(refOf(o)))) ops.push({ type: 'delete', ref: refOf(o) });
    }
  }
  return commitReport(store, ops);
}

/** Applies a delta report: cost follows the change, not the cluster's size. */
export async function applyClusterDelta(store: Store, upserts: ApiObject[], deletes: ObjectRef[]): Promise<number> {
  const ops: StoreOp[] = [...upserts.map((object) => ({ type: 'put' as const, object })), ...deletes.map((ref) => ({ type: 'delete' as const, ref }))];
  if (ops.length === 0) return store.revision();
  return commitReport(store, ops);
}

/**
 * A report's ops in as few commits as the store takes (etcd: 128 ops by default), puts before deletes. Each
 * commit is atomic, the report as a whole is not: every object is whole in each commit, so readers see some
 * services new and some not yet, never a torn one; and reports are level-triggered, so the next full report
 * repairs a report cut short by a failure.
 */
async function commitReport(store: Store, ops: StoreOp[]): Promise<number> {
  const max = store.maxOpsPerCommit ?? ops.length;
  let revision = store.revision();
  for (let i = 0; i < ops.length; i += max) revision = (await store.commit(ops.slice(i, i + max))).revision;
  return revision;
}
