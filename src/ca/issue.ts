// Issuing certificates: the mesh's root (or a user-supplied intermediate used as
// the mesh CA), per-cluster intermediates, workload and agent certificates, each
// from a CSR whose key was generated where it is used. Every CSR is checked
// against what the requester may have (its cluster, its trust domain, CA or
// not) and refused with a message naming what is wrong.
import { X509Certificate, randomBytes } from 'node:crypto';
import { generateKeyPair, importKeyPair, SIGN_ALG, splitPem, x509, type KeyPair } from './x509.js';
import { parseSpiffeId } from './spiffe.js';
import { MeshfedError } from '../util/errors.js';

/** A CA that can sign: its certificate, key, the chain above it (not the root) and the roots that anchor it. */
export interface CaMaterial {
  certPem: string;
  keyPem: string;
  /** Certificates between certPem and the root, excluding the root ('' when certPem is the root or signed by it). */
  chainPem: string;
  /** Trust anchors (PEM bundle). */
  rootsPem: string;
}

/** A CSR meshfed will not sign; the message says why. */
export class CsrRejected extends MeshfedError {
  constructor(message: string) {
    super('invalid', message, { reason: 'CsrRejected' });
  }
}

/** user: a hub API client certificate (client-auth only; its groups are kept by the hub, not in the certificate). */
export type Profile = 'intermediate' | 'workload' | 'agent' | 'user';

const CLOCK_SKEW_MS = 5_000;
const OID_SAN = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';

function serial(): string {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // positive
  return b.toString('hex');
}

export async function createRootCa(opts: { trustDomain: string; validityDays: number; now?: Date }): Promise<CaMaterial> {
  const kp = await generateKeyPair();
  const now = opts.now ?? new Date();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `O=${opts.trustDomain}, CN=meshfed root ${now.toISOString().slice(0, 19)}`,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + opts.validityDays * 86_400_000),
    keys: kp.keys,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(kp.keys.publicKey),
    ],
  });
  const pem = cert.toString('pem') + '\n';
  return { certPem: pem, keyPem: kp.privateKeyPem, chainPem: '', rootsPem: pem };
}

/**
 * Checks user-supplied CA material (an intermediate signed by the user's root,
 * whose key never touches meshfed): the certificate is a CA, the key is its
 * key, and the chain leads to one of the roots.
 */
export async function loadCa(m: { certChainPem: string; keyPem: string; rootsPem: string }): Promise<CaMaterial> {
  const certs = splitPem(m.certChainPem);
  if (certs.length === 0) throw new Error('CA certificate: no PEM certificate found');
  const roots = splitPem(m.rootsPem);
  if (roots.length === 0) throw new Error('CA roots: no PEM certificate found');
  const cert = new X509Certificate(certs[0]!);
  if (!cert.ca) throw new Error(`CA certificate ${cert.subject.replace(/\n/g, ', ')} is not a CA (basicConstraints CA:FALSE)`);
  const kp = await importKeyPair(m.keyPem);
  const { createPublicKey } = await import('node:crypto');
  const pub = createPublicKey(kp.privateKeyPem);
  if (!cert.publicKey.equals(pub)) throw new Error('CA key does not match the CA certificate');
  const chain = certs.slice(1).filter((c) => !roots.some((r) => new X509Certificate(r).fingerprint256 === new X509Certificate(c).fingerprint256));
  verifyChain(certs[0]!, chain, roots);
  return { certPem: certs[0]!, keyPem: kp.privateKeyPem, chainPem: chain.join(''), rootsPem: roots.join('') };
}

export interface CsrSubject {
  commonName?: string;
  uris: string[];
  ca: boolean;
}

export async function createCsr(key: KeyPair, subject: CsrSubject): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject.commonName ? `CN=${subject.commonName}` : undefined,
    keys: key.keys,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.SubjectAlternativeNameExtension(subject.uris.map((u) => ({ type: 'url' as const, value: u }))),
      new x509.BasicConstraintsExtension(subject.ca, subject.ca ? 0 : undefined, true),
    ],
  });
  return csr.toString('pem') + '\n';
}

export interface SignRequest {
  csrPem: string;
  profile: Profile;
  /** The only SPIFFE ID the requester may have (it was authenticated before). */
  expectedId: string;
  ttlSeconds: number;
  now?: Date;
}

