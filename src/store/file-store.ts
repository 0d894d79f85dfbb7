// FileStore: the embedded store of the hub, and the composition of its parts.
// State lives in memory (state.ts); durability comes from a write-ahead log
// (wal.ts: one checksummed JSON line per transaction, fsynced before a commit
// resolves, commit.ts) plus a periodic snapshot that lets the log be cut
// (snapshot.ts, compaction.ts); watches read the revision history (history.ts);
// one store per data directory (lock.ts). Layout of the data directory:
//
//   LOCK                 pid of the process that owns the directory
//   snapshot.json        {"rev":N,"objects":[...]} — state at revision N
//   wal.old.jsonl        previous log segment, only while a snapshot is being written
//   wal.jsonl            active log segment
//
// Recovery = snapshot + replay of every log line with rev > snapshot rev. Start
// cuts only a torn tail; corruption refuses it, naming file and byte offset
// (framing.ts has the rules; check.ts is `meshfed store check|repair`).
// Invariant: every method but commit and close throws once the store is closing;
// close waits for queued commits and a running compaction, then releases the lock.
import type { FileHandle } from 'node:fs/promises';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { keyOf, refOf, type ApiObject, type ObjectRef } from '../api/meta.js';
import { internObject } from '../util/intern.js';
import { CommitPipeline } from './commit.js';
import { Compactor, type CompactionPolicy } from './compaction.js';
import { fsyncDir } from './disk.js';
import { RevisionHistory } from './history.js';
import { DataDirLock } from './lock.js';
import { readSnapshot, SNAPSHOT } from './snapshot.js';
import { normalizeOp, type NormOp } from './stage.js';
import { kindOfKey, StoreState } from './state.js';
import type { CommitResult, ListFilter, Store, StoreOp, WatchEvent } from './store.js';
import { readLog, replayLog, WriteAheadLog } from './wal.js';

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

/** The default StoreLogger of every store. */
export const consoleLogger: StoreLogger = {
  warn: (msg) => console.warn(msg),
  error: (msg, err) => console.error(msg, err),
};

export class FileStore implements Store {
  private closing = false;
  private closePromise: Promise<void> | undefined;

  private constructor(
    readonly dataDir: string,
    private readonly lock: DataDirLock,
    private readonly state: StoreState,
    private readonly log: WriteAheadLog,
    private readonly history: RevisionHistory,
    private readonly compactor: Compactor,
    private readonly pipeline: CommitPipeline,
    private readonly logger: StoreLogger,
  ) {}

  /** The active log segment's handle (tests reach in to inject I/O failures). */
  private get wal(): FileHandle {
    return this.log.handle;
  }

  /** The snapshot being written, if any (tests wait on it). */
  private get compacting(): Promise<void> | undefined {
    return this.compactor.compacting;
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
    const lock = await DataDirLock.acquire(dataDir);
    try {
      return await FileStore.recover(dataDir, lock, { compactEvery, compactLogRatio, compactMinLogBytes }, historyLimit, logger);
    } catch (err) {
      await lock.abandon();
      throw err;
    }
  }

  private static async recover(dataDir: string, lock: DataDirLock, policy: CompactionPolicy, historyLimit: number, logger: StoreLogger): Promise<FileStore> {
    const snapshot = await readSnapshot(dataDir);
    const contents = await readLog(dataDir, logger, snapshot && { path: join(dataDir, SNAPSHOT), rev: snapshot.rev });

    const state = new StoreState();
    if (snapshot !== undefined) for (const o of snapshot.objects) state.apply(keyOf(refOf(o)), { kind: o.kind, obj: o });
    const replayed = replayLog(contents, snapshot?.rev ?? 0, (op) => {
      if ('put' in op) state.apply(keyOf(refOf(op.put)), { kind: op.put.kind, obj: internObject(op.put) });
      else state.apply(op.delete, { kind: kindOfKey(op.delete), obj: null });
    });
    state.rev = replayed.rev;

    const log = await WriteAheadLog.open(dataDir, contents);
    const history = new RevisionHistory(replayed.rev, historyLimit, logger);
    const compactor = new Compactor(dataDir, policy, log, state, logger, snapshot?.bytes ?? 0, replayed.records);
    const pipeline = new CommitPipeline(state, log, history, compactor, logger);
    return new FileStore(dataDir, lock, state, log, history, compactor, pipeline, logger);
  }

  revision(): number {
    return this.state.rev;
  }

  async get(ref: ObjectRef): Promise<ApiObject | undefined> {
    this.assertOpen();
    const o = this.state.lookup(keyOf(ref));
    return o === undefined ? undefined : structuredClone(o);
  }

  async list(filter: ListFilter = {}): Promise<ApiObject[]> {
    this.assertOpen();
    const hits = [...this.state.select(filter)];
    hits.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return hits.map(([, o]) => structuredClone(o));
  }

  scan(filter: ListFilter = {}): { revision: number; objects: readonly ApiObject[] } {
    this.assertOpen();
    const objects: ApiObject[] = [];
    for (const [, o] of this.state.select(filter)) objects.push(o);
    return { revision: this.state.rev, objects };
  }

  async count(filter: ListFilter = {}): Promise<number> {
    this.assertOpen();
    return this.state.count(filter);
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
    return this.pipeline.submit(norm);
  }

  watch(fromRevision: number, onEvent: (e: WatchEvent) => void): () => void {
    this.assertOpen();
    return this.history.watch(fromRevision, onEvent);
  }

  close(): Promise<void> {
    if (this.closePromise) return this.closePromise;
    this.closing = true;
    this.closePromise = (async () => {
      await this.pipeline.idle();
      await this.compactor.compacting;
      this.history.stopAll();
      try {
        await this.log.close();
      } catch (err) {
        this.logger.error(`meshfed store: closing ${this.log.path} failed`, err);
      }
      await this.lock.release();
    })();
    return this.closePromise;
  }

  unavailable(): string | undefined {
    if (this.closing) return `store ${this.dataDir} is closed`;
    return this.pipeline.failed?.message;
  }

  private assertOpen(): void {
    if (this.closing) throw new Error(`store ${this.dataDir} is closed`);
  }
}
