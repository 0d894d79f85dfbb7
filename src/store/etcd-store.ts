// EtcdStore: the Store interface on etcd, for hubs that share one store (HA).
// Layout under the prefix (default /meshfed):
//
//   <prefix>/objects/<keyOf(ref)>   the object's JSON (resourceVersion: the key's mod revision)
//   <prefix>/sync/<replica id>      touched by a commit whose compare failed (catch-up marker)
//
// Reads are answered from an in-memory replica (etcd/replica.ts) loaded at one
// revision and kept current by a watch from the next. A commit is staged on the
// replica with the FileStore's rules (stage.ts), then sent as ONE etcd
// transaction that compares the mod revision of every key the commit touches
// with the replica's: if another writer (another hub replica) got there first,
// the transaction fails, the replica catches up, and the commit is staged again.
// Invariants: commits run one at a time, in call order; a commit resolves only
// after etcd acknowledged it (etcd persists before answering) and the replica
// shows it (read-your-writes); the store revision is etcd's revision; every
// etcd call is bounded by the deadline (timeoutMs), a failed or timed-out one
// is a MeshfedError 'unavailable' naming etcd and its endpoints.
import { randomUUID } from 'node:crypto';
import { keyOf, type ApiObject, type ObjectRef } from '../api/meta.js';
import { errorMessage, MeshfedError } from '../util/errors.js';
import type { ComparatorBuilder, DeleteBuilder, PutBuilder } from 'etcd3';
import { EtcdConnection, isCompactedError, keyLayout, normalizeEndpoints, type KeyLayout } from './etcd/connection.js';
import { grantLease, readLeaseKeys, watchLeaseKey, type StoreLease } from './etcd/lease.js';
import { Replica } from './etcd/replica.js';
import { compactionFloor, replayFromEtcd } from './etcd/replay.js';
import { consoleLogger, type StoreLogger } from './file-store.js';
import { normalizeOp, stageCommit, type NormOp, type StagedCommit } from './stage.js';
import { RevisionCompactedError, type CommitResult, type ListFilter, type Store, type StoreOp, type WatchEvent } from './store.js';

/** The key prefix of a store opened without one. */
export const DEFAULT_ETCD_PREFIX = '/meshfed';

export interface EtcdStoreOptions {
  /** etcd client endpoints, host:port or http://host:port. */
  endpoints: string[];
  /** Key prefix the store owns (default /meshfed). */
  prefix?: string;
  /** Deadline of every etcd call, ms (default 5000). */
  timeoutMs?: number;
  /** How often etcd's quorum is probed for unavailable(), ms (default 2000; 0: never). */
  probeIntervalMs?: number;
  /** How many times a commit is staged again after another writer changed its keys (default 16). */
  maxRetries?: number;
  /** The most ops one commit may take (maxOpsPerCommit): etcd's --max-txn-ops (default 128, etcd's own default). */
  maxTxnOps?: number;
  /** Watch events kept in memory for watchers resuming from a revision since open (default 10000). */
  historyLimit?: number;
  logger?: StoreLogger;
}

export class EtcdStore implements Store {
  readonly maxOpsPerCommit: number;
  private closing = false;
  private closePromise: Promise<void> | undefined;
  /** The tail of the commit queue: commits run one at a time, in call order. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Why the last etcd call failed (cleared by the next that succeeds). */
  private fault: string | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly syncKey: string;

