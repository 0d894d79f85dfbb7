// The write-ahead log: one checksummed JSON line per transaction, appended and
// fsynced as one write per commit group, and read back (and replayed) at start.
//
//   wal.jsonl        active segment, appended to
//   wal.old.jsonl    previous segment, only while a snapshot is being written
//
// Framing and the integrity rules are in framing.ts (pure); this file does the
// I/O: reading both segments at start, cutting a torn tail, appending.
// Invariants: append resolves only once the bytes are fsynced (the caller
// acknowledges nothing before); at start only a torn tail (framing.ts) is cut,
// durably and with a warning; anything else damaged refuses the start with a
// StoreCorrupt error naming the file and byte offset.
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { MeshfedError } from '../util/errors.js';
import { fsyncDir, readIfExists, writeAll } from './disk.js';
import { encodeLine, inspectLog, type LogRecord, type SnapshotInfo, type StoreProblem, type WalOp } from './framing.js';

export type { WalOp, WalRecord } from './framing.js';

export const WAL = 'wal.jsonl';
export const WAL_OLD = 'wal.old.jsonl';

export interface WalLogger {
  warn(msg: string): void;
}

/** One transaction to append: its revision and its ops, each already serialized as a WalOp. */
export interface WalEntry {
  rev: number;
  ops: string[];
}

/** What start-up found in the log, torn tails already cut off. */
export interface LogContents {
  /** Old segment first, then the active one; the records of complete groups. */
  segments: { path: string; records: LogRecord[] }[];
  /** Whether the active segment existed (else it is created, and the directory fsynced). */
  activeExisted: boolean;
  /** Byte length of the active segment after cutting its torn tail. */
  activeSize: number;
  /** Whether an old segment is on disk (a snapshot was not finished). */
  oldSegment: boolean;
}

// ---- reading at start ----

/** The error that refuses a start (and that `meshfed store check` reports): code internal, reason StoreCorrupt, the problem as details. */
export function storeCorruptError(problem: StoreProblem): MeshfedError {
  const hint = problem.repairable ? '; run `meshfed store check` to see the damage and `meshfed store repair` to keep the valid prefix' : '';
  return new MeshfedError('internal', `${problem.message}; refusing to start${hint}`, { reason: 'StoreCorrupt', details: problem });
}

/** Reads both segments, refuses damage (framing.ts rules) and cuts a torn tail off durably. */
export async function readLog(dataDir: string, logger: WalLogger, snapshot: SnapshotInfo | undefined): Promise<LogContents> {
  const oldPath = join(dataDir, WAL_OLD);
  const walPath = join(dataDir, WAL);
  const oldBuf = await readIfExists(oldPath);
  const walBuf = await readIfExists(walPath);
  const segments: { path: string; buf: Buffer }[] = [];
  if (oldBuf !== undefined) segments.push({ path: oldPath, buf: oldBuf });
  if (walBuf !== undefined) segments.push({ path: walPath, buf: walBuf });
  const found = inspectLog(snapshot, segments, walPath);
  if (found.problem !== undefined) throw storeCorruptError(found.problem);

  if (found.torn !== undefined) {
    const t = found.torn;
    const s = found.scans[t.segment]!;
    const h = await open(s.path, 'r+');
    try {
      await h.truncate(t.offset);
      await h.sync();
    } finally {
      await h.close();
    }
    logger.warn(
      `meshfed store: discarded a torn write at the end of ${s.path}: ${t.bytes} bytes from byte ${t.offset} (${t.lines} incomplete line${t.lines === 1 ? '' : 's'}); ` +
        'the write was never completed, so it was never acknowledged',
    );
  }

  return {
    segments: found.scans.map((s) => ({ path: s.path, records: s.records })),
    activeExisted: walBuf !== undefined,
    activeSize: walBuf !== undefined ? found.scans[found.scans.length - 1]!.goodEnd : 0,
    oldSegment: oldBuf !== undefined,
  };
}

