// The write-ahead log's record framing and the integrity analysis of a data
// directory's files, shared by start-up (wal.ts) and `meshfed store check` /
// `repair` (check.ts). Pure: buffers in, findings out, no I/O.
//
// Line format: `<16 hex chars of sha256(payload)> <payload>\n`, payload
// `{"rev":N,"ops":[{"put":object}|{"delete":key},...]}`. Every line of a group
// write but the last carries `"more":true`.
// Invariants (the rules start-up enforces):
// - A torn tail is only what a crash during the last append leaves: a final
//   line without its newline, and lines of a group whose last line is missing.
//   It was never acknowledged, so it is cut. It may only end the newest
//   non-empty segment.
// - A complete line (newline-terminated) that does not decode (checksum, JSON,
//   shape) is corruption wherever it is, the last line included: it may have
//   been acknowledged, so the store refuses to start.
// - Revisions after the snapshot's follow one another from snapshot+1; a
//   snapshot needs a log segment after it.
import { createHash } from 'node:crypto';
import type { ApiObject } from '../api/meta.js';
import { isRecord, isRevision, isStorable } from './shapes.js';

export type WalOp = { put: ApiObject } | { delete: string };

export interface WalRecord {
  rev: number;
  ops: WalOp[];
  /** Set on every line of a group write but the last: a group missing its last line was never acknowledged. */
  more?: true;
}

export function encodeLine(rev: number, ops: string[], more: boolean): string {
  const payload = `{"rev":${rev},"ops":[${ops.join(',')}]${more ? ',"more":true' : ''}}`;
  return `${checksum(payload)} ${payload}\n`;
}

function checksum(payload: string | Buffer): string {
  return createHash('sha256').update(payload).digest('hex').slice(0, 16);
}

/** The record of a line (without its newline), or why it is not one. */
function decodeLine(line: Buffer): WalRecord | string {
  const sp = line.indexOf(0x20);
  if (sp !== 16) return 'no checksum field';
  const payload = line.subarray(sp + 1);
  if (line.subarray(0, sp).toString('latin1') !== checksum(payload)) return 'checksum mismatch';
  let rec: unknown;
  try {
    rec = JSON.parse(payload.toString('utf8'));
  } catch {
    return 'payload is not JSON';
  }
  if (!isRecord(rec) || !isRevision(rec.rev) || rec.rev === 0 || !Array.isArray(rec.ops)) return 'payload is not a log record';
  for (const op of rec.ops) {
    if (!isRecord(op)) return 'payload has a malformed op';
    if ('put' in op ? !isStorable(op.put) : typeof op.delete !== 'string') return 'payload has a malformed op';
  }
  return rec as unknown as WalRecord;
}

/** The revision a line claims, if it can be read at all (damaged lines included). */
function peekRevision(line: Buffer): number | undefined {
  const m = /^[^ ]* \{"rev":(\d{1,15})[,}]/.exec(line.subarray(0, 48).toString('latin1'));
  return m ? Number(m[1]) : undefined;
}

/** A valid record and where it is. */
export interface LogRecord {
  rec: WalRecord;
  /** 1-based line number in its segment. */
  line: number;
  /** Byte offset of the line's start. */
  offset: number;
  /** Byte offset just after its newline. */
  end: number;
}

/** A line a cut would drop: where it is and the revision it claims, if readable. */
export interface DroppedLine {
  line: number;
  offset: number;
  revision: number | undefined;
}

export interface SegmentScan {
  path: string;
  bytes: number;
  /** Records of complete groups before any damage, in file order. */
  records: LogRecord[];
  /** Byte length of that valid prefix (a group boundary). */
  goodEnd: number;
  /** The first complete line that does not decode, if any. */
  damage: { line: number; offset: number; revision: number | undefined; why: string } | undefined;
  /** Every line (whole or not) from goodEnd to the end. */
  tail: DroppedLine[];
}

/** Splits a segment into lines and finds its valid prefix, its first damaged line and its tail. */
export function scanSegment(buf: Buffer, path: string): SegmentScan {
  const entries: { offset: number; end: number; rec: WalRecord | string; whole: boolean; raw: Buffer }[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    const end = nl === -1 ? buf.length : nl + 1;
    const raw = buf.subarray(pos, nl === -1 ? buf.length : nl);
    entries.push({ offset: pos, end, rec: nl === -1 ? 'incomplete line (no newline)' : decodeLine(raw), whole: nl !== -1, raw });
    pos = end;
  }
  const firstBad = entries.findIndex((e) => e.whole && typeof e.rec === 'string');
  const limit = firstBad === -1 ? entries.length : firstBad;
  let complete = 0;
  for (let i = 0; i < limit; i++) {
    const rec = entries[i]!.rec;
    if (typeof rec !== 'string' && !rec.more) complete = i + 1;
  }
  const bad = firstBad === -1 ? undefined : entries[firstBad]!;
  return {
    path,
    bytes: buf.length,
    records: entries.slice(0, complete).map((e, i) => ({ rec: e.rec as WalRecord, line: i + 1, offset: e.offset, end: e.end })),
    goodEnd: complete === 0 ? 0 : entries[complete - 1]!.end,
    damage: bad && { line: firstBad + 1, offset: bad.offset, revision: peekRevision(bad.raw), why: bad.rec as string },
    tail: entries.slice(complete).map((e, i) => ({ line: complete + i + 1, offset: e.offset, revision: typeof e.rec === 'string' ? peekRevision(e.raw) : e.rec.rev })),
  };
}

