// Batching: turns setResources/applyChanges calls into one pending batch of ops
// (typeUrl -> name -> entry to install, or null to remove) and decides when the
// snapshot cache commits it.
//
// - Every given resource is hashed; only those whose hash differs from the
//   current (or pending) entry are encoded, and an invalid one throws before
//   anything changes (the pending batch is untouched).
// - Last op per name wins (an upsert after a removal, a removal after an
//   upsert); an op that restates the effective content is dropped.
// - With debounceMs 0 the batch is due at once; otherwise when no change came for
//   debounceMs, never later than maxDelayMs after the first pending one.
import { performance } from 'node:perf_hooks';
import { MeshfedError } from '../../util/errors.js';
import { RESOURCE_TYPES, mapFor, type XdsResource, type XdsResources } from '../../xdsapi/index.js';
import { shortType, type CacheBatch, type CacheOp, type ResourceCache } from './snapshot.js';

/** An incremental update: resources to add or replace, names to remove. */
export interface ResourceChange {
  upserts: XdsResource[];
  removals: { typeUrl: string; name: string }[];
}

export interface BatcherOptions {
  debounceMs: number;
  maxDelayMs: number;
  /** Throw (not just log) on one name upserted twice in one change with different content. */
  debug: boolean;
  log: (msg: string) => void;
}

/** What a commit takes out of the batcher. */
export interface DueBatch {
  batch: CacheBatch;
  /** Server listeners must be re-evaluated. */
  refresh: boolean;
}

export class ChangeBatcher {
  /** Changes not committed yet (last op per name wins). */
  private pending: CacheBatch = new Map();
  private pendingCalls = 0;
  /** A setResources is pending: commit (new version) even if nothing changed. */
  private pendingCommit = false;
  /** Server listeners must be re-evaluated at the next commit. */
  private pendingRefresh = false;
  private firstPendingAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** setResources/applyChanges calls; of those, calls merged into a batch that was already pending. */
  changesReceived = 0;
  changesCoalesced = 0;

  constructor(
    private readonly store: ResourceCache,
    private readonly opts: BatcherOptions,
    /** Commits the batch (it calls take()). */
    private readonly due: () => void,
  ) {}

  /** The whole resource set: the difference to the current (and pending) state, plus a commit and a refresh even if nothing changed. */
  setAll(res: XdsResources): void {
    this.enqueue(this.diff(res));
    this.pendingCommit = true;
    this.pendingRefresh = true;
  }

  apply(change: ResourceChange): void {
    this.enqueue(this.prepareChanges(change));
  }

  /** Re-evaluate server listeners at the next commit. */
  requestRefresh(): void {
    this.pendingRefresh = true;
    this.pendingCommit = true;
  }

  /** Something is waiting for a commit. */
  get hasPending(): boolean {
    return this.pendingCalls > 0 || this.pendingCommit || this.pendingRefresh;
  }

  /** Names waiting in the pending batch. */
  get pendingNames(): number {
    let n = 0;
    for (const m of this.pending.values()) n += m.size;
    return n;
  }

  /** Commits now (debounceMs 0) or at the end of the window, never later than maxDelayMs after the first pending change. */
  schedule(): void {
    if (this.opts.debounceMs === 0) return this.due();
    const now = performance.now();
    if (this.firstPendingAt === undefined) this.firstPendingAt = now;
    const at = Math.min(now + this.opts.debounceMs, this.firstPendingAt + this.opts.maxDelayMs);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.due(), Math.max(0, at - now));
    // Pending pushes alone must not keep a process alive (open streams do).
    this.timer.unref();
  }

  /** Hands the pending batch over and starts an empty one. */
  take(): DueBatch {
    this.cancel();
    const due = { batch: this.pending, refresh: this.pendingRefresh };
    this.pending = new Map();
    this.pendingCalls = 0;
    this.pendingCommit = false;
    this.pendingRefresh = false;
    this.firstPendingAt = undefined;
    return due;
  }

  /** Stops the timer (close); the pending batch stays. */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The op batch that turns the current (pending included) state into `res`. */
  private diff(res: XdsResources): CacheBatch {
    const ops: CacheBatch = new Map();
    for (const typeUrl of RESOURCE_TYPES) {
      const target = mapFor(res, typeUrl);
      const pend = this.pending.get(typeUrl);
      const m = new Map<string, CacheOp>();
      for (const [name, r] of target) {
        if (r.typeUrl !== typeUrl || r.name !== name) {
          throw new MeshfedError('invalid', `resource ${r.name} (${r.typeUrl}) is filed under ${name} in the ${typeUrl} map`);
        }
        const cur = this.store.get(typeUrl, name);
        const p = pend?.get(name);
        const effective = pend?.has(name) ? p : cur;
        const e = this.store.prepare(r, p, cur);
        if (e !== effective) m.set(name, e);
      }
      for (const name of this.store.names(typeUrl)) {
        if (!target.has(name) && (!pend?.has(name) || pend.get(name))) m.set(name, null);
      }
      if (pend) for (const [name, op] of pend) if (op && !target.has(name)) m.set(name, null);
      if (m.size > 0) ops.set(typeUrl, m);
    }
    return ops;
  }

  private prepareChanges(change: ResourceChange): CacheBatch {
    const ops: CacheBatch = new Map();
    const opsFor = (typeUrl: string): Map<string, CacheOp> => {
      if (!this.store.has(typeUrl)) throw new MeshfedError('invalid', `unknown xDS resource type ${typeUrl}`);
      let m = ops.get(typeUrl);
      if (!m) ops.set(typeUrl, (m = new Map()));
      return m;
    };
    /** type\0name -> hash of its first upsert in this call. */
    const seen = new Map<string, string>();
    for (const r of change.upserts) {
      const m = opsFor(r.typeUrl);
      const key = `${r.typeUrl}\u0000${r.name}`;
      const pend = this.pending.get(r.typeUrl);
      const cur = this.store.get(r.typeUrl, r.name);
      const p = pend?.get(r.name);
      const e = this.store.prepare(r, m.get(r.name), p, cur);
      const first = seen.get(key);
      if (first !== undefined && first !== e.hash) {
        const msg = `${shortType(r.typeUrl)} "${r.name}" is upserted twice in one change with different content (hash ${first} vs ${e.hash})`;
        if (this.opts.debug) throw new MeshfedError('invalid', `xDS debug: ${msg}`);
        this.opts.log(`${msg}; the last one wins`);
      }
      if (first === undefined) seen.set(key, e.hash);
      const effective = pend?.has(r.name) ? p : cur;
      if (e !== effective) m.set(r.name, e);
      else m.delete(r.name); // restates the current content (possibly after an earlier upsert in this call)
    }
    for (const { typeUrl, name } of change.removals) {
      const m = opsFor(typeUrl);
      const pend = this.pending.get(typeUrl);
      const exists = pend?.has(name) ? pend.get(name) : this.store.get(typeUrl, name);
      if (exists) m.set(name, null);
      else m.delete(name);
    }
    for (const [t, m] of ops) if (m.size === 0) ops.delete(t);
    return ops;
  }

  /** Merges ops into the pending batch: a later op on a name replaces an earlier one. */
  private enqueue(ops: CacheBatch): void {
    this.changesReceived++;
    if (this.pendingCalls > 0) this.changesCoalesced++;
    this.pendingCalls++;
    for (const [typeUrl, m] of ops) {
      let p = this.pending.get(typeUrl);
      if (!p) this.pending.set(typeUrl, (p = new Map()));
      for (const [name, op] of m) p.set(name, op);
    }
  }
}
