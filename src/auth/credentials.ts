// API bearer tokens: created, listed, revoked and checked. Like join tokens
// (src/channel/join-token.ts) a token is `mft1.<id>.<secret>`; only a SHA-256
// of the secret is kept. Each token names a user, its groups, an optional
// scope (the verbs/kinds it may be used for) and an expiry.
//
// Invariants: the records live in a store as one object of an internal kind
// (HubCredentials/api: in no API registry, never served nor sent to agents) —
// the hub's store, shared by its replicas, or the agent's own; every change is
// durable in the store before the call returns (so before the API answers);
// changes are read-modify-write with a precondition (SharedRecord), retried on
// a conflict with another replica, and a watch makes every replica follow the
// others at once (a token revoked on one is refused by all). Secrets are
// returned once, at creation, and never stored or logged.
//
// User client certificates (src/hub/api-certificates.ts) are recorded here too,
// by serial: the user, its groups (kept here, not in the certificate, so a
// certificate carries nothing the hub does not stand behind), the expiry and
// a revocation. A certificate is honoured only while its record says active.
import { randomBytes } from 'node:crypto';
import { hashSecret, secretMatches } from '../channel/join-token.js';
import { SharedRecord } from '../store/shared-record.js';
import type { Store } from '../store/store.js';
import { MeshfedError } from '../util/errors.js';

/** The store kind of the records (one object, CREDENTIALS_NAME); internal: never registered, served or sent to agents. */
export const CREDENTIALS_KIND = 'HubCredentials';
const CREDENTIALS_NAME = 'api';
const PREFIX = 'mft1';
const ID = /^[0-9a-f]{16}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;
/** Revoked or expired records are forgotten this long after (kept to answer `token list`). */
const FORGET_AFTER_MS = 7 * 86_400_000;

export interface ApiTokenRecord {
  id: string;
  /** SHA-256 of the secret, hex. */
  hash: string;
  user: string;
  groups: string[];
  /** Verbs or `verb:kind` entries the token may be used for; absent: whatever its user may do. */
  scope?: string[];
  createdAt: string;
  expiresAt: string;
  revokedAt?: string;
}

/** A token record without its hash: what `token list` shows. */
export type ApiTokenInfo = Omit<ApiTokenRecord, 'hash'>;

/** An issued user client certificate (no key: the key never left the user). */
export interface UserCertificateRecord {
  /** Serial number, lowercase hex without leading zeros (normalizeSerial). */
  serial: string;
  user: string;
  groups: string[];
  createdAt: string;
  expiresAt: string;
  revokedAt?: string;
}

interface CredentialState {
  version: 1;
  tokens: ApiTokenRecord[];
  certificates?: UserCertificateRecord[];
}

/** A certificate serial as recorded: lowercase hex, no leading zeros (Node prints serials upper-case, some tools pad). */
export function normalizeSerial(serial: string): string {
  return serial
    .replace(/:/g, '')
    .toLowerCase()
    .replace(/^0+(?=.)/, '');
}

export interface NewToken {
  user: string;
  groups: string[];
  scope?: string[];
  ttlMs: number;
}

export const USER_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.@:]*[A-Za-z0-9])?$/;

export class CredentialStore {
  private constructor(private readonly record: SharedRecord<CredentialState>) {}

  /**
   * Opens (or, on a first start, creates) the records in `store`; `created`
   * says this call created them: of replicas starting together, exactly one
   * (the others' 'absent' precondition fails, and they read its records).
   */
  static async open(store: Store): Promise<{ store: CredentialStore; created: boolean }> {
    const record = await SharedRecord.open<CredentialState>({ store, kind: CREDENTIALS_KIND, name: CREDENTIALS_NAME });
    try {
      const created = await record.update((cur) => (cur ? { value: cur, result: false } : { value: { version: 1, tokens: [] } as CredentialState, result: true }));
      return { store: new CredentialStore(record), created };
    } catch (err) {
      record.close();
      throw err;
    }
  }

  /** Stops following the store. */
  close(): void {
    this.record.close();
  }

  private get state(): CredentialState {
    return this.record.current!;
  }