/**
 * Replays every record after `fromRev` (the snapshot's revision) through
 * `applyOp`, checking that revisions follow one another. Returns the revision
 * reached and how many records the log holds in all (replayed or not).
 */
export function replayLog(log: LogContents, fromRev: number, applyOp: (op: WalOp) => void): { rev: number; records: number } {
  let rev = fromRev;
  let records = 0;
  for (const s of log.segments) {
    for (const { rec, line } of s.records) {
      records++;
      if (rec.rev <= rev) continue; // already in the snapshot (crash before the old log was removed)
      if (rec.rev !== rev + 1) {
        throw new Error(`store log ${s.path} line ${line} has revision ${rec.rev} but ${rev + 1} was expected; refusing to start`);
      }
      for (const op of rec.ops) applyOp(op);
      rev = rec.rev;
    }
  }
  return { rev, records };
}

// ---- appending ----

/** The open log: the active segment's handle and size, and whether an old segment exists. */
export class WriteAheadLog {
  private constructor(
    private readonly dataDir: string,
    private active: FileHandle,
    /** Bytes of the active segment that are acknowledged (written and fsynced). */
    private acknowledged: number,
    private oldSegment: boolean,
  ) {}

  /** Opens the active segment for appending, after readLog. */
  static async open(dataDir: string, log: LogContents): Promise<WriteAheadLog> {
    const handle = await open(join(dataDir, WAL), 'a', 0o600);
    const wal = new WriteAheadLog(dataDir, handle, log.activeSize, log.oldSegment);
    if (!log.activeExisted) await fsyncDir(dataDir);
    return wal;
  }

  get path(): string {
    return join(this.dataDir, WAL);
  }

  /** The active segment's handle (tests reach in to inject I/O failures). */
  get handle(): FileHandle {
    return this.active;
  }

  /** Acknowledged size of the active segment in bytes. */
  get size(): number {
    return this.acknowledged;
  }

  get hasOldSegment(): boolean {
    return this.oldSegment;
  }

  /**
   * Appends the entries as one write and one fsync; resolves only once they
   * are durable. If it throws, part of the write may be in the file: call
   * undoPartialAppend before appending again.
   */
  async append(entries: WalEntry[]): Promise<void> {
    const text = entries.map((e, i) => encodeLine(e.rev, e.ops, i < entries.length - 1)).join('');
    const buf = Buffer.from(text, 'utf8');
    await writeAll(this.active, buf);
    await this.active.datasync();
    this.acknowledged += buf.length;
  }

  /** Cuts the active segment back to its acknowledged size, durably. */
  async undoPartialAppend(): Promise<void> {
    await this.active.truncate(this.acknowledged);
    await this.active.datasync();
  }

  /**
   * First step of a rotation (no append in flight): renames the active segment
   * to the old one. If it throws, nothing changed.
   */
  async moveAside(): Promise<void> {
    await rename(this.path, join(this.dataDir, WAL_OLD));
  }

  /**
   * Second step: creates a fresh active segment and appends there from now on.
   * If it throws, this log no longer knows which file to append to (recovery
   * still reads both segments correctly).
   */
  async startFreshSegment(): Promise<void> {
    let fresh: FileHandle | undefined;
    try {
      fresh = await open(this.path, 'ax', 0o600);
      await fsyncDir(this.dataDir);
    } catch (err) {
      await fresh?.close().catch(() => undefined);
      throw err;
    }
    const prev = this.active;
    this.active = fresh;
    this.acknowledged = 0;
    this.oldSegment = true;
    await prev.close().catch(() => undefined);
  }

  /** Deletes the old segment once a snapshot covers it. */
  async removeOldSegment(): Promise<void> {
    await rm(join(this.dataDir, WAL_OLD), { force: true });
    this.oldSegment = false;
  }

  async close(): Promise<void> {
    await this.active.close();
  }
}
