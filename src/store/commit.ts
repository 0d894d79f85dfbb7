// The commit pipeline: commits queue up in call order and are written in
// groups, one log write + fsync per group, then applied to memory, published to
// watchers and resolved; compaction is started between groups.
// Invariants (durability): a commit resolves only after its log line is
// fsynced; memory, revision and watchers change only after that; a failed write
// changes nothing (the partial write is cut off, and the revision is reused);
// if the log may no longer match memory, every later commit fails until the
// store is reopened. Revisions are consecutive, in call order.
import type { ApiObject } from '../api/meta.js';
import { errorMessage } from '../util/errors.js';
import type { Compactor } from './compaction.js';
import type { HistEvent, RevisionHistory } from './history.js';
import { stageCommit, type NormOp, type StagedCommit } from './stage.js';
import type { Change, StoreState } from './state.js';
import type { CommitResult } from './store.js';
import type { WriteAheadLog } from './wal.js';

/** Upper bound on commits sharing one write + fsync, to bound the latency of a group. */
const MAX_GROUP = 512;

export interface CommitLogger {
  error(msg: string, err?: unknown): void;
}

interface Pending {
  ops: NormOp[];
  resolve: (r: CommitResult) => void;
  reject: (e: unknown) => void;
}

interface Staged extends StagedCommit {
  pending: Pending;
}

export class CommitPipeline {
  private queue: Pending[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  /** Set when the log may no longer match memory; every later commit fails until reopened. */
  private failure: Error | undefined;

  constructor(
    private readonly state: StoreState,
    private readonly wal: WriteAheadLog,
    private readonly history: RevisionHistory,
    private readonly compactor: Compactor,
    private readonly logger: CommitLogger,
  ) {}

  /** Set once a write failure stops the pipeline taking writes. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /** Queues a commit of checked, copied ops; resolves once it is durable and applied. */
  submit(ops: NormOp[]): Promise<CommitResult> {
    return new Promise<CommitResult>((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      if (!this.running) {
        this.running = true;
        void this.run();
      }
    });
  }

  /** Resolves once no group is being processed and the queue is empty. */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

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

  /** Stages every commit of the group in order, writes them with one fsync, then applies and resolves. */
  private async processGroup(group: Pending[]): Promise<void> {
    if (this.failure) {
      for (const p of group) p.reject(this.failure);
      return;
    }
    const overlay = new Map<string, Change>();
    const base = (key: string): ApiObject | undefined => {
      const c = overlay.get(key);
      if (c !== undefined) return c.obj ?? undefined;
      return this.state.lookup(key);
    };
    const staged: Staged[] = [];
    let rev = this.state.rev;
    for (const p of group) {
      let s: Staged;
      try {
        s = { ...stageCommit(p.ops, base, rev + 1), pending: p };
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
      try {
        await this.wal.append(writers.map((s) => ({ rev: s.rev, ops: s.walOps })));
      } catch (err) {
        const e = new Error(`store write to ${this.wal.path} failed: ${errorMessage(err)}`, { cause: err });
        await this.rollback(e);
        // Later commits of the group were staged on top of earlier ones, so all fail together.
        for (const s of staged) s.pending.reject(e);
        return;
      }
      this.compactor.noteLogged(writers.length);
    }

    const events: HistEvent[] = [];
    for (const s of writers) {
      for (const [k, c] of s.changes) this.state.apply(k, c);
      this.state.rev = s.rev;
      for (const e of s.events) events.push(e);
    }
    if (events.length > 0) this.history.publish(events);
    for (const s of staged) s.pending.resolve({ revision: s.rev, results: s.results });

    if (!this.failure && this.compactor.isDue()) {
      const fatal = await this.compactor.start();
      if (fatal !== undefined) this.failure = fatal;
    }
  }

  /** Undo a failed append so the next commit can reuse the revision; if even that fails, stop taking writes. */
  private async rollback(cause: Error): Promise<void> {
    try {
      await this.wal.undoPartialAppend();
    } catch (err) {
      this.failure = new Error(`store ${this.wal.path} is in an unknown state after a failed write (${cause.message}) and could not be restored (${errorMessage(err)}); reopen the store`, {
        cause: err,
      });
      this.logger.error(`meshfed store: ${this.failure.message}`);
    }
  }
}