  /** A new token; the answer holds its secret (shown once). */
  async create(t: NewToken): Promise<{ token: string; info: ApiTokenInfo }> {
    if (!USER_NAME.test(t.user)) throw new MeshfedError('invalid', `user name "${t.user}": letters, digits and - _ . @ : only`);
    for (const g of t.groups) if (!USER_NAME.test(g)) throw new MeshfedError('invalid', `group "${g}": letters, digits and - _ . @ : only`);
    if (!(t.ttlMs >= 1000) || t.ttlMs > 10 * 365 * 86_400_000) throw new MeshfedError('invalid', 'ttl: between 1s and 3650d');
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const rec = await this.mutate((s, now) => {
      const r: ApiTokenRecord = {
        id,
        hash: hashSecret(secret),
        user: t.user,
        groups: [...new Set(t.groups)],
        createdAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + t.ttlMs).toISOString(),
      };
      if (t.scope && t.scope.length) r.scope = [...t.scope];
      s.tokens.push(r);
      return r;
    });
    return { token: `${PREFIX}.${id}.${secret}`, info: infoOf(rec) };
  }

  /** Records an issued user certificate (persisted before it returns, so before the certificate is handed out). */
  async recordCertificate(c: { serial: string; user: string; groups: string[]; expiresAt: Date }): Promise<UserCertificateRecord> {
    return this.mutate((s, now) => {
      const r: UserCertificateRecord = { serial: normalizeSerial(c.serial), user: c.user, groups: [...new Set(c.groups)], createdAt: now.toISOString(), expiresAt: c.expiresAt.toISOString() };
      (s.certificates ??= []).push(r);
      return r;
    });
  }

  /** Revokes a user certificate by serial (persisted before it returns); not-found for an unknown serial. */
  async revokeCertificate(serial: string): Promise<UserCertificateRecord> {
    const want = normalizeSerial(serial);
    return this.mutate((s, now) => {
      const r = (s.certificates ?? []).find((x) => x.serial === want);
      if (!r) throw new MeshfedError('not-found', `certificate ${serial} not found`);
      r.revokedAt ??= now.toISOString();
      return r;
    });
  }

  listCertificates(): UserCertificateRecord[] {
    return (this.state.certificates ?? []).map((c) => ({ ...c, groups: [...c.groups] }));
  }

  /** The record of an active (known, not revoked, not expired) user certificate, else undefined. */
  activeCertificate(serial: string, now = new Date()): UserCertificateRecord | undefined {
    const want = normalizeSerial(serial);
    const r = (this.state.certificates ?? []).find((x) => x.serial === want);
    if (!r || r.revokedAt || Date.parse(r.expiresAt) <= now.getTime()) return undefined;
    return r;
  }

  list(): ApiTokenInfo[] {
    return this.state.tokens.map(infoOf);
  }

  /** Revokes a token (persisted before it returns); not-found for an unknown id. */
  async revoke(id: string): Promise<ApiTokenInfo> {
    const rec = await this.mutate((s, now) => {
      const r = s.tokens.find((x) => x.id === id);
      if (!r) throw new MeshfedError('not-found', `token ${id} not found`);
      r.revokedAt ??= now.toISOString();
      return r;
    });
    return infoOf(rec);
  }

  /**
   * The record a presented token stands for, if it is well formed, known,
   * its secret matches, and it is neither revoked nor expired; else undefined
   * (the caller answers one uniform 401: which check failed is not told).
   */
  verify(text: string, now = new Date()): ApiTokenRecord | undefined {
    const parts = text.trim().split('.');
    if (parts.length !== 3 || parts[0] !== PREFIX || !ID.test(parts[1]!) || !SECRET.test(parts[2]!)) return undefined;
    const rec = this.state.tokens.find((t) => t.id === parts[1]);
    // The hash is compared even for an unknown id, so timing does not tell whether an id exists.
    const matches = secretMatches(parts[2]!, rec?.hash ?? '0'.repeat(64));
    if (!rec || !matches || rec.revokedAt || Date.parse(rec.expiresAt) <= now.getTime()) return undefined;
    return rec;
  }

  /** One change on a copy of the records, pruned, stored, and only then current. */
  private mutate<T>(fn: (draft: CredentialState, now: Date) => T): Promise<T> {
    return this.record.update((current, now) => {
      const draft = current!;
      const result = fn(draft, now);
      const keep = (t: { expiresAt: string; revokedAt?: string }): boolean => {
        const end = Math.max(Date.parse(t.expiresAt), t.revokedAt ? Date.parse(t.revokedAt) : 0);
        return !(t.revokedAt || Date.parse(t.expiresAt) <= now.getTime()) || now.getTime() - end < FORGET_AFTER_MS;
      };
      draft.tokens = draft.tokens.filter(keep);
      // A revoked certificate's record is kept until it expires (it must keep refusing it), then FORGET_AFTER_MS more.
      if (draft.certificates) draft.certificates = draft.certificates.filter((c) => Date.parse(c.expiresAt) > now.getTime() || now.getTime() - Date.parse(c.expiresAt) < FORGET_AFTER_MS);
      return { value: draft, result };
    });
  }
}

function infoOf(r: ApiTokenRecord): ApiTokenInfo {
  const { hash: _hash, ...info } = r;
  return info;
}

/** Does a token's scope allow this verb on this kind? (No scope: yes.) Entries: `verb`, `verb:kind`, `*:kind`, `*`. */
export function scopeAllows(scope: string[] | undefined, verb: string, kind: string): boolean {
  if (!scope) return true;
  return scope.some((e) => {
    const [v, k] = e.includes(':') ? (e.split(':', 2) as [string, string]) : [e, '*'];
    return (v === '*' || v === verb) && (k === '*' || k.toLowerCase() === kind.toLowerCase());
  });
}
