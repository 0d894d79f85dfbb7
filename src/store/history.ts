// The revision history watches read from: the most recent committed events (up
// to a limit) and the live watchers they are delivered to.
// Invariants: every event with revision > `start` is retained, in revision
// order; a watcher receives each event after its starting revision exactly once,
// in order, even when its listener commits (re-enters) or throws; events are
// kept serialized, and every delivery parses its own copy.
import type { ApiObject } from '../api/meta.js';
import { RevisionCompactedError, type WatchEvent } from './store.js';

export interface HistoryLogger {
  error(msg: string, err?: unknown): void;
}

export interface HistEvent {
  type: WatchEvent['type'];
  revision: number;
  /** Serialized object: compact to retain, and every delivery parses its own copy. */
  json: string;
}

interface Watcher {
  after: number;
  queue: HistEvent[];
  head: number;
  onEvent: (e: WatchEvent) => void;
  stopped: boolean;
  draining: boolean;
}

export class RevisionHistory {
  private events: HistEvent[] = [];
  /** Index of the first retained event in `events` (the prefix before it is dropped). */
  private head = 0;
  /** Every event with revision > start is retained. */
  private start: number;
  private readonly watchers = new Set<Watcher>();

  constructor(
    /** The revision the store starts at: nothing before it is retained. */
    startRevision: number,
    private readonly limit: number,
    private readonly logger: HistoryLogger,
  ) {
    this.start = startRevision;
  }

  /**
   * Delivers every retained event after `fromRevision`, then live ones. Throws
   * RevisionCompactedError if history no longer reaches back that far.
   */
  watch(fromRevision: number, onEvent: (e: WatchEvent) => void): () => void {
    if (!Number.isInteger(fromRevision) || fromRevision < 0) throw new RangeError(`watch revision must be a non-negative integer, got ${fromRevision}`);
    if (fromRevision < this.start) throw new RevisionCompactedError(fromRevision, this.start);
    const w: Watcher = { after: fromRevision, queue: [], head: 0, onEvent, stopped: false, draining: false };
    w.queue = this.events.slice(this.firstAfter(fromRevision));
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

  /** Retains a commit group's events (non-empty, in revision order) and delivers them. */
  publish(events: HistEvent[]): void {
    if (this.limit > 0) {
      for (const e of events) this.events.push(e);
    }
    const excess = this.events.length - this.head - this.limit;
    if (excess > 0) {
      this.head += excess;
      this.start = this.events[this.head - 1]!.revision;
    } else if (this.limit === 0) {
      this.start = events[events.length - 1]!.revision;
    }
    // Reclaim the dropped prefix now and then instead of shifting on every commit.
    if (this.head > 1024 && this.head * 2 > this.events.length) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
    for (const w of this.watchers) {
      for (const e of events) if (e.revision > w.after) w.queue.push(e);
      this.drain(w);
    }
  }

  /** Stops every watcher (the store is closing). */
  stopAll(): void {
    for (const w of this.watchers) w.stopped = true;
    this.watchers.clear();
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
    let lo = this.head;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.events[mid]!.revision > rev) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
