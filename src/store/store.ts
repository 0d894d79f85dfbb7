// The store behind the hub. The embedded default is FileStore (a write-ahead log
// in the hub's data directory); an etcd-backed store implements the same
// interface later. Semantics follow etcd/Kubernetes: one global revision,
// atomic multi-object commits, watches that resume from a revision.
// Store errors are MeshfedErrors; the one callers must tell apart (a watch from
// a compacted revision) has reason 'RevisionCompacted': see isRevisionCompacted.
import type { ApiObject, ObjectRef } from '../api/index.js';
import { MeshfedError } from '../util/errors.js';

/**
 * What a put requires of the stored object for the commit to go ahead: the
 * resourceVersion it was read at, or that there is none ('absent'). Any
 * mismatch fails the whole commit with a 'conflict' MeshfedError (optimistic
 * concurrency: read, change, put with expect; on conflict read again).
 */
export type PutPrecondition = { resourceVersion: string } | 'absent';

/**
 * A put with `restore: true` (backup restore, store migrate) creates the object
 * with the uid, creationTimestamp and generation it carries instead of new ones.
 */
export type StoreOp = { type: 'put'; object: ApiObject; expect?: PutPrecondition; restore?: boolean } | { type: 'delete'; ref: ObjectRef };

export type OpOutcome = 'created' | 'configured' | 'unchanged' | 'deleted' | 'not-found';

export interface CommitResult {
  /** Store revision after the commit (unchanged if nothing changed). */
  revision: number;
  /** One entry per op, in order; `object` is the stored object (undefined for delete/not-found). */
  results: { outcome: OpOutcome; object?: ApiObject }[];
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** For DELETED: the object as it was before deletion. */
  object: ApiObject;
  revision: number;
}

export interface ListFilter {
  kind?: string;
  namespace?: string;
  cluster?: string;
}

/** The `reason` of the error a watch from a revision no longer retained throws. */
export const REVISION_COMPACTED = 'RevisionCompacted';

/**
 * A watch asked for history from before the oldest retained revision: code
 * 'gone' (HTTP 410), reason 'RevisionCompacted'. A MeshfedError; the subclass
 * only carries the two revisions (details has them too). Recognise it with
 * isRevisionCompacted.
 */
export class RevisionCompactedError extends MeshfedError {
  constructor(
    readonly requested: number,
    readonly oldest: number,
  ) {
    super('gone', `revision ${requested} is compacted; oldest available is ${oldest}: list again`, {
      reason: REVISION_COMPACTED,
      details: { requested, oldest },
    });
  }
}

/** Whether `err` is the error of a watch from a compacted revision (list again, then watch). */
export function isRevisionCompacted(err: unknown): err is MeshfedError {
  return err instanceof MeshfedError && err.reason === REVISION_COMPACTED;
}

export interface Store {
  /**
   * Applies every op atomically: all are persisted durably (fsync) before the
   * promise resolves, or none is applied. Puts that change nothing (same spec,
   * labels, annotations, status) are 'unchanged' and do not bump the revision.
   * The store sets metadata.resourceVersion, uid, creationTimestamp (kept on
   * update) and generation (bumped when spec changes).
   */
  commit(ops: StoreOp[]): Promise<CommitResult>;
  get(ref: ObjectRef): Promise<ApiObject | undefined>;
  /** Matching objects, sorted by key; copies the caller may change. */
  list(filter?: ListFilter): Promise<ApiObject[]>;
  /**
   * Matching objects as they are stored, unsorted and not copied, with the
   * revision they are at: for readers that only serialize or count (e.g. a full
   * view for many agents). Callers must not modify them.
   */
  scan(filter?: ListFilter): { revision: number; objects: readonly ApiObject[] };
  /** How many objects match (answered from an index where one exists). */
  count(filter?: ListFilter): Promise<number>;
  /**
   * The most ops one commit can take, where the backend has a limit (etcd's
   * --max-txn-ops, 128 by default); undefined: no limit. Writers whose commits
   * may be bigger and need not be atomic as a whole (a cluster's report) split
   * them; the others get the backend's 'too-large' error.
   */
  readonly maxOpsPerCommit?: number;
  /** Current revision. */
  revision(): number;
  /**
   * Calls `onEvent` for every change after `fromRevision` (replaying retained
   * history first), then live. Throws a 'RevisionCompacted' error if history no
   * longer reaches back that far. Returns a function that stops the watch.
   */
  watch(fromRevision: number, onEvent: (e: WatchEvent) => void): () => void;
  /** Why the store cannot take writes (closed, or a failed write left it in an unknown state); undefined when it can. */
  unavailable(): string | undefined;
  close(): Promise<void>;
}
