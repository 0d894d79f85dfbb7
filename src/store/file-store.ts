// FileStore: the embedded store of the hub. State lives in memory; durability
// comes from a write-ahead log (one checksummed JSON line per transaction,
// fsynced before a commit resolves) plus a periodic snapshot that lets the log
// be cut. Layout of the data directory:
//
//   LOCK                 pid of the process that owns the directory
//   snapshot.json        {"rev":N,"objects":[...]} — state at revision N
//   wal.old.jsonl        previous log segment, only while a snapshot is being written
//   wal.jsonl            active log segment
//
// Recovery = snapshot + replay of every log line with rev > snapshot rev.
import { createHash, randomUUID } from 'node:crypto';
import { link, mkdir, open, readFile, realpath, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { keyOf, refOf, type ApiObject, type ObjectRef } from '../api/meta.js';
import { internObject } from '../util/intern.js';
import {
  RevisionCompactedError,
  type CommitResult,
  type ListFilter,
  type OpOutcome,
  type Store,
  type StoreOp,
  type WatchEvent,
} from './store.js';

export interface StoreLogger {
  warn(msg: string): void;
  error(msg: string, err?: unknown): void;
}

export interface FileStoreOptions {
  /**
   * Snapshot and cut the log once the log since the last snapshot is at least
   * `compactLogRatio` times the snapshot's size (default 1) and at least
   * `compactMinLogBytes` (default 4 MiB). A snapshot rewrites every object, so
   * tying it to the log's growth keeps its cost per commit proportional to the
   * commit, not to the size of the store; recovery replays at most about one
   * snapshot's worth of log.
   */
  compactLogRatio?: number;
  compactMinLogBytes?: number;
  /** Also require this many logged transactions since the last snapshot (default 1). Setting it sets compactMinLogBytes' default to 0. */
  compactEvery?: number;
  /** Watch events kept in memory for watchers resuming from an older revision (default 10000). */
  historyLimit?: number;
  /** Where recovery notices, compaction failures and throwing watch listeners are reported (default console). */
  logger?: StoreLogger;
}

const WAL = 'wal.jsonl';
const WAL_OLD = 'wal.old.jsonl';
const SNAPSHOT = 'snapshot.json';
const LOCK = 'LOCK';
/** Upper bound on commits sharing one write + fsync, to bound the latency of a group. */
const MAX_GROUP = 512;

const consoleLogger: StoreLogger = {
  warn: (msg) => console.warn(msg),
  error: (msg, err) => console.error(msg, err),
};

/** Directories opened by this process: the LOCK file cannot tell our own pid's live lock from a stale one. */
const openDirs = new Set<string>();

type NormOp = { type: 'put'; object: ApiObject } | { type: 'delete'; key: string; kind: string };

interface Compaction {
  compactEvery: number;
  compactLogRatio: number;
  compactMinLogBytes: number;
}

interface Change {
  kind: string;
  obj: ApiObject | null;
}

interface HistEvent {
  type: WatchEvent['type'];
  revision: number;
  /** Serialized object: compact to retain, and every delivery parses its own copy. */
  json: string;
}

interface Pending {
  ops: NormOp[];
  resolve: (r: CommitResult) => void;
  reject: (e: unknown) => void;
}

interface Staged {
  pending: Pending;
  rev: number;
  changes: Map<string, Change>;
  walOps: string[];
  events: HistEvent[];
  results: CommitResult['results'];
}

interface Watcher {
  after: number;
  queue: HistEvent[];
  head: number;
  onEvent: (e: WatchEvent) => void;
  stopped: boolean;
  draining: boolean;
}

type WalOp = { put: ApiObject } | { delete: string };
interface WalRecord {
  rev: number;
  ops: WalOp[];
  /** Set on every line of a group write but the last: a group missing its last line was never acknowledged. */
  more?: true;
}

export class FileStore implements Store {
  /** kind -> key -> object. Stored objects are never mutated in place (a change replaces them). */
  private readonly byKind = new Map<string, Map<string, ApiObject>>();
  /** kind + cluster -> key -> object, for objects with metadata.cluster (what one agent reported). */
  private readonly byCluster = new Map<string, Map<string, ApiObject>>();
  private rev = 0;

  private queue: Pending[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  /** Set when the log may no longer match memory; every later commit fails until reopened. */
  private failure: Error | undefined;
  private closing = false;
  private closePromise: Promise<void> | undefined;

  private walSize = 0;
  /** Size of the last snapshot written (or found at start). */
  private snapshotBytes = 0;
  private txSinceRotate = 0;
  private oldSegment = false;
  private compacting: Promise<void> | undefined;

  private history: HistEvent[] = [];
  private histHead = 0;
  /** Every event with revision > historyStart is in `history`. */
  private historyStart = 0;
  private readonly watchers = new Set<Watcher>();

  private constructor(
    readonly dataDir: string,
    private readonly canonicalDir: string,
    private wal: FileHandle,
    private readonly compaction: Compaction,
    private readonly historyLimit: number,
    private readonly logger: StoreLogger,
  ) {}

  private get walPath(): string {
    return join(this.dataDir, WAL);
  }

  static async open(dataDir: string, opts: FileStoreOptions = {}): Promise<FileStore> {
    const compactEvery = opts.compactEvery ?? 1;
    const compactLogRatio = opts.compactLogRatio ?? 1;
    const compactMinLogBytes = opts.compactMinLogBytes ?? (opts.compactEvery !== undefined ? 0 : 4 * 1024 * 1024);
    if (!(compactMinLogBytes >= 0)) throw new RangeError(`compactMinLogBytes must be a non-negative number, got ${compactMinLogBytes}`);
    const historyLimit = opts.historyLimit ?? 10000;
    if (!Number.isInteger(compactEvery) || compactEvery < 1) throw new RangeError(`compactEvery must be a positive integer, got ${compactEvery}`);
    if (!(compactLogRatio >= 0)) throw new RangeError(`compactLogRatio must be a non-negative number, got ${compactLogRatio}`);
    if (!Number.isInteger(historyLimit) || historyLimit < 0) throw new RangeError(`historyLimit must be a non-negative integer, got ${historyLimit}`);
    const logger = opts.logger ?? consoleLogger;

    const created = await mkdir(dataDir, { recursive: true, mode: 0o700 });
    // A new directory entry is only durable once its parent is fsynced.
    if (created !== undefined) await fsyncDir(dirname(created));
    const canonical = await realpath(dataDir);
    if (openDirs.has(canonical)) {
      throw new Error(`store data directory ${dataDir} is already open in this process (pid ${process.pid})`);
    }
    openDirs.add(canonical);
    let locked = false;
    try {
      await acquireLock(dataDir);
      locked = true;
      return await FileStore.recover(dataDir, canonical, { compactEvery, compactLogRatio, compactMinLogBytes }, historyLimit, logger);
    } catch (err) {
      if (locked) await rm(join(dataDir, LOCK), { force: true }).catch(() => undefined);
      openDirs.delete(canonical);
      throw err;
    }
  }

  private static async recover(
    dataDir: string,
    canonical: string,
    compaction: Compaction,
    historyLimit: number,
    logger: StoreLogger,
  ): Promise<FileStore> {
    // A leftover temp snapshot is from a crash before its rename: the real snapshot and log are intact.
    await rm(join(dataDir, SNAPSHOT + '.tmp'), { force: true });

    const objects: ApiObject[] = [];
    let rev = 0;
    const snapPath = join(dataDir, SNAPSHOT);
    const snapText = await readIfExists(snapPath);
    if (snapText !== undefined) {
      let snap: unknown;
      try {
        snap = JSON.parse(snapText.toString('utf8'));
      } catch (err) {
        throw new Error(`store snapshot ${snapPath} is corrupt: ${errMsg(err)}`, { cause: err });
      }
      if (!isRecord(snap) || !isRevision(snap.rev) || !Array.isArray(snap.objects) || !snap.objects.every(isStorable)) {
        throw new Error(`store snapshot ${snapPath} is malformed`);
      }
      rev = snap.rev;
      for (const o of snap.objects as ApiObject[]) objects.push(internObject(o));
    }

    const oldPath = join(dataDir, WAL_OLD);
    const walPath = join(dataDir, WAL);
    const oldBuf = await readIfExists(oldPath);
    const walBuf = await readIfExists(walPath);
    const segments: { path: string; buf: Buffer }[] = [];
    if (oldBuf !== undefined) segments.push({ path: oldPath, buf: oldBuf });
    if (walBuf !== undefined) segments.push({ path: walPath, buf: walBuf });
    const scans = segments.map((s) => ({ ...s, scan: scanWal(s.buf, s.path) }));

    for (let i = 0; i < scans.length; i++) {
      const s = scans[i]!;
      if (s.scan.goodEnd === s.buf.length) continue;
      // Only the very last write can be torn; damage followed by more log is lost acknowledged data.
      if (scans.slice(i + 1).some((later) => later.buf.length > 0)) {
        throw new Error(`store log ${s.path} is corrupt at byte ${s.scan.goodEnd} and a newer segment follows; refusing to start`);
      }
      const h = await open(s.path, 'r+');
      try {
        await h.truncate(s.scan.goodEnd);
        await h.sync();
      } finally {
        await h.close();
      }
      logger.warn(
        `meshfed store: discarded ${s.buf.length - s.scan.goodEnd} bytes of incomplete log at the end of ${s.path} (an unacknowledged write interrupted by a crash)`,
      );
    }

    const store = new FileStore(dataDir, canonical, undefined as unknown as FileHandle, compaction, historyLimit, logger);
    store.snapshotBytes = snapText?.length ?? 0;
    for (const o of objects) store.applyChange(keyOf(refOf(o)), { kind: o.kind, obj: o });
    let txCount = 0;
    for (const s of scans) {
      for (const { rec, line } of s.scan.records) {
        txCount++;
        if (rec.rev <= rev) continue; // already in the snapshot (crash before the old log was removed)
        if (rec.rev !== rev + 1) {
          throw new Error(`store log ${s.path} line ${line} has revision ${rec.rev} but ${rev + 1} was expected; refusing to start`);
        }
        for (const op of rec.ops) {
          if ('put' in op) store.applyChange(keyOf(refOf(op.put)), { kind: op.put.kind, obj: internObject(op.put) });
          else store.applyChange(op.delete, { kind: kindOfKey(op.delete), obj: null });
        }
        rev = rec.rev;
      }
    }
    store.rev = rev;
    store.historyStart = rev;
    store.txSinceRotate = txCount;
    store.oldSegment = oldBuf !== undefined;

    const walExisted = walBuf !== undefined;
    store.wal = await open(walPath, 'a', 0o600);
    store.walSize = walExisted ? (scans[scans.length - 1]!.scan.goodEnd) : 0;
    if (!walExisted) await fsyncDir(dataDir);
    return store;
  }

  revision(): number {
    return this.rev;
  }

  async get(ref: ObjectRef): Promise<ApiObject | undefined> {
    this.assertOpen();
    const o = this.lookup(keyOf(ref));
    return o === undefined ? undefined : structuredClone(o);
  }

  async list(filter: ListFilter = {}): Promise<ApiObject[]> {
    this.assertOpen();
    const hits = [...this.select(filter)];
    hits.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return hits.map(([, o]) => structuredClone(o));
  }

  scan(filter: ListFilter = {}): { revision: number; objects: readonly ApiObject[] } {
    this.assertOpen();
    const objects: ApiObject[] = [];
    for (const [, o] of this.select(filter)) objects.push(o);
    return { revision: this.rev, objects };
  }

  async count(filter: ListFilter = {}): Promise<number> {
    this.assertOpen();
    if (filter.namespace === undefined) {
      if (filter.kind !== undefined && filter.cluster !== undefined) return this.byCluster.get(clusterIndexKey(filter.kind, filter.cluster))?.size ?? 0;
      if (filter.kind !== undefined && filter.cluster === undefined) return this.byKind.get(filter.kind)?.size ?? 0;
    }
    let n = 0;
    for (const _ of this.select(filter)) n++;
    return n;
  }

  /** The stored object under a key (not a copy). */
  private lookup(key: string): ApiObject | undefined {
    return this.byKind.get(kindOfKey(key))?.get(key);
  }

  /** Stored objects matching a filter, by the narrowest index that answers it (not copies, unsorted). */
  private *select(filter: ListFilter): Generator<[string, ApiObject]> {
    let sources: Iterable<Map<string, ApiObject>>;
    if (filter.kind !== undefined && filter.cluster !== undefined) sources = [this.byCluster.get(clusterIndexKey(filter.kind, filter.cluster)) ?? new Map()];
    else if (filter.kind !== undefined) sources = [this.byKind.get(filter.kind) ?? new Map()];
    else sources = this.byKind.values();
    for (const m of sources) {
      for (const entry of m) {
        const o = entry[1];
        if (filter.namespace !== undefined && o.metadata.namespace !== filter.namespace) continue;
        if (filter.cluster !== undefined && o.metadata.cluster !== filter.cluster) continue;
        yield entry;
      }
    }
  }

  commit(ops: StoreOp[]): Promise<CommitResult> {
    if (this.closing) return Promise.reject(new Error(`store ${this.dataDir} is closed`));
    let norm: NormOp[];
    try {
      // Copy now: the caller may mutate its objects while the commit waits in the queue.
      norm = ops.map(normalizeOp);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<CommitResult>((resolve, reject) => {
      this.queue.push({ ops: norm, resolve, reject });
      if (!this.running) {
        this.running = true;
        void this.run();
      }
    });
  }

  watch(fromRevision: number, onEvent: (e: WatchEvent) => void): () => void {
    this.assertOpen();
    if (!Number.isInteger(fromRevision) || fromRevision < 0) throw new RangeError(`watch revision must be a non-negative integer, got ${fromRevision}`);
    if (fromRevision < this.historyStart) throw new RevisionCompactedError(fromRevision, this.historyStart);
    const w: Watcher = { after: fromRevision, queue: [], head: 0, onEvent, stopped: false, draining: false };
    w.queue = this.history.slice(this.firstAfter(fromRevision));
    this.watchers.add(w);
    // Replay on a microtask so the caller holds the unsubscribe function first; a
    // live event arriving earlier drains the queue itself, so order is kept.
    if (w.queue.length > 0) queueMicrotask(() => this.drain(w));
    return () => {
      w.stopped = true;
      w.queue = [];
      w.head = 0;
      this.watchers.delete(w);
    };
  }

  close(): Promise<void> {
    if (this.closePromise) return this.closePromise;
    this.closing = true;
    this.closePromise = (async () => {
      await this.idle();
      await this.compacting;
      for (const w of this.watchers) w.stopped = true;
      this.watchers.clear();
      try {
        await this.wal.close();
      } catch (err) {
        this.logger.error(`meshfed store: closing ${this.walPath} failed`, err);
      }
      await rm(join(this.dataDir, LOCK), { force: true });
      openDirs.delete(this.canonicalDir);
    })();
    return this.closePromise;
  }

  // ---- commit pipeline ----

  private async run(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, MAX_GROUP);
        try {
          await this.processGroup(group);
        } catch (err) {
          // Defensive: processGroup settles its own promises; this only catches bugs.
          for (const p of group) p.reject(err);
        }
      }
    } finally {
      this.running = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stages every commit of the group in order, writes them with one fsync, then applies and resolves. */
  private async processGroup(group: Pending[]): Promise<void> {
    if (this.failure) {
      for (const p of group) p.reject(this.failure);
      return;
    }
    const overlay = new Map<string, Change>();
    const staged: Staged[] = [];
    let rev = this.rev;
    for (const p of group) {
      let s: Staged;
      try {
        s = this.stage(p, overlay, rev + 1);
      } catch (err) {
        p.reject(err);
        continue;
      }
      if (s.walOps.length > 0) {
        rev++;
        for (const [k, c] of s.changes) overlay.set(k, c);
      } else {
        s.rev = rev;
      }
      staged.push(s);
    }

    const writers = staged.filter((s) => s.walOps.length > 0);
    if (writers.length > 0) {
      const text = writers.map((s, i) => encodeLine(s.rev, s.walOps, i < writers.length - 1)).join('');
      const buf = Buffer.from(text, 'utf8');
      try {
        await writeAll(this.wal, buf);
        await this.wal.datasync();
      } catch (err) {
        const e = new Error(`store write to ${this.walPath} failed: ${errMsg(err)}`, { cause: err });
        await this.rollback(e);
        // Later commits of the group were staged on top of earlier ones, so all fail together.
        for (const s of staged) s.pending.reject(e);
        return;
      }
      this.walSize += buf.length;
      this.txSinceRotate += writers.length;
    }

    const events: HistEvent[] = [];
    for (const s of writers) {
      for (const [k, c] of s.changes) this.applyChange(k, c);
      this.rev = s.rev;
      for (const e of s.events) events.push(e);
    }
    if (events.length > 0) this.publish(events);
    for (const s of staged) s.pending.resolve({ revision: s.rev, results: s.results });

    const c = this.compaction;
    const due = this.txSinceRotate >= c.compactEvery && this.walSize >= Math.max(c.compactMinLogBytes, c.compactLogRatio * this.snapshotBytes);
    if (due && !this.compacting && !this.failure) await this.startCompaction();
  }

  /** Computes one commit's outcomes against memory + earlier commits of the group, without touching either. */
  private stage(p: Pending, overlay: Map<string, Change>, rev: number): Staged {
    const changes = new Map<string, Change>();
    const lookup = (key: string): ApiObject | undefined => {
      const c = changes.get(key) ?? overlay.get(key);
      if (c !== undefined) return c.obj ?? undefined;
      return this.lookup(key);
    };
    const walOps: string[] = [];
    const events: HistEvent[] = [];
    const results: CommitResult['results'] = [];
    const rv = String(rev);
    let now: string | undefined;

    for (const op of p.ops) {
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
      if (cur !== undefined && sameContent(cur, input)) {
        results.push(lazyResult('unchanged', () => structuredClone(cur)));
        continue;
      }
      const meta = stripStoreMeta(input.metadata);
      if (cur === undefined) {
        meta.uid = randomUUID();
        meta.creationTimestamp = now ??= new Date().toISOString();
        meta.generation = 1;
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
    return { pending: p, rev, changes, walOps, events, results };
  }

  /** Undo a failed append so the next commit can reuse the revision; if even that fails, stop taking writes. */
  private async rollback(cause: Error): Promise<void> {
    try {
      await this.wal.truncate(this.walSize);
      await this.wal.datasync();
    } catch (err) {
      this.failure = new Error(
        `store ${this.walPath} is in an unknown state after a failed write (${cause.message}) and could not be restored (${errMsg(err)}); reopen the store`,
        { cause: err },
      );
      this.logger.error(`meshfed store: ${this.failure.message}`);
    }
  }

  private applyChange(key: string, c: Change): void {
    const m = this.byKind.get(c.kind);
    const prev = m?.get(key);
    // The cluster is part of the key, so a put never moves an object to another cluster.
    const cluster = c.obj?.metadata.cluster ?? prev?.metadata.cluster;
    const ck = cluster === undefined ? undefined : clusterIndexKey(c.kind, cluster);
    if (c.obj !== null) {
      if (m === undefined) this.byKind.set(c.kind, new Map([[key, c.obj]]));
      else m.set(key, c.obj);
      if (ck !== undefined) {
        const cm = this.byCluster.get(ck);
        if (cm === undefined) this.byCluster.set(ck, new Map([[key, c.obj]]));
        else cm.set(key, c.obj);
      }
    } else {
      if (m !== undefined) {
        m.delete(key);
        if (m.size === 0) this.byKind.delete(c.kind);
      }
      if (ck !== undefined) {
        const cm = this.byCluster.get(ck);
        if (cm !== undefined) {
          cm.delete(key);
          if (cm.size === 0) this.byCluster.delete(ck);
        }
      }
    }
  }

  // ---- compaction ----

  /**
   * Runs between groups (no append in flight): moves the active log aside so
   * commits continue in a fresh one while the snapshot is written in the
   * background; the old segment is deleted once the snapshot is durable.
   */
  private async startCompaction(): Promise<void> {
    const oldPath = join(this.dataDir, WAL_OLD);
    if (!this.oldSegment) {
      try {
        await rename(this.walPath, oldPath);
      } catch (err) {
        this.txSinceRotate = 0; // nothing changed; try again later
        this.logger.error(`meshfed store: compaction could not move ${this.walPath} aside`, err);
        return;
      }
      let fresh: FileHandle | undefined;
      try {
        fresh = await open(this.walPath, 'ax', 0o600);
        await fsyncDir(this.dataDir);
      } catch (err) {
        await fresh?.close().catch(() => undefined);
        // Recovery still reads both segments correctly, but this process no longer knows which file to append to.
        this.failure = new Error(`store log rotation in ${this.dataDir} failed: ${errMsg(err)}; reopen the store`, { cause: err });
        this.logger.error(`meshfed store: ${this.failure.message}`);
        return;
      }
      const prev = this.wal;
      this.wal = fresh;
      this.walSize = 0;
      this.oldSegment = true;
      await prev.close().catch(() => undefined);
    }
    // If an earlier snapshot failed, the old segment is still there: a snapshot
    // at the current revision covers it too, so no second rotation is needed.
    this.txSinceRotate = 0;
    const rev = this.rev;
    const objects: ApiObject[] = []; // stored objects are never mutated in place
    for (const m of this.byKind.values()) for (const o of m.values()) objects.push(o);
    this.compacting = this.writeSnapshot(rev, objects)
      .then(async () => {
        await rm(oldPath, { force: true });
        this.oldSegment = false;
      })
      .catch((err: unknown) => {
        this.logger.error(`meshfed store: writing snapshot in ${this.dataDir} failed (the log is intact; will retry)`, err);
      })
      .finally(() => {
        this.compacting = undefined;
      });
  }

  private async writeSnapshot(rev: number, objects: ApiObject[]): Promise<void> {
    const snapPath = join(this.dataDir, SNAPSHOT);
    const tmp = snapPath + '.tmp';
    const h = await open(tmp, 'w', 0o600);
    let bytes = 0;
    try {
      let chunk = `{"rev":${rev},"objects":[`;
      for (let i = 0; i < objects.length; i++) {
        chunk += (i === 0 ? '\n' : ',\n') + JSON.stringify(objects[i]);
        if (chunk.length > 1 << 20) {
          const buf = Buffer.from(chunk, 'utf8');
          bytes += buf.length;
          await writeAll(h, buf);
          chunk = '';
        }
      }
      chunk += '\n]}\n';
      const buf = Buffer.from(chunk, 'utf8');
      bytes += buf.length;
      await writeAll(h, buf);
      await h.sync();
    } finally {
      await h.close();
    }
    await rename(tmp, snapPath);
    await fsyncDir(this.dataDir);
    this.snapshotBytes = bytes;
  }

  // ---- watch ----

  private publish(events: HistEvent[]): void {
    if (this.historyLimit > 0) {
      for (const e of events) this.history.push(e);
    }
    const excess = this.history.length - this.histHead - this.historyLimit;
    if (excess > 0) {
      this.histHead += excess;
      this.historyStart = this.history[this.histHead - 1]!.revision;
    } else if (this.historyLimit === 0) {
      this.historyStart = events[events.length - 1]!.revision;
    }
    // Reclaim the dropped prefix now and then instead of shifting on every commit.
    if (this.histHead > 1024 && this.histHead * 2 > this.history.length) {
      this.history = this.history.slice(this.histHead);
      this.histHead = 0;
    }
    for (const w of this.watchers) {
      for (const e of events) if (e.revision > w.after) w.queue.push(e);
      this.drain(w);
    }
  }

  private drain(w: Watcher): void {
    if (w.draining) return; // a listener's own commit re-entered; the outer loop delivers in order
    w.draining = true;
    try {
      while (!w.stopped && w.head < w.queue.length) {
        const e = w.queue[w.head++]!;
        try {
          w.onEvent({ type: e.type, revision: e.revision, object: JSON.parse(e.json) as ApiObject });
        } catch (err) {
          this.logger.error(`meshfed store: watch listener threw on ${e.type} at revision ${e.revision}`, err);
        }
      }
    } finally {
      w.draining = false;
      if (w.head >= w.queue.length) {
        w.queue = [];
        w.head = 0;
      }
    }
  }

  /** Index of the first retained event with revision > rev. */
  private firstAfter(rev: number): number {
    let lo = this.histHead;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.history[mid]!.revision > rev) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private assertOpen(): void {
    if (this.closing) throw new Error(`store ${this.dataDir} is closed`);
  }
}

// ---- helpers ----

function encodeLine(rev: number, ops: string[], more: boolean): string {
  const payload = `{"rev":${rev},"ops":[${ops.join(',')}]${more ? ',"more":true' : ''}}`;
  return `${checksum(payload)} ${payload}\n`;
}

function checksum(payload: string | Buffer): string {
  return createHash('sha256').update(payload).digest('hex').slice(0, 16);
}

interface WalScan {
  records: { rec: WalRecord; line: number }[];
  /** Byte length of the prefix made of complete, acknowledged-shape groups. */
  goodEnd: number;
}

/**
 * Splits a log segment into records. A group write ends with a line without
 * `more`; lines after the last complete group, or from the first damaged line
 * on, are the torn tail of a write that was never acknowledged. A damaged line
 * followed by a complete group and then still more log cannot be a torn write.
 */
function scanWal(buf: Buffer, path: string): WalScan {
  const entries: { end: number; rec: WalRecord | undefined }[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    const end = nl === -1 ? buf.length : nl + 1;
    entries.push({ end, rec: nl === -1 ? undefined : decodeLine(buf.subarray(pos, nl)) });
    pos = end;
  }
  let firstBad = entries.findIndex((e) => e.rec === undefined);
  if (firstBad === -1) firstBad = entries.length;
  else {
    const groupEnd = entries.findIndex((e, i) => i > firstBad && e.rec !== undefined && !e.rec.more);
    if (groupEnd !== -1 && groupEnd < entries.length - 1) {
      throw new Error(`store log ${path} is corrupt at line ${firstBad + 1} (acknowledged commits follow it); refusing to start`);
    }
  }
  let complete = 0;
  for (let i = 0; i < firstBad; i++) if (!entries[i]!.rec!.more) complete = i + 1;
  return {
    records: entries.slice(0, complete).map((e, i) => ({ rec: e.rec!, line: i + 1 })),
    goodEnd: complete === 0 ? 0 : entries[complete - 1]!.end,
  };
}

function decodeLine(line: Buffer): WalRecord | undefined {
  const sp = line.indexOf(0x20);
  if (sp !== 16) return undefined;
  const payload = line.subarray(sp + 1);
  if (line.subarray(0, sp).toString('latin1') !== checksum(payload)) return undefined;
  let rec: unknown;
  try {
    rec = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isRecord(rec) || !isRevision(rec.rev) || rec.rev === 0 || !Array.isArray(rec.ops)) return undefined;
  for (const op of rec.ops) {
    if (!isRecord(op)) return undefined;
    if ('put' in op ? !isStorable(op.put) : typeof op.delete !== 'string') return undefined;
  }
  return rec as unknown as WalRecord;
}

function normalizeOp(op: StoreOp): NormOp {
  if (isRecord(op) && op.type === 'put') {
    if (!isRecord(op.object)) throw new TypeError('store put: object is missing');
    const object = JSON.parse(JSON.stringify(op.object)) as unknown;
    if (!isStorable(object)) throw new TypeError('store put: object needs a kind and metadata.name');
    return { type: 'put', object };
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
  return (
    jsonEqual(a.spec, b.spec) &&
    jsonEqual(a.status, b.status) &&
    jsonEqual(a.metadata.labels, b.metadata.labels) &&
    jsonEqual(a.metadata.annotations, b.metadata.annotations)
  );
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

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isRevision(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** The minimum the store needs to key an object (schemas are the callers' business). */
function isStorable(v: unknown): v is ApiObject {
  return (
    isRecord(v) &&
    typeof v.kind === 'string' &&
    v.kind !== '' &&
    !v.kind.includes('/') &&
    isRecord(v.metadata) &&
    typeof v.metadata.name === 'string' &&
    v.metadata.name !== ''
  );
}

function kindOfKey(key: string): string {
  return key.slice(0, key.indexOf('/'));
}

function clusterIndexKey(kind: string, cluster: string): string {
  return `${kind}\u0000${cluster}`;
}

function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function writeAll(h: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await h.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

/** Makes renames and file creations in `dir` durable. */
async function fsyncDir(dir: string): Promise<void> {
  let h: FileHandle | undefined;
  try {
    h = await open(dir, 'r');
    await h.sync();
  } catch (err) {
    // Some platforms (Windows) cannot open or fsync a directory; there is nothing more to do there.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EACCES') throw err;
  } finally {
    await h?.close();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

/**
 * The lock file appears atomically with its content (link of a finished temp
 * file), so a reader never sees a half-written pid. A lock whose pid is dead —
 * or is our own pid from an earlier life, e.g. pid 1 in a restarted container —
 * is stale and taken over.
 */
async function acquireLock(dataDir: string): Promise<void> {
  const lockPath = join(dataDir, LOCK);
  for (let attempt = 0; attempt < 5; attempt++) {
    const tmp = join(dataDir, `${LOCK}.${process.pid}.${randomUUID()}`);
    await writeFile(tmp, `${process.pid}\n`, { mode: 0o600 });
    try {
      await link(tmp, lockPath);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await rm(tmp, { force: true });
    }
    const content = await readIfExists(lockPath);
    if (content === undefined) continue; // released meanwhile
    const pid = Number.parseInt(content.toString('utf8').trim(), 10);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
      throw new Error(
        `store data directory ${dataDir} is locked by process ${pid} (${lockPath}); another hub is using it. ` +
          `If no such hub is running, delete ${lockPath}.`,
      );
    }
    await rm(lockPath, { force: true });
  }
  throw new Error(`could not acquire ${lockPath}: it keeps reappearing`);
}
