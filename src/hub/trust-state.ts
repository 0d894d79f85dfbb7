// The hub's trust state as stored (the spec of the HubTrust object in the
// hub's store): roots and their phases, the rotation in progress, join-token
// hashes (never secrets), and what each cluster was issued. No keys. Pure data
// and its pruning; the HubTrust (trust.ts) owns reading, changing and storing it.

/** Used and expired tokens, and expired agent certificates, are forgotten after this. */
const FORGET_AFTER_MS = 86_400_000;

export type RootPhase = 'active' | 'bundle-only' | 'retired';
export type RotationPhase = 'none' | 'new-root-in-bundle' | 'new-root-active';

export interface RootRecord {
  fingerprint: string;
  certPem: string;
  phase: RootPhase;
  createdAt: string;
  retiredAt?: string;
}

export interface IssuedRecord {
  serial: string;
  spiffeId: string;
  notBefore: string;
  notAfter: string;
  /** Fingerprint of the CA certificate that signed it. */
  signer: string;
  /** Fingerprint of the root that CA chains to. */
  root: string;
  issuedAt: string;
}

export interface TokenRecord {
  id: string;
  /** SHA-256 of the secret; the secret itself is never stored. */
  hash: string;
  cluster: string;
  createdAt: string;
  expiresAt: string;
  usedAt?: string;
  revokedAt?: string;
  revokedReason?: string;
}

export interface ClusterTrust {
  intermediate?: IssuedRecord;
  /** Channel certificates of the cluster's agent still valid (unexpired, not revoked). */
  agentCerts: IssuedRecord[];
  revoked?: { at: string; reason: string };
}

export interface TrustState {
  version: 1;
  mode: 'generated' | 'external';
  roots: RootRecord[];
  rotation?: { phase: Exclude<RotationPhase, 'none'>; since: string; newRoot: string; oldRoot: string };
  clusters: Record<string, ClusterTrust>;
  tokens: TokenRecord[];
}

/** Forgets what no longer matters: expired agent certificates, and tokens a day after they expired or were used. */
export function prune(s: TrustState, now: Date): void {
  const t = now.getTime();
  s.tokens = s.tokens.filter((tok) => {
    const end = Math.max(Date.parse(tok.expiresAt), tok.usedAt ? Date.parse(tok.usedAt) : 0);
    return t - end < FORGET_AFTER_MS;
  });
  for (const ct of Object.values(s.clusters)) ct.agentCerts = ct.agentCerts.filter((r) => Date.parse(r.notAfter) > t);
}