export interface Issued {
  /** The new certificate alone. */
  certPem: string;
  /** The certificate followed by every CA above it except the root: what a TLS peer presents. */
  chainPem: string;
  notBefore: Date;
  notAfter: Date;
}

/** What the CSR asks for, or a CsrRejected naming why it cannot be read. */
async function readCsr(csrPem: string): Promise<{ csr: x509.Pkcs10CertificateRequest; uris: string[]; other: string[]; ca: boolean }> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (e) {
    throw new CsrRejected(`CSR is not a PEM PKCS#10 certificate request (${(e as Error).message})`);
  }
  if (!(await csr.verify())) throw new CsrRejected('CSR signature does not verify: the request was not signed by its own key');
  const alg = csr.publicKey.algorithm as EcKeyAlgorithm;
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') throw new CsrRejected(`CSR key is ${alg.name} ${alg.namedCurve ?? ''}: meshfed issues for ECDSA P-256 keys only`);
  const ext = (oid: string) => csr.extensions.find((e) => e.type === oid);
  const san = ext(OID_SAN);
  const names = san ? new x509.SubjectAlternativeNameExtension(san.rawData).names.toJSON() : [];
  const uris = names.filter((n) => n.type === 'url').map((n) => n.value);
  const other = names.filter((n) => n.type !== 'url').map((n) => `${n.type}:${n.value}`);
  const bcExt = ext(OID_BASIC_CONSTRAINTS);
  const bc = bcExt ? new x509.BasicConstraintsExtension(bcExt.rawData) : undefined;
  return { csr, uris, other, ca: bc?.ca === true };
}

/** Signs a CSR with `ca` after checking it asks for exactly what `req` allows. */
export async function signCsr(ca: CaMaterial, req: SignRequest): Promise<Issued> {
  const { csr, uris, other, ca: wantsCa } = await readCsr(req.csrPem);
  const expected = parseSpiffeId(req.expectedId);
  if (!expected) throw new Error(`internal: expected ID ${req.expectedId} is not a meshfed SPIFFE ID`);
  if (uris.length !== 1) throw new CsrRejected(`CSR must carry exactly one URI SAN (${req.expectedId}); it has ${uris.length}${uris.length ? `: ${uris.join(', ')}` : ''}`);
  if (other.length > 0) throw new CsrRejected(`CSR carries SANs meshfed does not issue: ${other.join(', ')}`);
  const asked = parseSpiffeId(uris[0]!);
  if (uris[0] !== req.expectedId) {
    if (!asked) throw new CsrRejected(`CSR URI SAN ${uris[0]} is not a SPIFFE ID of this mesh; expected ${req.expectedId}`);
    if (asked.trustDomain !== expected.trustDomain) throw new CsrRejected(`CSR URI SAN ${uris[0]}: trust domain ${asked.trustDomain} is not the mesh's (${expected.trustDomain})`);
    if ('cluster' in asked && 'cluster' in expected && asked.cluster !== expected.cluster) {
      throw new CsrRejected(`CSR URI SAN ${uris[0]} names cluster ${asked.cluster}; the requester is cluster ${expected.cluster}`);
    }
    throw new CsrRejected(`CSR URI SAN ${uris[0]} is not the requester's identity ${req.expectedId}`);
  }
  if (req.profile === 'intermediate' && !wantsCa) throw new CsrRejected('CSR for a cluster intermediate CA must request basicConstraints CA:TRUE');
  if (req.profile !== 'intermediate' && wantsCa) throw new CsrRejected(`CSR for a ${req.profile} certificate requests CA:TRUE; only cluster intermediates may be CAs`);

  const issuerCert = new x509.X509Certificate(ca.certPem);
  const issuerKey = await importKeyPair(ca.keyPem);
  const now = req.now ?? new Date();
  // Backdated for clock skew, but by at most a tenth of the lifetime so that
  // half-life renewal of a seconds-long certificate stays after issuance.
  const notBefore = new Date(now.getTime() - Math.min(CLOCK_SKEW_MS, req.ttlSeconds * 100));
  // Never outlive the issuer: a chain is only as valid as its shortest link.
  const notAfter = new Date(Math.min(now.getTime() + req.ttlSeconds * 1000, issuerCert.notAfter.getTime()));
  const td = expected.trustDomain;
  const isCa = req.profile === 'intermediate';
  const isUser = req.profile === 'user';
  if (isUser !== (expected.kind === 'user')) throw new Error(`internal: profile ${req.profile} with expected ID ${req.expectedId}`);
  const ku = isCa
    ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature
    : isUser
      ? x509.KeyUsageFlags.digitalSignature
      : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(isCa, isCa ? 0 : undefined, true),
    new x509.KeyUsagesExtension(ku, true),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: req.expectedId }], !isCa),
    await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuerCert.publicKey),
  ];
  // A user certificate authenticates a person to the hub API: client auth only, never a server.
  if (isUser) extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]));
  else if (!isCa) extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]));
  const cn = req.profile === 'intermediate' && 'cluster' in expected ? `meshfed intermediate ${expected.cluster}` : expected.kind === 'user' ? `meshfed user ${expected.name}` : undefined;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: cn ? `O=${td}, CN=${cn}` : `O=${td}`,
    issuer: issuerCert.subjectName,
    notBefore,
    notAfter,
    publicKey: csr.publicKey,
    signingKey: issuerKey.keys.privateKey,
    signingAlgorithm: SIGN_ALG,
    extensions,
  });
  const pem = cert.toString('pem') + '\n';
  const selfSigned = issuerCert.subject === issuerCert.issuer;
  return { certPem: pem, chainPem: pem + (selfSigned ? '' : ca.certPem) + ca.chainPem, notBefore, notAfter };
}

