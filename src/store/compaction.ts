// Compaction: when the log has grown enough, snapshot the state and cut the log.
// It runs between commit groups (no append in flight): the active log segment is
// moved aside so commits continue in a fresh one while the snapshot is written
// in the background; the old segment is deleted once the snapshot is durable.
// Invariants: at most one compaction at a time; the log is only cut after the
// snapshot covering it is durable, so snapshot + log always hold every
// acknowledged commit; a failed snapshot leaves the log intact and is retried.
import { errorMessage } from '../util/errors.js';
import { writeSnapshot } from './snapshot.js';
import type { StoreState } from './state.js';
import type { WriteAheadLog } from './wal.js';

export interface CompactionPolicy {
  /** Logged transactions since the last rotation needed before compacting. */
  compactEvery: number;
  /** Log bytes since the last snapshot needed, as a multiple of the snapshot's size. */
  compactLogRatio: number;
  /** ...and at least this many log bytes. */
  compactMinLogBytes: number;
}

export interface CompactionLogger {
  error(msg: string, err?: unknown): void;
}

export class Compactor {
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly dataDir: string,
    private readonly policy: CompactionPolicy,
    private readonly wal: WriteAheadLog,
    private readonly state: StoreState,
    private readonly logger: CompactionLogger,
    /** Size of the last snapshot written (or found at start). */
    private snapshotBytes: number,
    /** Transactions logged since the last rotation (at start: every record in the log). */
    private txSinceRotate: number,
  ) {}

  /** The snapshot being written, if any. */
  get compacting(): Promise<void> | undefined {
    return this.inFlight;
  }

  /** Counts transactions that were just made durable in the log. */
  noteLogged(transactions: number): void {
    this.txSinceRotate += transactions;
  }

  /** Whether the log has grown enough to compact, and no compaction is running. */
  isDue(): boolean {
    const c = this.policy;
    const due = this.txSinceRotate >= c.compactEvery && this.wal.size >= Math.max(c.compactMinLogBytes, c.compactLogRatio * this.snapshotBytes);
    return due && !this.inFlight;
  }

  /**
   * Rotates the log and starts writing the snapshot in the background. Call
   * between commit groups. Returns an error if the store can no longer take
   * writes (the rotation left it not knowing which file to append to).
   */
  async start(): Promise<Error | undefined> {
    if (!this.wal.hasOldSegment) {
      try {
        await this.wal.moveAside();
      } catch (err) {
        this.txSinceRotate = 0; // nothing changed; try again later
        this.logger.error(`meshfed store: compaction could not move ${this.wal.path} aside`, err);
        return undefined;
      }
      try {
        await this.wal.startFreshSegment();
      } catch (err) {
        // Recovery still reads both segments correctly, but this process no longer knows which file to append to.
        const failure = new Error(`store log rotation in ${this.dataDir} failed: ${errorMessage(err)}; reopen the store`, { cause: err });
        this.logger.error(`meshfed store: ${failure.message}`);
        return failure;
      }
    }
    // If an earlier snapshot failed, the old segment is still there: a snapshot
    // at the current revision covers it too, so no second rotation is needed.
    this.txSinceRotate = 0;
    const rev = this.state.rev;
    const objects = this.state.all(); // stored objects are never mutated in place
    this.inFlight = writeSnapshot(this.dataDir, rev, objects)
      .then(async (bytes) => {
        this.snapshotBytes = bytes;
        await this.wal.removeOldSegment();
      })
      .catch((err: unknown) => {
        this.logger.error(`meshfed store: writing snapshot in ${this.dataDir} failed (the log is intact; will retry)`, err);
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return undefined;
  }
}
