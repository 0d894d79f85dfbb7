// The hub's audit log: every write and every denied request, kept in the
// hub's store as objects of an internal kind (AuditRecord, one per record,
// named by its zero-padded seq, and one AuditAnchor), hash-chained
// (chain.ts), retained by count, bytes and age, queryable and verifiable.
// The internal kinds are in no API registry, so the API does not serve them
// as objects and the view feed never sends them to agents (VIEW_KINDS).
// Invariants:
// - record() resolves only once its record is durable in the store; if the
//   commit fails it rejects and the chain does not move (the next record
//   links to the last durable one).
// - Records are serialized: one at a time, in call order, seq consecutive.
//   Several logs on one store (hub replicas) each append with expect 'absent'
//   on the next seq: a seq taken by another makes the log take in the records
//   it missed and chain after them, so the chain stays one line.
// - Retention removes the oldest records in the same commit as the record
//   that pushes the log over a limit (or in a sweep, for age), and moves the
//   anchor to the last removed record in that commit: what remains verifies.
// - A record is bounded (record.ts): at most maxRecordBytes of JSON, no secret.
import { API_VERSION, type ApiObject } from '../api/meta.js';
import type { AuditRecord, AuditSink } from '../auth/types.js';
import type { Store, StoreOp } from '../store/store.js';
import { MeshfedError } from '../util/errors.js';
import { chainAfter, ChainWalker, GENESIS, verifyChain, type ChainAnchor, type ChainedAuditRecord, type ChainVerdict } from './chain.js';
import { boundedRecord } from './record.js';
import { SerialQueue } from '../util/serial.js';

/** The store kinds of the log; internal: never registered, served or sent to agents. */
export const AUDIT_RECORD_KIND = 'AuditRecord';
export const AUDIT_ANCHOR_KIND = 'AuditAnchor';
const ANCHOR_NAME = 'chain';

export interface AuditLogOptions {
  /** Most records kept (default 100,000). */
  maxRecords?: number;
  /** Most bytes of records kept, as JSON (default 64 MiB). */
  maxBytes?: number;
  /** Records older than this are removed (default 30 days). */
  maxAgeMs?: number;
  /** Most bytes of one record (default 16 KiB): longer diffs are cut with a marker. */
  maxRecordBytes?: number;
  /** How often records past maxAgeMs are swept when no record comes (default 10 minutes; 0: only on record). */
  sweepEveryMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

export const AUDIT_DEFAULTS = {
  maxRecords: 100_000,
  maxBytes: 64 * 1024 * 1024,
  maxAgeMs: 30 * 86_400_000,
  maxRecordBytes: 16 * 1024,
  sweepEveryMs: 10 * 60_000,
} as const;

/** Most records one query answers. */
export const MAX_QUERY_LIMIT = 1000;
export const DEFAULT_QUERY_LIMIT = 100;
/** Most records one retention commit removes (a sweep after a long pause takes several). */
const MAX_REMOVED_PER_COMMIT = 1000;
/** Times a record is chained again after another writer took its seq (hub replicas appending at once). */
const MAX_APPEND_ATTEMPTS = 20;
/** Records verified between yields to the event loop. */
const VERIFY_SLICE = 2000;

export interface AuditQuery {
  /** Epoch ms: records at or after. */
  since?: number;
  /** Epoch ms: records at or before. */
  until?: number;
  /** "user:alice", or a bare name ("alice") matching any principal kind. */
  who?: string;
  kind?: string;
  namespace?: string;
  /** One object: "namespace/name", or "name" for a cluster-scoped one (the record's `object`). */
  object?: string;
  outcome?: AuditRecord['outcome'];
  /** At most MAX_QUERY_LIMIT (default DEFAULT_QUERY_LIMIT). */
  limit?: number;
}

export interface AuditPage {
  /** Newest first. */
  items: ChainedAuditRecord[];
  /** Whether more records matched than `limit`. */
  more: boolean;
}

export interface AuditStats {
  records: number;
  bytes: number;
  anchor: ChainAnchor;
  head: ChainAnchor;
}

/** What retention needs of each retained record, oldest first. */
interface IndexEntry {
  seq: number;
  timeMs: number;
  bytes: number;
}

function recordName(seq: number): string {
  return `r${String(seq).padStart(16, '0')}`;
}

function positiveInteger(v: number | undefined, dflt: number, name: string, allowZero = false): number {
  const n = v ?? dflt;
  if (!Number.isSafeInteger(n) || n < (allowZero ? 0 : 1)) throw new MeshfedError('invalid', `audit log: ${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${String(v)}`);
  return n;
}

function isChained(v: unknown): v is ChainedAuditRecord {
  const r = v as Partial<ChainedAuditRecord> | null;
  return typeof r === 'object' && r !== null && typeof r.seq === 'number' && typeof r.hash === 'string' && typeof r.prevHash === 'string';
}

export class AuditLog implements AuditSink {
  private readonly queue = new SerialQueue();
  /** Retained records, oldest first, from `start` (entries before it are removed, compacted now and then). */
  private index: IndexEntry[] = [];
  private start = 0;
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly store: Store,
    private readonly opts: Required<Omit<AuditLogOptions, 'now'>>,
    private readonly now: () => number,
    private anchor: ChainAnchor,
    private head: ChainAnchor,
  ) {}

