// The hub API's audit answers, apart from HTTP:
//   GET /api/v1alpha1/audit?since=&until=&who=&kind=&namespace=&object=&outcome=&limit=
//       object: one object, "namespace/name" or "name" (describe's recent changes)
//       records, newest first, at most `limit` (default 100, at most 1000);
//       since/until: a duration back from now ("1h", "30m", "7d") or an RFC 3339 time
//   GET /api/v1alpha1/audit/verify
//       walks the hash chain from its anchor; the first broken link by seq
// Permission: {verb: 'read', kind: 'Audit'} for both. Bad parameters are
// 'invalid' MeshfedErrors naming the parameter (400); unknown ones too.
import { DURATION, durationMs } from '../api/duration.js';
import type { AuditRecord } from '../auth/types.js';
import type { ChainVerdict } from '../audit/chain.js';
import { MAX_QUERY_LIMIT, type AuditLog, type AuditPage, type AuditQuery, type AuditStats } from '../audit/log.js';
import { MeshfedError } from '../util/errors.js';

/** What the answers need of the log. */
export type AuditReader = Pick<AuditLog, 'query' | 'verify' | 'stats'>;

const PARAMS = new Set(['since', 'until', 'who', 'kind', 'namespace', 'object', 'outcome', 'limit']);
const OUTCOMES: readonly AuditRecord['outcome'][] = ['allowed', 'denied', 'failed'];
const DURATION_RE = new RegExp(DURATION);

export interface AuditAnswer extends AuditPage {
  /** The retained log: record count, bytes, anchor and head. */
  log: AuditStats;
}

/** `meshfed audit`: the records matching the query, newest first. */
export function auditAnswer(audit: AuditReader, params: URLSearchParams, now = Date.now()): AuditAnswer {
  return { ...audit.query(parseAuditQuery(params, now)), log: audit.stats() };
}

/** `meshfed audit verify`: the chain's verdict (ok, or the first broken link by seq). */
export function verifyAnswer(audit: AuditReader): Promise<ChainVerdict> {
  return audit.verify();
}

/** The query of `GET /audit` (exported for tests and the CLI's own checks). */
export function parseAuditQuery(params: URLSearchParams, now = Date.now()): AuditQuery {
  for (const k of params.keys()) if (!PARAMS.has(k)) throw new MeshfedError('invalid', `audit: unknown parameter "${k}" (since, until, who, kind, namespace, object, outcome, limit)`);
  const q: AuditQuery = {};
  const one = (k: string): string | undefined => {
    const all = params.getAll(k);
    if (all.length > 1) throw new MeshfedError('invalid', `audit: parameter "${k}" given ${all.length} times`);
    return all[0] === '' ? undefined : all[0];
  };
  const since = one('since');
  if (since !== undefined) q.since = timeParam('since', since, now);
  const until = one('until');
  if (until !== undefined) q.until = timeParam('until', until, now);
  if (q.since !== undefined && q.until !== undefined && q.since > q.until) throw new MeshfedError('invalid', `audit: since (${since}) is after until (${until})`);
  const who = one('who');
  if (who !== undefined) q.who = who;
  const kind = one('kind');
  if (kind !== undefined) q.kind = kind;
  const namespace = one('namespace');
  if (namespace !== undefined) q.namespace = namespace;
  const object = one('object');
  if (object !== undefined) q.object = object;
  const outcome = one('outcome');
  if (outcome !== undefined) {
    if (!(OUTCOMES as readonly string[]).includes(outcome)) throw new MeshfedError('invalid', `audit: outcome must be one of ${OUTCOMES.join(', ')}, got "${outcome}"`);
    q.outcome = outcome as AuditRecord['outcome'];
  }
  const limit = one('limit');
  if (limit !== undefined) {
    const n = Number(limit);
    if (!/^[0-9]+$/.test(limit) || !Number.isSafeInteger(n) || n < 1 || n > MAX_QUERY_LIMIT)
      throw new MeshfedError('invalid', `audit: limit must be an integer from 1 to ${MAX_QUERY_LIMIT}, got "${limit}"`);
    q.limit = n;
  }
  return q;
}

/** A duration back from now ("1h") or an RFC 3339 time, in epoch ms. */
function timeParam(name: string, v: string, now: number): number {
  // Further back than 1970 is the same as from the start (and keeps the time one a Date can hold).
  if (DURATION_RE.test(v)) return Math.max(0, now - durationMs(v));
  // Date.parse takes much that is not RFC 3339 ("1"); ask for a date and a time.
  const t = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/.test(v) ? Date.parse(v) : NaN;
  if (!Number.isFinite(t)) throw new MeshfedError('invalid', `audit: ${name} must be a duration back from now (30m, 1h, 7d) or an RFC 3339 time (2026-01-02T15:04:05Z), got "${v}"`);
  return t;
}
