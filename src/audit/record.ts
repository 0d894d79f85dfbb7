// Building audit records: from what a router knows about a request, with the
// object's diff, with secrets taken out and the size bounded. Pure.
// Invariants: no secret reaches a record. Members whose names say they hold
// one (token, secret, password, private key, authorization...) are replaced
// by "[redacted]" before an object is diffed, and every string of a record is
// scrubbed again for what a secret looks like (join tokens, bearer tokens,
// PEM private keys), whoever built the record. One record is at most
// maxRecordBytes of JSON: long fields and long diffs are cut with a marker
// saying what was left out.
import { stringify } from 'yaml';
import type { ApiObject } from '../api/meta.js';
import type { AuditRecord, Permission, Principal } from '../auth/types.js';
import { lineDiff } from '../util/diff.js';

export const REDACTED = '[redacted]';

/** Longest value of one string field of a record (who, request, reason...) and of one diff line. */
export const MAX_FIELD_CHARS = 1024;

/** Whether a member's name says it holds a secret (tokenId, credentialId and ttl members do not). */
export function isSecretName(name: string): boolean {
  const n = name.toLowerCase().replace(/[-_.]/g, '');
  if (n.endsWith('id') || n.endsWith('ttl') || n.endsWith('ttlseconds') || n.endsWith('expiresat') || n.endsWith('hash')) return false;
  return /secret|password|passphrase|privatekey|keypem|authorization|bearer|cookie|credential/.test(n) || n.endsWith('token') || n === 'key' || n === 'token';
}

/** A copy of a JSON value with every member whose name holds a secret redacted, and every string scrubbed. */
export function redactSecrets(v: unknown): unknown {
  if (typeof v === 'string') return scrubSecrets(v);
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(redactSecrets);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = isSecretName(k) && x !== undefined && x !== null && x !== '' ? REDACTED : redactSecrets(x);
  return out;
}

const PEM_PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;
const JOIN_TOKEN = /\bmfj1\.([0-9a-f]{16})\.[A-Za-z0-9_-]{20,}/g;
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi;
/** A query or form parameter whose name holds a secret: `?token=...`, `secret=...`. */
const SECRET_PARAM = /([?&;]|^)([A-Za-z0-9_.-]*(?:token|secret|password|key)[A-Za-z0-9_.-]*)=([^&;#\s]*)/gi;

/** The string with what looks like a secret replaced: join-token secrets, bearer tokens, PEM private keys, secret query parameters. */
export function scrubSecrets(s: string): string {
  if (!/PRIVATE KEY|mfj1\.|bearer|basic|token|secret|password|key=/i.test(s)) return s;
  return s
    .replace(PEM_PRIVATE_KEY, '[redacted private key]')
    .replace(JOIN_TOKEN, `mfj1.$1.${REDACTED}`)
    .replace(BEARER, `$1 ${REDACTED}`)
    .replace(SECRET_PARAM, (all, sep: string, name: string) => (name.toLowerCase().endsWith('id') ? all : `${sep}${name}=${REDACTED}`));
}

/** A diff line of YAML: its marker ("+ "), indentation, an optional list dash, a member name and its value. */
const YAML_MEMBER = /^(.{2})(\s*)((?:- )?)(["']?)([^"':\s][^"':]*)\4:(?:\s+(.*))?$/;

/**
 * Diff lines scrubbed: a YAML member whose name holds a secret has its value
 * redacted (a block value `|` with the more-indented lines under it), and the
 * lines of a PEM private key (one per diff line) are redacted as a block.
 */
export function scrubLines(lines: readonly string[]): string[] {
  const out: string[] = [];
  let inKey = false;
  /** Indentation of a secret member whose block value is being skipped. */
  let blockIndent: number | undefined;
  for (const line of lines) {
    if (blockIndent !== undefined) {
      const body = line.slice(2);
      const indent = body.length - body.trimStart().length;
      if (body.trim() === '' || indent > blockIndent) continue;
      blockIndent = undefined;
    }
    if (!inKey && /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(line) && !/-----END [A-Z0-9 ]*PRIVATE KEY-----/.test(line)) {
      inKey = true;
      out.push(`${line.slice(0, 2)}[redacted private key]`);
      continue;
    }
    if (inKey) {
      if (/-----END [A-Z0-9 ]*PRIVATE KEY-----/.test(line)) inKey = false;
      continue;
    }
    const m = YAML_MEMBER.exec(line);
    if (m !== null && isSecretName(m[5]!) && m[6] !== undefined && m[6] !== '' && m[6] !== REDACTED) {
      out.push(`${m[1]}${m[2]}${m[3]}${m[4]}${m[5]}${m[4]}: ${REDACTED}`);
      if (/^[|>][-+0-9]*$/.test(m[6])) blockIndent = m[2]!.length + m[3]!.length;
      continue;
    }
    out.push(scrubSecrets(line));
  }
  return out;
}

/** Store-managed metadata, left out of diffs: it changes on every write and says nothing the record does not. */
const VOLATILE_METADATA = new Set(['resourceVersion', 'uid', 'creationTimestamp', 'generation', 'managedFields']);

function diffable(o: ApiObject | undefined): string[] {
  if (o === undefined) return [];
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o.metadata)) if (!VOLATILE_METADATA.has(k)) meta[k] = v;
  const text = stringify(redactSecrets({ ...o, metadata: meta }), { lineWidth: 0, aliasDuplicateObjects: false });
  return text.trimEnd().split('\n');
}