  /**
   * The log over the hub's store: reads the retained records and the anchor,
   * sweeps what is past its age, and sweeps again every sweepEveryMs (an
   * unref'd timer; close() stops it). The hub calls it once at start.
   */
  static async open(store: Store, options: AuditLogOptions = {}): Promise<AuditLog> {
    const opts = {
      maxRecords: positiveInteger(options.maxRecords, AUDIT_DEFAULTS.maxRecords, 'maxRecords'),
      maxBytes: positiveInteger(options.maxBytes, AUDIT_DEFAULTS.maxBytes, 'maxBytes'),
      maxAgeMs: positiveInteger(options.maxAgeMs, AUDIT_DEFAULTS.maxAgeMs, 'maxAgeMs'),
      maxRecordBytes: positiveInteger(options.maxRecordBytes, AUDIT_DEFAULTS.maxRecordBytes, 'maxRecordBytes'),
      sweepEveryMs: positiveInteger(options.sweepEveryMs, AUDIT_DEFAULTS.sweepEveryMs, 'sweepEveryMs', true),
    };
    if (opts.maxRecordBytes < 1024) throw new MeshfedError('invalid', `audit log: maxRecordBytes must be at least 1024, got ${opts.maxRecordBytes}`);
    if (opts.maxRecordBytes > opts.maxBytes) throw new MeshfedError('invalid', `audit log: maxRecordBytes (${opts.maxRecordBytes}) exceeds maxBytes (${opts.maxBytes})`);
    const anchorObj = await store.get({ kind: AUDIT_ANCHOR_KIND, name: ANCHOR_NAME });
    const anchor = isAnchor(anchorObj?.spec) ? anchorObj.spec : GENESIS;
    const records = sortedRecords(store.scan({ kind: AUDIT_RECORD_KIND }).objects);
    const last = records[records.length - 1];
    const log = new AuditLog(store, opts, options.now ?? Date.now, anchor, last === undefined ? anchor : { seq: last.seq, hash: last.hash });
    for (const r of records) log.pushIndex(r, Buffer.byteLength(JSON.stringify(r)));
    await log.sweep();
    if (opts.sweepEveryMs > 0) {
      log.timer = setInterval(() => void log.sweep().catch(() => undefined), opts.sweepEveryMs);
      log.timer.unref();
    }
    return log;
  }

  /** Appends a record (bounded, secrets scrubbed); resolves once it is durable. */
  record(r: AuditRecord): Promise<void> {
    return this.serialized(async () => {
      if (this.closed) throw new MeshfedError('unavailable', 'the audit log is closed');
      // A store known to be down (etcd without quorum) fails at once rather than at its commit deadline.
      const down = this.store.unavailable();
      if (down !== undefined) throw new MeshfedError('unavailable', `the audit log's store cannot take writes: ${down}`);
      const bounded = boundedRecord(r, this.opts.maxRecordBytes, this.now());
      for (let attempt = 0; ; attempt++) {
        const chained = chainAfter(this.head, bounded);
        const size = Buffer.byteLength(JSON.stringify(chained));
        const removed = this.dueForRemoval(1, size);
        try {
          // 'absent': hub replicas on one store each append; a seq another replica took first is a conflict,
          // and this record is chained again after the records it missed (never over them).
          await this.commit([{ type: 'put', object: recordObject(chained), expect: 'absent' }], removed);
        } catch (err) {
          if (err instanceof MeshfedError && err.code === 'conflict' && attempt < MAX_APPEND_ATTEMPTS) {
            await this.catchUp();
            continue;
          }
          throw err;
        }
        this.head = { seq: chained.seq, hash: chained.hash };
        this.pushIndex(chained, size);
        return;
      }
    });
  }

