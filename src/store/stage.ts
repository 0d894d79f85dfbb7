// Staging a commit: turning a caller's ops into what the store will apply —
// outcomes, the store-managed metadata (resourceVersion, uid,
// creationTimestamp, generation), the log ops and the watch events — without
// touching the store. Pure apart from uid/timestamp generation.
// Invariants: a caller's objects are copied when the commit is taken (the
// caller may mutate them while it waits); a put whose spec, status, labels and
// annotations match the stored object is 'unchanged' and logs nothing; a put's
// precondition (expect) is checked against the state the commit is staged on,
// before anything else, so a failed one fails the whole commit ('conflict').
// EtcdStore's transaction compares the mod revision of every touched key with
// that state, so the check holds there too: if another writer changed the key
// the transaction fails, the store catches up and stages (and checks) again.
import { randomUUID } from 'node:crypto';
import { clusterOf, keyOf, refOf, type ApiObject } from '../api/meta.js';
import { MeshfedError } from '../util/errors.js';
import { internObject } from '../util/intern.js';
import type { HistEvent } from './history.js';
import { isRecord, isStorable } from './shapes.js';
import type { Change } from './state.js';
import type { CommitResult, OpOutcome, PutPrecondition, StoreOp } from './store.js';

/** An op checked and copied, keyed. */
export type NormOp = { type: 'put'; object: ApiObject; expect?: PutPrecondition; restore?: boolean } | { type: 'delete'; key: string; kind: string };

export interface StagedCommit {
  /** The revision the commit gets if it changes anything. */
  rev: number;
  changes: Map<string, Change>;
  /** Serialized log ops; empty if the commit changes nothing. */
  walOps: string[];
  events: HistEvent[];
  results: CommitResult['results'];
}

/** Checks and copies an op (throws TypeError naming what is wrong). */
export function normalizeOp(op: StoreOp): NormOp {
  if (isRecord(op) && op.type === 'put') {
    if (!isRecord(op.object)) throw new TypeError('store put: object is missing');
    const object = JSON.parse(JSON.stringify(op.object)) as unknown;
    if (!isStorable(object)) throw new TypeError('store put: object needs a kind and metadata.name');
    const put: NormOp = op.restore === true ? { type: 'put', object, restore: true } : { type: 'put', object };
    const expect = op.expect as unknown;
    if (expect === undefined) return put;
    if (expect === 'absent') return { ...put, expect };
    if (isRecord(expect) && typeof expect.resourceVersion === 'string' && expect.resourceVersion !== '') return { ...put, expect: { resourceVersion: expect.resourceVersion } };
    throw new TypeError(`store put: expect must be 'absent' or { resourceVersion: string }, got ${JSON.stringify(expect)}`);
  }
  if (isRecord(op) && op.type === 'delete') {
    const ref = op.ref as unknown;
    if (!isRecord(ref) || typeof ref.kind !== 'string' || ref.kind === '' || typeof ref.name !== 'string' || ref.name === '') {
      throw new TypeError('store delete: ref needs a kind and a name');
    }
    return { type: 'delete', key: keyOf(op.ref), kind: op.ref.kind };
  }
  throw new TypeError(`store: unknown op ${JSON.stringify((op as { type?: unknown } | null)?.type)}`);
}

/**
 * Computes one commit's outcomes at revision `rev` against `base` (the state as
 * earlier commits of its group leave it), without touching either.
 */
export function stageCommit(ops: NormOp[], base: (key: string) => ApiObject | undefined, rev: number): StagedCommit {
  const changes = new Map<string, Change>();
  const lookup = (key: string): ApiObject | undefined => {
    const c = changes.get(key);
    if (c !== undefined) return c.obj ?? undefined;
    return base(key);
  };
  const walOps: string[] = [];
  const events: HistEvent[] = [];
  const results: CommitResult['results'] = [];
  const rv = String(rev);
  let now: string | undefined;

  for (const op of ops) {
    if (op.type === 'delete') {
      const cur = lookup(op.key);
      if (cur === undefined) {
        results.push({ outcome: 'not-found' });
        continue;
      }
      changes.set(op.key, { kind: op.kind, obj: null });
      walOps.push(`{"delete":${JSON.stringify(op.key)}}`);
      // Like Kubernetes, the deleted object carries the revision of its deletion.
      const gone = { ...cur, metadata: { ...cur.metadata, resourceVersion: rv } };
      events.push({ type: 'DELETED', revision: rev, json: JSON.stringify(gone) });
      results.push({ outcome: 'deleted' });
      continue;
    }

    const input = op.object;
    const key = keyOf(refOf(input));
    const cur = lookup(key);
    if (op.expect !== undefined) checkPrecondition(input, op.expect, cur);
    if (cur !== undefined && sameContent(cur, input)) {
      results.push(lazyResult('unchanged', () => structuredClone(cur)));
      continue;
    }
    const meta = stripStoreMeta(input.metadata);
    if (cur === undefined) {
      // A restored object keeps the identity it had in the store it was copied from.
      const kept = op.restore === true ? input.metadata : undefined;
      meta.uid = kept?.uid ?? randomUUID();
      meta.creationTimestamp = kept?.creationTimestamp ?? (now ??= new Date().toISOString());
      meta.generation = kept?.generation ?? 1;
    } else {
      if (cur.metadata.uid !== undefined) meta.uid = cur.metadata.uid;
      if (cur.metadata.creationTimestamp !== undefined) meta.creationTimestamp = cur.metadata.creationTimestamp;
      const gen = cur.metadata.generation ?? 1;
      meta.generation = jsonEqual(cur.spec, input.spec) ? gen : gen + 1;
    }
    meta.resourceVersion = rv;
    const next: ApiObject = internObject(withMetadata(input, meta));
    const json = JSON.stringify(next);
    changes.set(key, { kind: next.kind, obj: next });
    walOps.push(`{"put":${json}}`);
    events.push({ type: cur === undefined ? 'ADDED' : 'MODIFIED', revision: rev, json });
    results.push(lazyResult(cur === undefined ? 'created' : 'configured', () => JSON.parse(json) as ApiObject));
  }
  return { rev, changes, walOps, events, results };
}

