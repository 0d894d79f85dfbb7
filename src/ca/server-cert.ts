// The hub's own certificate for the agent channel, and fingerprints.
//
// Unlike the CSR-based certificates in issue.ts, the hub's channel certificate
// is minted by the hub for itself (it holds the mesh CA key anyway): the key is
// generated here and kept in memory only. It carries the hub's SPIFFE ID (what
// agents check) plus DNS/IP SANs for anything that checks host names.
import { createHash, X509Certificate, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { CaMaterial } from './issue.js';
import { generateKeyPair, importKeyPair, SIGN_ALG, splitPem, x509 } from './x509.js';

const CLOCK_SKEW_MS = 5_000;

export interface ServerCertificate {
  certPem: string;
  /** certPem followed by every CA above it except the root. */
  chainPem: string;
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
}

export async function issueServerCertificate(ca: CaMaterial, opts: { spiffeId: string; hosts: string[]; ttlSeconds: number; now?: Date }): Promise<ServerCertificate> {
  const kp = await generateKeyPair();
  const issuerCert = new x509.X509Certificate(ca.certPem);
  const issuerKey = await importKeyPair(ca.keyPem);
  const now = opts.now ?? new Date();
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  const notAfter = new Date(Math.min(now.getTime() + opts.ttlSeconds * 1000, issuerCert.notAfter.getTime()));
  const names: { type: 'url' | 'dns' | 'ip'; value: string }[] = [{ type: 'url', value: opts.spiffeId }];
  for (const h of new Set(opts.hosts.filter(Boolean))) names.push({ type: isIP(h) ? 'ip' : 'dns', value: h });
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: b.toString('hex'),
    subject: 'CN=meshfed hub',
    issuer: issuerCert.subjectName,
    notBefore,
    notAfter,
    publicKey: kp.keys.publicKey,
    signingKey: issuerKey.keys.privateKey,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.SubjectKeyIdentifierExtension.create(kp.keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuerCert.publicKey),
    ],
  });
  const pem = cert.toString('pem') + '\n';
  const selfSigned = issuerCert.subject === issuerCert.issuer;
  return { certPem: pem, chainPem: pem + (selfSigned ? '' : ca.certPem) + ca.chainPem, keyPem: kp.privateKeyPem, notBefore, notAfter };
}

/** SHA-256 of the certificate's DER, lowercase hex without separators (what join tokens pin). */
export function fingerprint(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

/** Fingerprints of every certificate in a PEM bundle. */
export function fingerprints(bundlePem: string): string[] {
  return splitPem(bundlePem).map(fingerprint);
}

/** URI SANs of a certificate given as PEM or DER. */
export function uriSans(cert: string | Buffer): string[] {
  const c = new X509Certificate(cert);
  return (c.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
}