  private constructor(
    readonly conn: EtcdConnection,
    readonly keys: KeyLayout,
    private readonly replica: Replica,
    /** The smallest revision etcd still has history from. */
    private floor: number,
    private readonly maxRetries: number,
    private readonly logger: StoreLogger,
    maxTxnOps: number,
  ) {
    this.syncKey = `${keys.sync}${randomUUID()}`;
    this.maxOpsPerCommit = maxTxnOps;
  }

  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const maxRetries = opts.maxRetries ?? 16;
    const historyLimit = opts.historyLimit ?? 10000;
    const probeIntervalMs = opts.probeIntervalMs ?? 2000;
    const maxTxnOps = opts.maxTxnOps ?? 128;
    if (!Number.isInteger(maxTxnOps) || maxTxnOps < 1) throw new RangeError(`maxTxnOps must be a positive integer, got ${maxTxnOps}`);
    if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${timeoutMs}`);
    if (!Number.isInteger(maxRetries) || maxRetries < 0) throw new RangeError(`maxRetries must be a non-negative integer, got ${maxRetries}`);
    if (!Number.isInteger(historyLimit) || historyLimit < 0) throw new RangeError(`historyLimit must be a non-negative integer, got ${historyLimit}`);
    const prefix = opts.prefix ?? DEFAULT_ETCD_PREFIX;
    if (!prefix.startsWith('/')) throw new MeshfedError('usage', `etcd store prefix "${prefix}" must start with /`);
    const logger = opts.logger ?? consoleLogger;
    const conn = new EtcdConnection(normalizeEndpoints(opts.endpoints), timeoutMs);
    const keys = keyLayout(prefix);
    try {
      const replica = await Replica.load(conn, keys, historyLimit, logger);
      const floor = await compactionFloor(conn, keys, replica.seen).catch(async (err: unknown) => {
        await replica.close();
        throw err;
      });
      const store = new EtcdStore(conn, keys, replica, floor, maxRetries, logger, maxTxnOps);
      if (probeIntervalMs > 0) {
        store.probeTimer = setInterval(() => void store.probe(), probeIntervalMs);
        store.probeTimer.unref();
      }
      return store;
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  /** Where the store lives, for messages. */
  get where(): string {
    return `${this.conn.where} (prefix ${this.keys.root})`;
  }

  revision(): number {
    return this.replica.state.rev;
  }

  async get(ref: ObjectRef): Promise<ApiObject | undefined> {
    this.assertOpen();
    const o = this.replica.state.lookup(keyOf(ref));
    return o === undefined ? undefined : structuredClone(o);
  }

  async list(filter: ListFilter = {}): Promise<ApiObject[]> {
    this.assertOpen();
    const hits = [...this.replica.state.select(filter)];
    hits.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return hits.map(([, o]) => structuredClone(o));
  }

  scan(filter: ListFilter = {}): { revision: number; objects: readonly ApiObject[] } {
    this.assertOpen();
    const objects: ApiObject[] = [];
    for (const [, o] of this.replica.state.select(filter)) objects.push(o);
    return { revision: this.replica.state.rev, objects };
  }

  async count(filter: ListFilter = {}): Promise<number> {
    this.assertOpen();
    return this.replica.state.count(filter);
  }

  commit(ops: StoreOp[]): Promise<CommitResult> {
    if (this.closing) return Promise.reject(new Error(`store ${this.where} is closed`));
    let norm: NormOp[];
    try {
      // Copy now: the caller may mutate its objects while the commit waits in the queue.
      norm = ops.map(normalizeOp);
    } catch (err) {
      return Promise.reject(err);
    }
    const run = this.tail.then(() => this.runCommit(norm));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Watches from a revision since the store opened are served from the
   * replica's history; older ones are replayed from etcd's history (then live
   * from etcd). Throws RevisionCompactedError if etcd no longer has it.
   */
  watch(fromRevision: number, onEvent: (e: WatchEvent) => void): () => void {
    this.assertOpen();
    if (!Number.isInteger(fromRevision) || fromRevision < 0) throw new RangeError(`watch revision must be a non-negative integer, got ${fromRevision}`);
    const history = this.replica.history;
    try {
      return history.watch(fromRevision, onEvent);
    } catch (err) {
      if (!(err instanceof RevisionCompactedError)) throw err;
    }
    if (fromRevision + 1 < this.floor) throw new RevisionCompactedError(fromRevision, this.floor - 1);
    return replayFromEtcd(
      this.conn,
      this.keys,
      fromRevision,
      onEvent,
      (err) => {
        // Compacted between the check above and etcd's answer: later watches from there throw.
        this.floor = Math.max(this.floor, fromRevision + 2);
        this.logger.error(`meshfed store: ${this.where}: watch from revision ${fromRevision} ended: ${errorMessage(err)}`);
      },
      this.logger,
    );
  }

  /**
   * A lease on this etcd with keep-alive (beside the Store interface: for leader
   * election, src/hub/leadership.ts). Revoke it before close; close does not.
   */
  lease(ttlMs: number): Promise<StoreLease> {
    this.assertOpen();
    return grantLease(this.conn, this.keys, ttlMs);
  }

  /** The lease keys under `<prefix>/leases/<under>` (every replica's, e.g.), by name relative to `under`. */
  leaseKeys(under: string): Promise<Map<string, string>> {
    this.assertOpen();
    return readLeaseKeys(this.conn, this.keys, under);
  }

  /** A hint whenever lease key `name` is put or deleted; returns a stop function. */
  watchLeaseKey(name: string, onChange: () => void): () => void {
    this.assertOpen();
    return watchLeaseKey(this.conn, this.keys, name, onChange);
  }

  unavailable(): string | undefined {
    if (this.closing) return `store ${this.where} is closed`;
    if (this.fault !== undefined) return this.fault; // names etcd and the endpoints
    return this.replica.watchFault === undefined ? undefined : `${this.where}: ${this.replica.watchFault}`;
  }

  close(): Promise<void> {
    if (this.closePromise) return this.closePromise;
    this.closing = true;
    this.closePromise = (async () => {
      clearInterval(this.probeTimer);
      await this.tail;
      await this.replica.close();
      this.conn.close();
    })();
    return this.closePromise;
  }

  /** One commit: stage on the replica, one transaction; again after the replica caught up if another writer won. */
  private async runCommit(ops: NormOp[]): Promise<CommitResult> {
    const state = this.replica.state;
    const deadline = Date.now() + this.conn.timeoutMs;
    let sent = 0;
    for (let attempt = 0; ; attempt++) {
      const staged = stageCommit(ops, (key) => state.lookup(key), state.rev + 1);
      if (staged.walOps.length === 0) return { revision: state.rev, results: staged.results };
      // Only the keys this commit writes are compared: an op staged 'unchanged' or 'not-found' writes nothing, so
      // another writer's change to its key loses nothing, and a full report of a big cluster that changed a
      // little stays far below etcd's --max-txn-ops (compares count against it like writes).
      const touched = [...staged.changes.keys()];
      let txn: ComparatorBuilder | undefined;
      for (const key of touched) {
        // Unchanged on the replica: absent (create revision 0), or at the mod revision it shows.
        const cur = state.lookup(key);
        const [column, value] = cur === undefined ? (['Create', 0] as const) : (['Mod', Number(cur.metadata.resourceVersion)] as const);
        txn = txn === undefined ? this.conn.client.if(this.keys.objects + key, column, '==', value) : txn.and(this.keys.objects + key, column, '==', value);
      }
      txn!.then(...this.writes(staged)).else(this.conn.client.put(this.syncKey).value(''));
      // An attempt gets a part of the deadline: a transaction sent to a member whose leader just died waits at
      // etcd until etcd's own request timeout (5 s and more) while a new leader is elected in about a second.
      // Sending it again is safe: it only applies if every compared key is still as this replica saw it, so an
      // attempt that etcd did apply after all makes the next one fail its compare, catch up and find nothing
      // left to write.
      const left = deadline - Date.now();
      const attemptMs = Math.max(200, Math.min(left, Math.ceil(this.conn.timeoutMs / 3)));
      let res: Awaited<ReturnType<ComparatorBuilder['commit']>>;
      try {
        res = await this.call('commit', () => txn!.options({ deadline: Date.now() + attemptMs }).commit(), attemptMs);
      } catch (err) {
        if (err instanceof MeshfedError && err.code === 'unavailable' && deadline - Date.now() > 200) {
          if (sent === 0) this.logger.warn(`${this.where}: a commit attempt failed; sending it again until its deadline: ${errorMessage(err)}`);
          await new Promise((r) => setTimeout(r, 100));
          attempt--; // not a conflict: the deadline bounds these
          sent++;
          continue;
        }
        if (sent > 0 && err instanceof MeshfedError && err.code === 'unavailable') {
          throw new MeshfedError(
            'unavailable',
            `${this.where}: commit failed (no quorum or unreachable): ${sent + 1} attempts in ${this.conn.timeoutMs} ms, the last: ${errorMessage(err.cause ?? err)}`,
            { cause: err },
          );
        }
        throw err;
      }
      const rev = Number(res.header.revision);
      await this.caughtUp(rev);
      if (res.succeeded) return { revision: rev, results: staged.results.map((r) => withRevision(r, rev)) };
      if (attempt >= this.maxRetries) {
        throw new MeshfedError(
          'conflict',
          `${this.where}: commit gave up after ${attempt + 1} attempts: other writers kept changing the same objects (${touched.slice(0, 10).join(', ')}${touched.length > 10 ? ', ...' : ''})`,
        );
      }
    }
  }

  /** The transaction's writes: every changed key, values without resourceVersion (the mod revision is). */
  private writes(staged: StagedCommit): (PutBuilder | DeleteBuilder)[] {
    const out: (PutBuilder | DeleteBuilder)[] = [];
    for (const [key, c] of staged.changes) {
      if (c.obj === null) out.push(this.conn.client.delete().key(this.keys.objects + key));
      else {
        const { resourceVersion: _rv, ...metadata } = c.obj.metadata;
        out.push(this.conn.client.put(this.keys.objects + key).value(JSON.stringify({ ...c.obj, metadata })));
      }
    }
    return out;
  }

  /** Waits, within the deadline, for the replica to show revision `rev`. */
  private async caughtUp(rev: number): Promise<void> {
    try {
      await this.conn.bounded(`the replica catching up to revision ${rev}`, () => this.replica.waitFor(rev));
    } catch (err) {
      throw new MeshfedError('unavailable', `${errorMessage(err)} (the transaction at revision ${rev} was taken by etcd; reads may not show it yet)`, { cause: err });
    }
  }

  /** A bounded etcd call that records the store's fault state. */
  private async call<T>(what: string, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
    try {
      const v = await this.conn.bounded(what, fn, timeoutMs);
      this.fault = undefined;
      return v;
    } catch (err) {
      this.fault = errorMessage(err);
      throw err;
    }
  }

  /** Keeps unavailable() current without writes: a linearizable read needs a quorum; and notices a new compaction. */
  private async probe(): Promise<void> {
    if (this.closing) return;
    try {
      await this.call('quorum probe', () => this.conn.client.get(this.keys.sync).exec());
    } catch {
      return; // recorded in this.fault by call()
    }
    try {
      await this.conn.bounded('probing compaction', () => this.conn.client.get(this.keys.sync).revision(this.floor).exec());
    } catch (err) {
      if (isCompactedError(err)) this.floor = await compactionFloor(this.conn, this.keys, this.replica.seen).catch(() => this.floor);
    }
  }

  private assertOpen(): void {
    if (this.closing) throw new Error(`store ${this.where} is closed`);
  }
}

/** A commit result whose object carries the commit's revision (stage.ts staged it at a guess). */
function withRevision(r: CommitResult['results'][number], rev: number): CommitResult['results'][number] {
  if (r.outcome !== 'created' && r.outcome !== 'configured') return r;
  let object: ApiObject | undefined;
  return {
    outcome: r.outcome,
    get object(): ApiObject {
      if (object === undefined) {
        object = r.object!;
        object.metadata.resourceVersion = String(rev);
      }
      return object;
    },
    set object(v: ApiObject) {
      object = v;
    },
  };
}