/** Throws 'conflict' naming the object and both versions unless `cur` is what `expect` requires. */
function checkPrecondition(input: ApiObject, expect: PutPrecondition, cur: ApiObject | undefined): void {
  const stored = cur?.metadata.resourceVersion;
  const m = input.metadata;
  const what = `${input.kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name}${clusterOf(input) ? ` (cluster ${clusterOf(input)})` : ''}`;
  const key = keyOf(refOf(input));
  if (expect === 'absent') {
    if (cur === undefined) return;
    throw new MeshfedError('conflict', `${what}: expected it not to exist, but it is stored at resourceVersion ${stored}`, { details: { key, expected: 'absent', stored } });
  }
  if (stored === expect.resourceVersion) return;
  const found = cur === undefined ? 'it does not exist' : `it is stored at resourceVersion ${stored}`;
  throw new MeshfedError('conflict', `${what}: expected resourceVersion ${expect.resourceVersion}, but ${found}`, { details: { key, expected: expect.resourceVersion, stored: stored ?? null } });
}

/**
 * A result whose object (a copy for the caller) is made on first access: most
 * callers (an agent's report of thousands of objects) never look at it.
 */
function lazyResult(outcome: OpOutcome, copy: () => ApiObject): CommitResult['results'][number] {
  let object: ApiObject | undefined;
  return {
    outcome,
    get object(): ApiObject {
      return (object ??= copy());
    },
    set object(v: ApiObject) {
      object = v;
    },
  };
}

/** Metadata without the store-managed fields, ready for them to be set. */
function stripStoreMeta(m: ApiObject['metadata']): ApiObject['metadata'] {
  // Built key by key, never by spreading: V8 gives objects made by a spread and
  // then extended a hidden class of their own (measured: one per stored object
  // after the first few, ~450 bytes each); built from a literal they share one.
  const out = { name: m.name } as ApiObject['metadata'];
  for (const k of Object.keys(m) as (keyof ApiObject['metadata'])[]) {
    if (k === 'name' || k === 'resourceVersion' || k === 'uid' || k === 'creationTimestamp' || k === 'generation') continue;
    (out as Record<string, unknown>)[k] = m[k];
  }
  return out;
}

/** The object with another metadata, built key by key (see stripStoreMeta). */
function withMetadata(o: ApiObject, metadata: ApiObject['metadata']): ApiObject {
  const out = (o.apiVersion === undefined ? { kind: o.kind, metadata } : { apiVersion: o.apiVersion, kind: o.kind, metadata }) as ApiObject;
  for (const k of Object.keys(o)) {
    if (k === 'apiVersion' || k === 'kind' || k === 'metadata') continue;
    (out as unknown as Record<string, unknown>)[k] = (o as unknown as Record<string, unknown>)[k];
  }
  return out;
}

/** What decides 'unchanged': the store-managed metadata fields are ignored. */
function sameContent(a: ApiObject, b: ApiObject): boolean {
  return jsonEqual(a.spec, b.spec) && jsonEqual(a.status, b.status) && jsonEqual(a.metadata.labels, b.metadata.labels) && jsonEqual(a.metadata.annotations, b.metadata.annotations);
}

/** Deep equality of JSON values; object key order does not matter. */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao);
  if (ak.length !== Object.keys(bo).length) return false;
  for (const k of ak) {
    if (!Object.prototype.hasOwnProperty.call(bo, k) || !jsonEqual(ao[k], bo[k])) return false;
  }
  return true;
}