  /** Takes in the records other writers (hub replicas on the same store) appended after this log's head. */
  private async catchUp(): Promise<void> {
    for (;;) {
      const next = await this.store.get({ kind: AUDIT_RECORD_KIND, name: recordName(this.head.seq + 1) });
      if (!isChained(next?.spec)) return;
      this.head = { seq: next.spec.seq, hash: next.spec.hash };
      this.pushIndex(next.spec, Buffer.byteLength(JSON.stringify(next.spec)));
    }
  }

  /** Removes the records past their age now (record() does it too); resolves with how many were removed. */
  sweep(): Promise<number> {
    return this.serialized(async () => {
      let removedTotal = 0;
      for (;;) {
        const removed = this.dueForRemoval(0, 0);
        if (removed.length === 0 || this.closed) return removedTotal;
        await this.commit([], removed);
        removedTotal += removed.length;
      }
    });
  }

  /** Records matching the query, newest first; the newest `limit`. */
  query(q: AuditQuery = {}): AuditPage {
    const limit = Math.min(q.limit ?? DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT);
    const who = q.who;
    const kind = q.kind?.toLowerCase();
    const since = q.since === undefined ? undefined : new Date(q.since).toISOString();
    const until = q.until === undefined ? undefined : new Date(q.until).toISOString();
    const matches: ChainedAuditRecord[] = [];
    for (const o of this.store.scan({ kind: AUDIT_RECORD_KIND }).objects) {
      const r = o.spec;
      if (!isChained(r)) continue;
      if (q.outcome !== undefined && r.outcome !== q.outcome) continue;
      if (kind !== undefined && r.kind.toLowerCase() !== kind) continue;
      if (who !== undefined && r.who !== who && r.who.slice(r.who.indexOf(':') + 1) !== who) continue;
      if (q.namespace !== undefined && !r.object.startsWith(`${q.namespace}/`)) continue;
      if (q.object !== undefined && r.object !== q.object) continue;
      // Record times are ISO strings of one format (boundedRecord): they compare as strings.
      if (since !== undefined && r.time < since) continue;
      if (until !== undefined && r.time > until) continue;
      matches.push(r);
    }
    // The newest `limit` without sorting every match. The store lists a kind in insertion order, which is seq
    // order unless records were put back behind the log's back: then the limit-th largest seq (a typed-array
    // sort) is the cut.
    let newest = matches;
    let ascending = true;
    for (let i = 1; i < matches.length && ascending; i++) ascending = matches[i - 1]!.seq < matches[i]!.seq;
    if (ascending) newest = matches.slice(Math.max(0, matches.length - limit));
    else if (matches.length > limit) {
      const seqs = Float64Array.from(matches, (r) => r.seq).sort();
      const cut = seqs[seqs.length - limit]!;
      newest = matches.filter((r) => r.seq >= cut);
    }
    newest.sort((a, b) => b.seq - a.seq);
    return { items: newest.slice(0, limit).map((r) => structuredClone(r)), more: matches.length > limit };
  }

  /** Walks the whole retained chain from the anchor (yielding between slices); the first broken link by seq. */
  async verify(): Promise<ChainVerdict> {
    // Records other hub replicas appended since this log's last append are part of the chain to verify.
    await this.serialized(() => this.catchUp());
    const anchor = this.anchor;
    const head = this.head;
    // Stored objects are never changed in place: this array is a consistent view even if records arrive meanwhile.
    const records = sortedRecords(this.store.scan({ kind: AUDIT_RECORD_KIND }).objects).filter((r) => r.seq <= head.seq);
    const walker = new ChainWalker(anchor);
    for (let i = 0; i < records.length; i++) {
      if (!walker.push(records[i]!)) break;
      if (i % VERIFY_SLICE === VERIFY_SLICE - 1) await new Promise((resolve) => setImmediate(resolve));
    }
    return walker.end(head);
  }

  stats(): AuditStats {
    return { records: this.index.length - this.start, bytes: this.bytes, anchor: { ...this.anchor }, head: { ...this.head } };
  }

