// The audit log's hash chain. Pure: canonical JSON, the hash of a record, and
// the walk that verifies a sequence of records from an anchor.
//
//   hash(n) = sha256(prevHash(n) + canonicalJson(record n without `hash`))
//   prevHash(n) = hash(n-1); seq(n) = seq(n-1) + 1
//
// The chain starts at an anchor: the genesis (seq 0, GENESIS_HASH) or, once
// retention has removed the oldest records, the seq and hash of the last
// removed one. Invariant: the hash covers every field of the record but
// `hash` itself (seq and prevHash included), with object keys sorted, so the
// same record hashes the same after any JSON round trip.
import { createHash } from 'node:crypto';
import type { AuditRecord } from '../auth/types.js';

/** A record as the log keeps it: its place in the chain and its hash. */
export interface ChainedAuditRecord extends AuditRecord {
  seq: number;
  prevHash: string;
  hash: string;
}

/** Where the retained chain starts: the record before the oldest retained one. */
export interface ChainAnchor {
  seq: number;
  hash: string;
}

/** The prevHash of the first record ever written. */
export const GENESIS_HASH = '0'.repeat(64);
export const GENESIS: ChainAnchor = { seq: 0, hash: GENESIS_HASH };

/** JSON with object keys sorted at every level; undefined members are left out (as JSON.stringify does). */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  const o = v as Record<string, unknown>;
  const parts: string[] = [];
  for (const k of Object.keys(o).sort()) {
    if (o[k] === undefined) continue;
    parts.push(`${JSON.stringify(k)}:${canonicalJson(o[k])}`);
  }
  return `{${parts.join(',')}}`;
}

/** The hash a record must carry: over prevHash and every field but `hash`. */
export function recordHash(r: Omit<ChainedAuditRecord, 'hash'> & { hash?: string }): string {
  const { hash: _ignored, ...body } = r;
  return createHash('sha256').update(r.prevHash).update(canonicalJson(body)).digest('hex');
}

/** Links a record after `prev`: its seq, prevHash and hash. */
export function chainAfter(prev: ChainAnchor, r: AuditRecord): ChainedAuditRecord {
  const body = { ...r, seq: prev.seq + 1, prevHash: prev.hash };
  return { ...body, hash: recordHash(body) };
}

export interface ChainBreak {
  /** The seq of the first record that does not verify (or that is missing). */
  seq: number;
  problem: string;
}

export interface ChainVerdict {
  ok: boolean;
  /** Records walked. */
  records: number;
  anchor: ChainAnchor;
  /** The first and last seq walked (absent when there are none). */
  first?: number;
  last?: number;
  /** The first broken link; absent when the chain verifies. */
  broken?: ChainBreak;
}

/**
 * Walks a chain one record at a time (so a long walk can yield between
 * slices), stopping at the first broken link. `end(head)`: when the head is
 * known (the last record this process wrote), a missing tail is a break too.
 */
export class ChainWalker {
  private prev: ChainAnchor;
  private count = 0;
  private first: number | undefined;
  private broken: ChainBreak | undefined;

  constructor(readonly anchor: ChainAnchor) {
    this.prev = anchor;
  }

  /** Checks the next record; false once the chain is broken (later records are not walked). */
  push(r: ChainedAuditRecord): boolean {
    if (this.broken !== undefined) return false;
    this.count++;
    this.first ??= r.seq;
    const problem = linkProblem(this.prev, r);
    if (problem !== undefined) {
      this.broken = { seq: this.prev.seq + 1, problem };
      return false;
    }
    this.prev = { seq: r.seq, hash: r.hash };
    return true;
  }

  end(head?: ChainAnchor): ChainVerdict {
    const verdict: ChainVerdict = { ok: true, records: this.count, anchor: this.anchor };
    if (this.first !== undefined) {
      verdict.first = this.first;
      verdict.last = this.prev.seq;
    }
    if (this.broken !== undefined) return { ...verdict, ok: false, broken: this.broken };
    if (head !== undefined && head.seq > this.prev.seq) {
      return {
        ...verdict,
        ok: false,
        broken: { seq: this.prev.seq + 1, problem: `records ${this.prev.seq + 1} to ${head.seq} are missing: the log ends at ${this.prev.seq}, this hub wrote up to ${head.seq}` },
      };
    }
    return verdict;
  }
}

/** Walks `records` (sorted by seq) from `anchor` in one go. */
export function verifyChain(anchor: ChainAnchor, records: Iterable<ChainedAuditRecord>, head?: ChainAnchor): ChainVerdict {
  const walker = new ChainWalker(anchor);
  for (const r of records) if (!walker.push(r)) break;
  return walker.end(head);
}

function linkProblem(prev: ChainAnchor, r: ChainedAuditRecord): string | undefined {
  if (r.seq !== prev.seq + 1) return r.seq > prev.seq + 1 ? `record ${prev.seq + 1} is missing (the next is ${r.seq})` : `seq ${String(r.seq)} follows ${prev.seq}`;
  if (r.prevHash !== prev.hash) return `prevHash does not match the hash of record ${prev.seq}`;
  if (recordHash(r) !== r.hash) return 'hash does not match the record: it was changed after it was written';
  return undefined;
}