export type ProblemKind = 'corrupt-record' | 'revision-gap' | 'torn-before-newer-segment' | 'snapshot-corrupt' | 'snapshot-without-log';

/** The first thing that stops the store from starting. */
export interface StoreProblem {
  kind: ProblemKind;
  /** The damaged file. */
  file: string;
  /** Byte offset of the damaged record in `file`, if the problem is in a log segment. */
  offset: number | null;
  line: number | null;
  /** The record's revision, if it can be read. */
  revision: number | null;
  message: string;
  /** Whether `meshfed store repair` can recover the valid prefix. */
  repairable: boolean;
  /** Repair: the segment (index in the inspection's scans) to cut, and where (a group boundary). */
  cut: { segment: number; offset: number } | null;
}

export interface LogInspection {
  scans: SegmentScan[];
  problem: StoreProblem | undefined;
  /** A torn tail to cut (only when there is no problem): the newest non-empty segment's. */
  torn: { segment: number; offset: number; bytes: number; lines: number } | undefined;
  /** Valid records before the first problem, in all segments. */
  records: number;
  /** The revision replaying the valid prefix reaches. */
  revision: number;
}

export interface SnapshotInfo {
  path: string;
  rev: number;
}

/**
 * Applies the start-up rules (see the header) to a snapshot and the log
 * segments present, oldest first. `walPath` is the active segment's path,
 * named when a snapshot has no log after it.
 */
export function inspectLog(snapshot: SnapshotInfo | undefined, segments: { path: string; buf: Buffer }[], walPath: string): LogInspection {
  const scans = segments.map((s) => scanSegment(s.buf, s.path));
  const result: LogInspection = { scans, problem: undefined, torn: undefined, records: 0, revision: snapshot?.rev ?? 0 };
  if (snapshot !== undefined && segments.length === 0) {
    result.problem = {
      kind: 'snapshot-without-log',
      file: snapshot.path,
      offset: null,
      line: null,
      revision: snapshot.rev,
      message: `store snapshot ${snapshot.path} (revision ${snapshot.rev}) has no log after it: ${walPath} is missing, so commits after revision ${snapshot.rev} may be lost`,
      repairable: true,
      cut: null,
    };
    return result;
  }
  for (let i = 0; i < scans.length; i++) {
    const s = scans[i]!;
    let groupStart = 0;
    for (const r of s.records) {
      const expected = result.revision + 1;
      // Below `expected` is fine only for what the snapshot covers (a crash before the old segment was removed).
      const backwards = r.rec.rev < expected && (snapshot === undefined || r.rec.rev > snapshot.rev);
      if (r.rec.rev > expected || backwards) {
        const after = snapshot !== undefined && result.revision === snapshot.rev ? ` (snapshot ${snapshot.path} is at revision ${snapshot.rev})` : '';
        result.problem = {
          kind: 'revision-gap',
          file: s.path,
          offset: r.offset,
          line: r.line,
          revision: r.rec.rev,
          message: `store log ${s.path} line ${r.line} (byte ${r.offset}) has revision ${r.rec.rev} but ${expected} was expected${after}`,
          repairable: true,
          cut: { segment: i, offset: groupStart },
        };
        return result;
      }
      if (r.rec.rev === expected) result.revision = r.rec.rev;
      result.records++;
      if (!r.rec.more) groupStart = r.end;
    }
    if (s.damage !== undefined) {
      const d = s.damage;
      const rev = d.revision !== undefined ? `, record claims revision ${d.revision}` : '';
      result.problem = {
        kind: 'corrupt-record',
        file: s.path,
        offset: d.offset,
        line: d.line,
        revision: d.revision ?? null,
        message: `store log ${s.path} is corrupt at byte ${d.offset} (line ${d.line}${rev}, after revision ${result.revision}): ${d.why}; a complete record that does not verify may have been acknowledged, so this is not a torn write`,
        repairable: true,
        cut: { segment: i, offset: s.goodEnd },
      };
      return result;
    }
    if (s.goodEnd < s.bytes) {
      if (scans.slice(i + 1).some((later) => later.bytes > 0)) {
        result.problem = {
          kind: 'torn-before-newer-segment',
          file: s.path,
          offset: s.goodEnd,
          line: s.tail[0]?.line ?? null,
          revision: s.tail[0]?.revision ?? null,
          message: `store log ${s.path} ends in an incomplete record at byte ${s.goodEnd} but a newer segment follows (only the very last write can be torn)`,
          repairable: true,
          cut: { segment: i, offset: s.goodEnd },
        };
        return result;
      }
      result.torn = { segment: i, offset: s.goodEnd, bytes: s.bytes - s.goodEnd, lines: s.tail.length };
    }
  }
  return result;
}
