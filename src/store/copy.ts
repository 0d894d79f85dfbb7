// A faithful copy of a hub's stores: every object of every kind (internal ones
// included) with its metadata as it was (restore puts keep uid,
// creationTimestamp, generation; labels, annotations and status are content),
// into EMPTY stores, in bounded batches, then verified object by object. What
// `meshfed store migrate` and `meshfed restore` share (backup-file.ts is the
// file format; src/cli/commands/store.ts and backup.ts print the reports).
// Invariants: an import either leaves every object in the target or (after a
// failure) tries to remove what it wrote, so a retry finds the target empty;
// a store revision is never copied (each store counts its own), so
// resourceVersion is the one field verification ignores.
import { createHash } from 'node:crypto';
import { keyOf, refOf, type ApiObject, type ObjectRef } from '../api/meta.js';
import { canonicalJson, type ChainBreak } from '../audit/chain.js';
import { verifyStoredChain } from '../audit/log.js';
import { errorMessage, MeshfedError } from '../util/errors.js';
import type { Store, StoreOp } from './store.js';

/** The two stores of a hub, by the names reports and backup files use. */
export const HUB_STORES = ['main', 'audit'] as const;
export type HubStoreName = (typeof HUB_STORES)[number];

export interface ImportOptions {
  /** Most ops in one commit (default 100: under etcd's default --max-txn-ops of 128). */
  batchOps?: number;
  /** Most bytes of object JSON in one commit (default 1 MiB: under etcd's default --max-request-bytes of 1.5 MiB). */
  batchBytes?: number;
  /** Called after each commit with the objects imported so far. */
  onProgress?: (done: number, total: number) => void;
}

export interface KindDigest {
  kind: string;
  objects: number;
  /** sha256 over the kind's objects (key and canonical JSON without resourceVersion), in key order. */
  sha256: string;
}

export interface StoreDigest {
  objects: number;
  kinds: KindDigest[];
  /** key -> the object's hash. */
  byKey: Map<string, string>;
}

/** Throws 'conflict' naming the first objects when `store` holds any. */
export function assertEmpty(store: Store, where: string): void {
  const { objects } = store.scan();
  if (objects.length === 0) return;
  const first = objects
    .slice(0, 3)
    .map((o) => keyOf(refOf(o)))
    .join(', ');
  throw new MeshfedError(
    'conflict',
    `${where} is not empty: it holds ${objects.length} object${objects.length === 1 ? '' : 's'} (${first}${objects.length > 3 ? ', ...' : ''}); restore and migrate only write into an empty store`,
  );
}

/**
 * Puts `objects` into an empty store as they were (restore puts), in commits of
 * at most batchOps ops and batchBytes bytes; a commit etcd refuses as too large
 * is split in half and tried again. On failure removes what it wrote, then rethrows.
 */
export async function importObjects(target: Store, objects: readonly ApiObject[], where: string, opts: ImportOptions = {}): Promise<void> {
  const maxOps = opts.batchOps ?? 100;
  const maxBytes = opts.batchBytes ?? 1024 * 1024;
  const written: ObjectRef[] = [];
  let i = 0;
  try {
    while (i < objects.length) {
      let bytes = 0;
      let end = i;
      while (end < objects.length && end - i < maxOps) {
        const size = JSON.stringify(objects[end]).length;
        if (end > i && bytes + size > maxBytes) break;
        bytes += size;
        end++;
      }
      await commitSplitting(target, objects.slice(i, end));
      for (let k = i; k < end; k++) written.push(refOf(objects[k]!));
      i = end;
      opts.onProgress?.(i, objects.length);
    }
  } catch (err) {
    const left = await removeAll(target, written, maxOps);
    const state = left === 0 ? 'the objects written before it were removed again' : `${left} objects written before it could not be removed: empty ${where} before trying again`;
    throw new MeshfedError(err instanceof MeshfedError ? err.code : 'internal', `${where}: import failed after ${written.length} of ${objects.length} objects: ${errorMessage(err)} (${state})`, {
      cause: err,
    });
  }
}

async function commitSplitting(target: Store, batch: readonly ApiObject[]): Promise<void> {
  try {
    await target.commit(batch.map((object): StoreOp => ({ type: 'put', object, restore: true })));
  } catch (err) {
    if (!(err instanceof MeshfedError && err.code === 'too-large') || batch.length < 2) throw err;
    const half = Math.ceil(batch.length / 2);
    await commitSplitting(target, batch.slice(0, half));
    await commitSplitting(target, batch.slice(half));
  }
}

/** Best-effort removal of what a failed import wrote; how many objects are left. */
async function removeAll(target: Store, refs: ObjectRef[], maxOps: number): Promise<number> {
  let left = refs.length;
  for (let i = 0; i < refs.length; i += maxOps) {
    const ops = refs.slice(i, i + maxOps).map((ref): StoreOp => ({ type: 'delete', ref }));
    try {
      await target.commit(ops);
      left -= ops.length;
    } catch {
      return left;
    }
  }
  return left;
}