  /** Stops the sweep timer and waits for queued records; later records reject. */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.serialized(async () => {
      this.closed = true;
    });
  }

  // --- internals ---------------------------------------------------------------

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.run(fn);
  }

  /** The oldest retained records to remove so that `adding` more records of `addingBytes` fit every limit. */
  private dueForRemoval(adding: number, addingBytes: number): IndexEntry[] {
    const cutoff = this.now() - this.opts.maxAgeMs;
    let count = this.index.length - this.start + adding;
    let bytes = this.bytes + addingBytes;
    const out: IndexEntry[] = [];
    for (let i = this.start; i < this.index.length && out.length < MAX_REMOVED_PER_COMMIT; i++) {
      const e = this.index[i]!;
      if (count <= this.opts.maxRecords && bytes <= this.opts.maxBytes && e.timeMs >= cutoff) break;
      out.push(e);
      count--;
      bytes -= e.bytes;
    }
    return out;
  }

  /** Commits `ops` plus the removal of `removed` (oldest first) and the anchor moved past them, in one commit. */
  private async commit(ops: StoreOp[], removed: IndexEntry[]): Promise<void> {
    let anchor = this.anchor;
    if (removed.length > 0) {
      const lastRemoved = removed[removed.length - 1]!;
      const stored = await this.store.get({ kind: AUDIT_RECORD_KIND, name: recordName(lastRemoved.seq) });
      // A record missing from the store (removed behind the log's back) still moves the anchor by seq; verify then reports the first record after it.
      anchor = { seq: lastRemoved.seq, hash: isChained(stored?.spec) ? stored.spec.hash : '' };
      for (const e of removed) ops.push({ type: 'delete', ref: { kind: AUDIT_RECORD_KIND, name: recordName(e.seq) } });
      // The anchor only moves forward: another hub replica's retention may have moved it past these already.
      const storedAnchor = await this.store.get({ kind: AUDIT_ANCHOR_KIND, name: ANCHOR_NAME });
      if (isAnchor(storedAnchor?.spec) && storedAnchor.spec.seq >= anchor.seq) anchor = storedAnchor.spec;
      else ops.push({ type: 'put', object: anchorObject(anchor), expect: storedAnchor ? { resourceVersion: storedAnchor.metadata.resourceVersion! } : 'absent' });
    }
    if (ops.length === 0) return;
    await this.store.commit(ops);
    if (removed.length > 0) {
      this.anchor = anchor;
      this.start += removed.length;
      for (const e of removed) this.bytes -= e.bytes;
      if (this.start > 4096 && this.start * 2 > this.index.length) {
        this.index = this.index.slice(this.start);
        this.start = 0;
      }
    }
  }

  private pushIndex(r: ChainedAuditRecord, bytes: number): void {
    const t = Date.parse(r.time);
    this.index.push({ seq: r.seq, timeMs: Number.isFinite(t) ? t : 0, bytes });
    this.bytes += bytes;
  }
}

function isAnchor(v: unknown): v is ChainAnchor {
  const a = v as Partial<ChainAnchor> | null;
  return typeof a === 'object' && a !== null && typeof a.seq === 'number' && typeof a.hash === 'string';
}

/** The records among `objects`, sorted by seq (the objects' specs: not to be changed). */
function sortedRecords(objects: Iterable<ApiObject>): ChainedAuditRecord[] {
  const records: ChainedAuditRecord[] = [];
  for (const o of objects) if (o.kind === AUDIT_RECORD_KIND && isChained(o.spec)) records.push(o.spec);
  return records.sort((a, b) => a.seq - b.seq);
}

/**
 * Walks the chain kept in an audit store's objects offline (a store's scan, a
 * backup's audit section): from the stored anchor, with no known head (so a
 * missing tail is not seen; a missing record in between is).
 */
export function verifyStoredChain(objects: readonly ApiObject[]): ChainVerdict {
  const anchorObj = objects.find((o) => o.kind === AUDIT_ANCHOR_KIND && o.metadata.name === ANCHOR_NAME);
  return verifyChain(isAnchor(anchorObj?.spec) ? anchorObj.spec : GENESIS, sortedRecords(objects));
}

function recordObject(r: ChainedAuditRecord): ApiObject {
  return { apiVersion: API_VERSION, kind: AUDIT_RECORD_KIND, metadata: { name: recordName(r.seq) }, spec: r };
}

function anchorObject(a: ChainAnchor): ApiObject {
  return { apiVersion: API_VERSION, kind: AUDIT_ANCHOR_KIND, metadata: { name: ANCHOR_NAME }, spec: a };
}
