// The write-ahead log: one checksummed JSON line per transaction, appended and
// fsynced as one write per commit group, and read back (and replayed) at start.
//
//   wal.jsonl        active segment, appended to
//   wal.old.jsonl    previous segment, only while a snapshot is being written
//
// Line format: `<16 hex chars of sha256(payload)> <payload>\n`, payload
// `{"rev":N,"ops":[{"put":object}|{"delete":key},...]}`. Every line of a group
// write but the last carries `"more":true`.
// Invariants: append resolves only once the bytes are fsynced (the caller
// acknowledges nothing before); a group missing its last line was never
// acknowledged, so at start it is cut off as a torn tail together with any
// damaged line that ends the log; damage followed by a complete group and more
// log cannot be a torn write and refuses the start.
import { createHash } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiObject } from '../api/meta.js';
import { fsyncDir, readIfExists, writeAll } from './disk.js';
import { isRecord, isRevision, isStorable } from './shapes.js';

export const WAL = 'wal.jsonl';
export const WAL_OLD = 'wal.old.jsonl';

export interface WalLogger {
  warn(msg: string): void;
}

export type WalOp = { put: ApiObject } | { delete: string };

export interface WalRecord {
  rev: number;
  ops: WalOp[];
  /** Set on every line of a group write but the last: a group missing its last line was never acknowledged. */
  more?: true;
}

/** One transaction to append: its revision and its ops, each already serialized as a WalOp. */
export interface WalEntry {
  rev: number;
  ops: string[];
}

/** What start-up found in the log, torn tails already cut off. */
export interface LogContents {
  /** Old segment first, then the active one; the records of complete groups. */
  segments: { path: string; records: { rec: WalRecord; line: number }[] }[];
  /** Whether the active segment existed (else it is created, and the directory fsynced). */
  activeExisted: boolean;
  /** Byte length of the active segment after cutting its torn tail. */
  activeSize: number;
  /** Whether an old segment is on disk (a snapshot was not finished). */
  oldSegment: boolean;
}

// ---- record framing ----

function encodeLine(rev: number, ops: string[], more: boolean): string {
  const payload = `{"rev":${rev},"ops":[${ops.join(',')}]${more ? ',"more":true' : ''}}`;
  return `${checksum(payload)} ${payload}\n`;
}

function checksum(payload: string | Buffer): string {
  return createHash('sha256').update(payload).digest('hex').slice(0, 16);
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

// ---- reading at start ----

/** Reads both segments and cuts off a torn tail (durably), refusing damage that is not one. */
export async function readLog(dataDir: string, logger: WalLogger): Promise<LogContents> {
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
    logger.warn(`meshfed store: discarded ${s.buf.length - s.scan.goodEnd} bytes of incomplete log at the end of ${s.path} (an unacknowledged write interrupted by a crash)`);
  }

  return {
    segments: scans.map((s) => ({ path: s.path, records: s.scan.records })),
    activeExisted: walBuf !== undefined,
    activeSize: walBuf !== undefined ? scans[scans.length - 1]!.scan.goodEnd : 0,
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