/** A unified-style diff of an object's YAML before and after a write (secrets redacted); empty if nothing changed. */
export function objectDiff(before: ApiObject | undefined, after: ApiObject | undefined): string[] {
  return lineDiff(diffable(before), diffable(after));
}

/** What a router knows about a request, to audit it. */
export interface AuditInput {
  /** Undefined: no valid credential ("anonymous"). */
  principal?: Principal;
  /** Remote address and port. */
  from: string;
  method: string;
  /** The request's path, with or without its query (secret parameters are scrubbed). */
  url: string;
  permission: Permission;
  outcome: AuditRecord['outcome'];
  reason?: string;
  revision?: number;
  /** For writes: the object before and after (either absent for a create or a delete). */
  before?: ApiObject;
  after?: ApiObject;
  /**
   * For hub operations that write no object (join-token, rotate-root, a new
   * credential): the parsed request body. It is recorded redacted, as added
   * lines of the diff; members that hold secrets are "[redacted]".
   */
  body?: unknown;
  time?: Date;
}

/** The record of one request. Request bodies are never recorded as they came: only the object's diff, or the body, redacted. */
export function auditRecordOf(input: AuditInput): AuditRecord {
  const p = input.permission;
  const r: AuditRecord = {
    time: (input.time ?? new Date()).toISOString(),
    who: input.principal === undefined ? 'anonymous' : `${input.principal.kind}:${input.principal.name}`,
    from: input.from,
    request: `${input.method} ${input.url}`,
    verb: p.verb,
    kind: p.kind,
    object: p.name === undefined ? '' : p.namespace !== undefined ? `${p.namespace}/${p.name}` : p.name,
    outcome: input.outcome,
  };
  if (input.principal !== undefined) r.credentialId = input.principal.credentialId;
  if (input.reason !== undefined) r.reason = input.reason;
  if (input.revision !== undefined) r.revision = input.revision;
  if (input.before !== undefined || input.after !== undefined) {
    const diff = objectDiff(input.before, input.after);
    if (diff.length > 0) r.diff = diff;
  } else if (input.body !== undefined && input.body !== null) {
    const text = stringify(redactSecrets(input.body), { lineWidth: 0, aliasDuplicateObjects: false }).trimEnd();
    r.diff = lineDiff([], text.split('\n'));
  }
  return r;
}

function capField(s: string, max = MAX_FIELD_CHARS): string {
  return s.length <= max ? s : `${s.slice(0, max)}…[${s.length - max} more characters]`;
}

/**
 * The record as the log keeps it: only AuditRecord's fields, every string
 * scrubbed and capped, and the diff cut so the record's JSON is at most
 * `maxBytes` (a last line says how many lines were left out).
 */
export function boundedRecord(r: AuditRecord, maxBytes: number, now = Date.now()): AuditRecord {
  const str = (v: unknown): string => capField(scrubSecrets(typeof v === 'string' ? v : String(v ?? '')));
  const t = Date.parse(String(r.time));
  const out: AuditRecord = {
    // One format (toISOString), so that times compare as strings; a time that is not one is the time of recording.
    time: new Date(Number.isFinite(t) ? t : now).toISOString(),
    who: str(r.who),
    from: str(r.from),
    request: str(r.request),
    verb: str(r.verb),
    kind: str(r.kind),
    object: str(r.object),
    outcome: r.outcome === 'allowed' || r.outcome === 'denied' ? r.outcome : 'failed',
  };
  if (r.credentialId !== undefined) out.credentialId = str(r.credentialId);
  if (r.reason !== undefined) out.reason = str(r.reason);
  if (typeof r.revision === 'number' && Number.isSafeInteger(r.revision)) out.revision = r.revision;
  if (Array.isArray(r.diff) && r.diff.length > 0) {
    // Room for the chain's fields (seq, prevHash, hash: about 200 bytes) and the marker line.
    let budget = maxBytes - Buffer.byteLength(JSON.stringify(out)) - 400;
    const lines = scrubLines(r.diff.map((l) => capField(String(l))));
    const kept: string[] = [];
    for (const line of lines) {
      const cost = Buffer.byteLength(JSON.stringify(line)) + 1;
      if (cost > budget) break;
      budget -= cost;
      kept.push(line);
    }
    if (kept.length < lines.length) kept.push(`… diff truncated: ${lines.length - kept.length} of ${lines.length} lines left out`);
    out.diff = kept;
  }
  return out;
}