/**
 * Verifies leaf -> intermediates -> one of roots by signatures and validity
 * (the checks a TLS peer makes, short of name matching). Throws naming the
 * first broken link.
 */
export function verifyChain(leafPem: string, intermediatesPem: string[], rootsPem: string[], now = new Date()): void {
  const pool = intermediatesPem.map((p) => new X509Certificate(p));
  const roots = rootsPem.map((p) => new X509Certificate(p));
  let cur = new X509Certificate(leafPem);
  for (let depth = 0; depth < 10; depth++) {
    const from = new Date(cur.validFrom);
    const to = new Date(cur.validTo);
    if (now < from || now > to) throw new Error(`certificate ${cur.subject.replace(/\n/g, ', ')} is not valid now (valid ${from.toISOString()} to ${to.toISOString()})`);
    const root = roots.find((r) => cur.checkIssued(r) && cur.verify(r.publicKey));
    if (root) return;
    const next = pool.find((c) => cur.checkIssued(c) && cur.verify(c.publicKey) && c.ca);
    if (!next) throw new Error(`certificate ${cur.subject.replace(/\n/g, ', ')} (issuer ${cur.issuer.replace(/\n/g, ', ')}) does not chain to a trusted root`);
    cur = next;
  }
  throw new Error('certificate chain is too long');
}

export interface CertInfo {
  subject: string;
  issuer: string;
  uris: string[];
  notBefore: string;
  notAfter: string;
  serialNumber: string;
  fingerprint256: string;
  ca: boolean;
}

export function certInfo(pem: string): CertInfo {
  const c = new X509Certificate(pem);
  const uris = (c.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
  return {
    subject: c.subject.replace(/\n/g, ', '),
    issuer: c.issuer.replace(/\n/g, ', '),
    uris,
    notBefore: new Date(c.validFrom).toISOString(),
    notAfter: new Date(c.validTo).toISOString(),
    serialNumber: c.serialNumber,
    fingerprint256: c.fingerprint256,
    ca: c.ca,
  };
}

/** When to renew: at `fraction` of the lifetime (default half), well before expiry. */
export function renewalTime(notBefore: Date | string, notAfter: Date | string, fraction = 0.5): Date {
  const a = new Date(notBefore).getTime();
  const b = new Date(notAfter).getTime();
  return new Date(a + (b - a) * fraction);
}

/** De-duplicated PEM bundle (order kept). */
export function bundle(...pems: string[]): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const c of pems.flatMap(splitPem)) {
    const fp = new X509Certificate(c).fingerprint256;
    if (seen.has(fp)) continue;
    seen.add(fp);
    out.push(c);
  }
  return out.join('');
}
