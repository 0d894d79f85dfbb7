// Workload identities, signed by this cluster's intermediate CA. A workload
// proves who it is with an identity token bound to a namespace and service
// account (created by the operator through the agent's local API, like a
// Kubernetes service-account token); its key is generated where it runs
// (`meshfed identity`) and only a CSR reaches the agent. Token hashes, not
// tokens, are stored, persisted before the token is returned. Refusals are
// MeshfedErrors: invalid (400), unauthenticated (401), unavailable (503).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { certInfo, CsrRejected, signCsr, workloadId, type CaMaterial } from '../ca/index.js';
import { errorMessage, MeshfedError } from '../util/errors.js';
import { writeFileDurable } from '../util/files.js';

/** Where the agent's intermediate CA comes from (the hub signs it; see trust.ts). */
export interface IntermediateSource {
  current(): { ca: CaMaterial; trustDomain: string } | undefined;
  onChange(cb: () => void): void;
}

interface TokenRecord {
  id: string;
  /** sha256 of the token, hex. */
  hash: string;
  namespace: string;
  serviceAccount: string;
  created: string;
  /** ISO time after which the token is refused; unset: until revoked. */
  expires?: string;
}

export interface IssuedRecord {
  spiffeId: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  issued: string;
  tokenId: string;
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** An identity token lives at most a year. */
const MAX_TOKEN_TTL_SECONDS = 365 * 86_400;

export class WorkloadIdentity {
  private tokens: TokenRecord[] = [];
  /** Last certificate issued per SPIFFE ID (for `meshfed trust status`). */
  private readonly issued = new Map<string, IssuedRecord>();
  private readonly file: string;

  private constructor(
    dataDir: string,
    private readonly cluster: string,
    private readonly trust: IntermediateSource,
    /** The Mesh's trust domain and workload certificate lifetime, read when needed (the Mesh can change). */
    private readonly settings: () => { trustDomain: string; workloadCertTtlMs: number },
  ) {
    this.file = path.join(dataDir, 'identity-tokens.json');
  }