/** The hash of one object as verification sees it: everything but the store's revision. */
export function objectHash(o: ApiObject): string {
  const { resourceVersion: _rv, ...metadata } = o.metadata;
  return createHash('sha256')
    .update(canonicalJson({ ...o, metadata }))
    .digest('hex');
}

export function digestObjects(objects: readonly ApiObject[]): StoreDigest {
  const byKey = new Map<string, string>();
  const byKind = new Map<string, string[]>();
  for (const o of objects) {
    const key = keyOf(refOf(o));
    byKey.set(key, objectHash(o));
    const keys = byKind.get(o.kind);
    if (keys === undefined) byKind.set(o.kind, [key]);
    else keys.push(key);
  }
  const kinds: KindDigest[] = [];
  for (const [kind, keys] of [...byKind].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const h = createHash('sha256');
    for (const key of keys.sort()) h.update(`${key}\n${byKey.get(key)!}\n`);
    kinds.push({ kind, objects: keys.length, sha256: h.digest('hex') });
  }
  return { objects: byKey.size, kinds, byKey };
}

/** What differs between the source and the copy, object by object (at most `limit` lines). */
export function compareDigests(source: StoreDigest, copy: StoreDigest, limit = 10): string[] {
  const out: string[] = [];
  for (const [key, h] of source.byKey) {
    if (out.length >= limit) return out;
    const c = copy.byKey.get(key);
    if (c === undefined) out.push(`${key}: missing in the copy`);
    else if (c !== h) out.push(`${key}: differs from the source`);
  }
  for (const key of copy.byKey.keys()) {
    if (out.length >= limit) return out;
    if (!source.byKey.has(key)) out.push(`${key}: in the copy, not in the source`);
  }
  return out;
}

export interface StoreCopyReport {
  store: HubStoreName;
  /** The source's revision (a backup's, for restore). */
  sourceRevision: number;
  /** The target's revision after the copy. */
  revision: number;
  objects: number;
  kinds: { kind: string; objects: number; sha256: string }[];
}

export interface CopyReport {
  from: string;
  to: string;
  stores: StoreCopyReport[];
  /** The audit chain in the copy, walked offline (src/audit/chain.ts). */
  auditChain: { ok: boolean; records: number; broken?: ChainBreak };
  /** Every object identical (count and hash per kind, object by object). */
  verified: boolean;
  mismatches: string[];
  seconds: number;
}

export interface HubCopySource {
  from: string;
  /** Per store: the objects at one revision. */
  stores: Record<HubStoreName, { revision: number; objects: readonly ApiObject[] }>;
}

/**
 * Copies a hub's two stores into empty targets (both checked before either is
 * written), then verifies: the report says whether every object arrived as it was.
 */
export async function copyHubStores(
  source: HubCopySource,
  target: Record<HubStoreName, Store>,
  to: string,
  opts: ImportOptions & { onStoreProgress?: (store: HubStoreName, done: number, total: number) => void } = {},
): Promise<CopyReport> {
  const t0 = Date.now();
  for (const name of HUB_STORES) assertEmpty(target[name], `the ${name} store at ${to}`);
  const done: HubStoreName[] = [];
  for (const name of HUB_STORES) {
    const onProgress = opts.onStoreProgress === undefined ? undefined : (n: number, total: number) => opts.onStoreProgress!(name, n, total);
    try {
      await importObjects(target[name], source.stores[name].objects, `the ${name} store at ${to}`, { ...opts, ...(onProgress ? { onProgress } : {}) });
    } catch (err) {
      // The stores that were copied are emptied again too, so that a retry finds every target empty.
      for (const d of done) await removeAll(target[d], source.stores[d].objects.map(refOf), opts.batchOps ?? 100);
      throw err;
    }
    done.push(name);
  }
  const stores: StoreCopyReport[] = [];
  const mismatches: string[] = [];
  for (const name of HUB_STORES) {
    const copied = target[name].scan();
    const want = digestObjects(source.stores[name].objects);
    const got = digestObjects(copied.objects);
    for (const m of compareDigests(want, got)) mismatches.push(`${name}: ${m}`);
    stores.push({
      store: name,
      sourceRevision: source.stores[name].revision,
      revision: copied.revision,
      objects: got.objects,
      kinds: got.kinds.map(({ kind, objects, sha256 }) => ({ kind, objects, sha256 })),
    });
  }
  const chain = verifyStoredChain(target.audit.scan().objects);
  const auditChain = { ok: chain.ok, records: chain.records, ...(chain.broken ? { broken: chain.broken } : {}) };
  return { from: source.from, to, stores, auditChain, verified: mismatches.length === 0, mismatches, seconds: (Date.now() - t0) / 1000 };
}
