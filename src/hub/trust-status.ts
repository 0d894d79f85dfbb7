// `meshfed trust status`, computed from the trust state: roots, signer, the
// hub's channel certificate, what each cluster holds, tokens, and warnings for
// anything close to expiry. Pure (no I/O), unit tested.
import { X509Certificate } from 'node:crypto';
import { certInfo, fingerprint, renewalTime } from '../ca/index.js';
import type { IssuedRecord, RootPhase, RotationPhase, TrustState } from './trust-state.js';

/** Anything with less than this share of its lifetime left is a warning in `trust status`. */
export const WARN_FRACTION = 0.2;

export interface CertStatus {
  serial?: string;
  spiffeId?: string;
  notBefore: string;
  notAfter: string;
  nextRenewal?: string;
  root?: string;
  signer?: string;
  issuedAt?: string;
}

export interface TrustStatus {
  trustDomain: string;
  mode: 'generated' | 'external';
  channel: 'mtls' | 'insecure';
  intermediateCertTtl: string;
  rotation: { phase: RotationPhase; since?: string; newRoot?: string; oldRoot?: string };
  signer: { subject: string; fingerprint: string; notAfter: string };
  roots: { fingerprint: string; subject: string; notBefore: string; notAfter: string; phase: RootPhase; retiredAt?: string }[];
  hub: CertStatus & { dnsNames: string[] };
  clusters: { cluster: string; connected: boolean; intermediate?: CertStatus; agentCert?: CertStatus; revoked?: { at: string; reason: string } }[];
  /** Workload certificates, from agent reports (not yet reported). */
  workloads: unknown[];
  tokens: { id: string; cluster: string; createdAt: string; expiresAt: string; state: 'pending' | 'used' | 'expired' | 'revoked' }[];
  warnings: string[];
}

function ms(n: number): string {
  const s = Math.round(n / 1000);
  if (Math.abs(s) < 120) return `${s}s`;
  if (Math.abs(s) < 7200) return `${Math.round(s / 60)}m`;
  if (Math.abs(s) < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/** A warning when less than 20% of the lifetime is left, or it expired. */
export function expiryWarning(what: string, notBefore: string, notAfter: string, now: Date): string | undefined {
  const a = Date.parse(notBefore);
  const b = Date.parse(notAfter);
  const left = b - now.getTime();
  if (left <= 0) return `${what} expired ${ms(-left)} ago (${notAfter})`;
  if (left < (b - a) * WARN_FRACTION) return `${what} expires in ${ms(left)} (${notAfter}): less than ${WARN_FRACTION * 100}% of its lifetime left`;
  return undefined;
}

export function trustStatus(i: {
  state: TrustState;
  trustDomain: string;
  intermediateTtlMs: number;
  signerPem: string;
  server: { certPem: string };
  channel: 'mtls' | 'insecure';
  clusters: string[];
  connected: Set<string>;
  now: Date;
}): TrustStatus {
  const warnings: string[] = [];
  const signer = certInfo(i.signerPem);
  const signerFp = fingerprint(i.signerPem);
  const roots = i.state.roots.map((r) => {
    const c = certInfo(r.certPem);
    const out: TrustStatus['roots'][number] = { fingerprint: r.fingerprint, subject: c.subject, notBefore: c.notBefore, notAfter: c.notAfter, phase: r.phase };
    if (r.retiredAt) out.retiredAt = r.retiredAt;
    if (r.phase !== 'retired') {
      const w = expiryWarning(`root ${r.fingerprint.slice(0, 16)}`, c.notBefore, c.notAfter, i.now);
      if (w) warnings.push(w);
    }
    return out;
  });
  if (i.state.mode === 'external') {
    const w = expiryWarning(`mesh CA ${signer.subject}`, signer.notBefore, signer.notAfter, i.now);
    if (w) warnings.push(w);
  }
  const hubInfo = certInfo(i.server.certPem);
  const hubX = new X509Certificate(i.server.certPem);
  const dnsNames = (hubX.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('DNS:') || s.startsWith('IP Address:'))
    .map((s) => s.replace(/^(DNS|IP Address):/, ''));
  const hub = {
    notBefore: hubInfo.notBefore,
    notAfter: hubInfo.notAfter,
    nextRenewal: renewalTime(hubInfo.notBefore, hubInfo.notAfter).toISOString(),
    spiffeId: hubInfo.uris[0] ?? '',
    serial: hubInfo.serialNumber,
    dnsNames,
  };
  if (i.channel === 'mtls') {
    const w = expiryWarning('the hub channel certificate', hub.notBefore, hub.notAfter, i.now);
    if (w) warnings.push(w);
  }
  // Half-life from issuance (notBefore is backdated for clock skew), as agents count it.
  const cert = (r: IssuedRecord): CertStatus => ({ ...r, nextRenewal: renewalTime(r.issuedAt, r.notAfter).toISOString() });
  const names = [...new Set([...i.clusters])].sort();
  const clusters = names.map((name) => {
    const ct = i.state.clusters[name];
    const out: TrustStatus['clusters'][number] = { cluster: name, connected: i.connected.has(name) };
    if (ct?.revoked) out.revoked = ct.revoked;
    if (ct?.intermediate) {
      out.intermediate = cert(ct.intermediate);
      const w = expiryWarning(`cluster ${name}: intermediate CA`, ct.intermediate.notBefore, ct.intermediate.notAfter, i.now);
      if (w) warnings.push(w);
      else if (ct.intermediate.signer !== signerFp)
        warnings.push(`cluster ${name}: intermediate CA is signed by a CA that no longer signs (${ct.intermediate.signer.slice(0, 16)}); its agent re-issues it when connected`);
    }
    const newest = ct?.agentCerts.at(-1);
    if (newest) {
      out.agentCert = cert(newest);
      const w = expiryWarning(`cluster ${name}: agent certificate`, newest.notBefore, newest.notAfter, i.now);
      if (w) warnings.push(w);
    }
    return out;
  });
  const tokens = i.state.tokens.map((t) => ({
    id: t.id,
    cluster: t.cluster,
    createdAt: t.createdAt,
    expiresAt: t.expiresAt,
    state: (t.revokedAt ? 'revoked' : t.usedAt ? 'used' : Date.parse(t.expiresAt) <= i.now.getTime() ? 'expired' : 'pending') as TrustStatus['tokens'][number]['state'],
  }));
  const rotation: TrustStatus['rotation'] = i.state.rotation ? { ...i.state.rotation } : { phase: 'none' };
  return {
    trustDomain: i.trustDomain,
    mode: i.state.mode,
    channel: i.channel,
    intermediateCertTtl: ms(i.intermediateTtlMs),
    rotation,
    signer: { subject: signer.subject, fingerprint: signerFp, notAfter: signer.notAfter },
    roots,
    hub,
    clusters,
    workloads: [],
    tokens,
    warnings,
  };
}