  static async open(dataDir: string, cluster: string, trust: IntermediateSource, settings: () => { trustDomain: string; workloadCertTtlMs: number }): Promise<WorkloadIdentity> {
    const w = new WorkloadIdentity(dataDir, cluster, trust, settings);
    try {
      w.tokens = JSON.parse(await readFile(w.file, 'utf8')) as TokenRecord[];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${w.file}: ${errorMessage(err)}`);
    }
    return w;
  }

  /** Creates a token for namespace/serviceAccount; returned once, only its hash is kept. */
  async createToken(req: { namespace?: unknown; serviceAccount?: unknown; ttlSeconds?: unknown }): Promise<{ token: string; id: string; spiffeId: string; expires?: string }> {
    for (const f of ['namespace', 'serviceAccount'] as const) {
      const v = req[f];
      if (typeof v !== 'string' || v.length > 253 || !NAME.test(v)) throw new MeshfedError('invalid', `${f}: required, a DNS label-like name (got ${JSON.stringify(v)})`);
    }
    if (req.ttlSeconds !== undefined && (typeof req.ttlSeconds !== 'number' || !(req.ttlSeconds > 0) || !(req.ttlSeconds <= MAX_TOKEN_TTL_SECONDS))) {
      // 1e20 seconds is past the last date a Date can hold: bounded, so the expiry is always a time.
      throw new MeshfedError('invalid', `ttlSeconds: a positive number of seconds, at most ${MAX_TOKEN_TTL_SECONDS} (1 year), got ${JSON.stringify(req.ttlSeconds)?.slice(0, 40)}`);
    }
    const trust = this.trust.current();
    const token = `mfwi.${randomBytes(24).toString('base64url')}`;
    const rec: TokenRecord = {
      id: randomBytes(6).toString('hex'),
      hash: sha256(token),
      namespace: req.namespace as string,
      serviceAccount: req.serviceAccount as string,
      created: new Date().toISOString(),
    };
    if (typeof req.ttlSeconds === 'number') rec.expires = new Date(Date.now() + req.ttlSeconds * 1000).toISOString();
    const next = [...this.tokens.filter((t) => !t.expires || Date.parse(t.expires) > Date.now()), rec];
    await writeFileDurable(this.file, JSON.stringify(next, null, 1));
    this.tokens = next;
    const out: { token: string; id: string; spiffeId: string; expires?: string } = { token, id: rec.id, spiffeId: this.idFor(rec, trust?.trustDomain ?? this.settings().trustDomain) };
    if (rec.expires) out.expires = rec.expires;
    return out;
  }

  /** Who a token is: its SPIFFE ID (what the CSR must ask for). */
  whoami(authorization: string | undefined): { spiffeId: string; trustDomain: string } {
    const trust = this.requireTrust();
    const rec = this.authenticate(authorization);
    return { spiffeId: this.idFor(rec, trust.trustDomain), trustDomain: trust.trustDomain };
  }

  /** Signs a workload CSR for the token's identity with this cluster's intermediate. */
  async sign(authorization: string | undefined, csrPem: unknown): Promise<{ spiffeId: string; certChainPem: string; caPem: string; notBefore: string; notAfter: string; issuerFingerprint: string }> {
    const trust = this.requireTrust();
    const rec = this.authenticate(authorization);
    if (typeof csrPem !== 'string') throw new MeshfedError('invalid', 'csr: required, a PEM certificate request');
    const spiffeId = this.idFor(rec, trust.trustDomain);
    try {
      const issued = await signCsr(trust.ca, { csrPem, profile: 'workload', expectedId: spiffeId, ttlSeconds: this.settings().workloadCertTtlMs / 1000 });
      const info = certInfo(issued.certPem);
      this.issued.set(spiffeId, { spiffeId, serialNumber: info.serialNumber, notBefore: info.notBefore, notAfter: info.notAfter, issued: new Date().toISOString(), tokenId: rec.id });
      return {
        spiffeId,
        certChainPem: issued.chainPem,
        caPem: trust.ca.rootsPem,
        notBefore: issued.notBefore.toISOString(),
        notAfter: issued.notAfter.toISOString(),
        issuerFingerprint: certInfo(trust.ca.certPem).fingerprint256,
      };
    } catch (err) {
      if (err instanceof CsrRejected) throw new MeshfedError('invalid', err.message);
      throw err;
    }
  }

  /** The trust bundle and the current issuer: a workload re-issues when the issuer changes, and reloads the bundle. */
  bundle(): { caPem: string; issuerFingerprint: string; trustDomain: string } {
    const trust = this.requireTrust();
    return { caPem: trust.ca.rootsPem, issuerFingerprint: certInfo(trust.ca.certPem).fingerprint256, trustDomain: trust.trustDomain };
  }

  issuedCertificates(): IssuedRecord[] {
    return [...this.issued.values()].sort((a, b) => (a.spiffeId < b.spiffeId ? -1 : 1));
  }

  tokenList(): Omit<TokenRecord, 'hash'>[] {
    return this.tokens.map(({ hash: _hash, ...t }) => t);
  }

  private idFor(rec: TokenRecord, trustDomain: string): string {
    return workloadId(trustDomain, this.cluster, rec.namespace, rec.serviceAccount);
  }

  private requireTrust(): { ca: CaMaterial; trustDomain: string } {
    const t = this.trust.current();
    if (!t) throw new MeshfedError('unavailable', `cluster ${this.cluster} has no intermediate CA yet (the hub has not signed it); retry`);
    return t;
  }

  private authenticate(authorization: string | undefined): TokenRecord {
    const m = /^Bearer (\S+)$/.exec(authorization ?? '');
    if (!m) throw new MeshfedError('unauthenticated', 'identity token required: Authorization: Bearer <token>');
    const h = Buffer.from(sha256(m[1]!), 'hex');
    const rec = this.tokens.find((t) => timingSafeEqual(Buffer.from(t.hash, 'hex'), h));
    if (!rec) throw new MeshfedError('unauthenticated', 'identity token not recognised by this agent');
    if (rec.expires && Date.parse(rec.expires) <= Date.now()) throw new MeshfedError('unauthenticated', `identity token ${rec.id} expired at ${rec.expires}`);
    return rec;
  }
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
