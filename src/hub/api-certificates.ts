// The hub API's user client certificates, apart from HTTP: POST
// auth/certificates {user, groups?, ttl?, csr} signs the user's CSR (the key
// never leaves the user) with the mesh CA and records the certificate (serial,
// user, groups, expiry) in the CredentialStore before answering; DELETE
// auth/certificates/{serial} revokes it (its next request answers 401).
//
// Escalation guard (as for tokens, api-tokens.ts): a caller outside the
// superuser group may get certificates only for itself and only with groups it
// holds.
import { X509Certificate } from 'node:crypto';
import { DURATION, durationMs } from '../api/duration.js';
import { SUPERUSER_GROUP } from '../auth/authorizer.js';
import { USER_NAME, type CredentialStore, type UserCertificateRecord } from '../auth/credentials.js';
import type { Principal } from '../auth/types.js';
import { SPIFFE_USER_NAME } from '../ca/index.js';
import { MeshfedError } from '../util/errors.js';
import { logger } from '../util/log.js';
import type { HubTrust } from './trust.js';

const log = logger('hub.api');
const MAX_TTL_MS = 365 * 86_400_000;

export interface CertificateAnswer {
  /** The leaf followed by the CAs above it (not the root): what the client presents. */
  certificate: string;
  serial: string;
  user: string;
  groups: string[];
  expiresAt: string;
}

/** POST auth/certificates: a signed user certificate, recorded before it is answered. */
export async function createCertificateAnswer(credentials: CredentialStore, trust: HubTrust, caller: Principal, body: Record<string, unknown>): Promise<CertificateAnswer> {
  const { user, csr } = body;
  if (typeof user !== 'string' || !user) throw new MeshfedError('invalid', 'user: the user name the certificate stands for is required');
  if (!SPIFFE_USER_NAME.test(user)) throw new MeshfedError('invalid', `user name "${user}": letters, digits and - _ . only in a certificate (it goes in a SPIFFE ID)`);
  if (body.groups !== undefined && (!Array.isArray(body.groups) || !body.groups.every((g) => typeof g === 'string' && g.length > 0))) throw new MeshfedError('invalid', 'groups: a list of strings');
  const groups = [...new Set((body.groups ?? []) as string[])];
  for (const g of groups) if (!USER_NAME.test(g)) throw new MeshfedError('invalid', `group "${g}": letters, digits and - _ . @ : only`);
  const ttl = body.ttl ?? '24h';
  if (typeof ttl !== 'string' || !new RegExp(DURATION).test(ttl)) throw new MeshfedError('invalid', `ttl: "${String(ttl)}" is not a duration (e.g. 30m, 24h, 30d)`);
  const ttlMs = durationMs(ttl);
  if (!(ttlMs >= 60_000) || ttlMs > MAX_TTL_MS) throw new MeshfedError('invalid', `ttl: ${ttl} is not between 1m and 365d`);
  if (typeof csr !== 'string' || !csr.includes('-----BEGIN CERTIFICATE REQUEST-----'))
    throw new MeshfedError('invalid', 'csr: a PEM PKCS#10 certificate request is required (meshfed auth cert create makes one)');
  if (!caller.groups.includes(SUPERUSER_GROUP)) {
    if (user !== caller.name) throw new MeshfedError('forbidden', `only group ${SUPERUSER_GROUP} creates certificates for other users (you are ${caller.name})`, { reason: 'Escalation' });
    const extra = groups.filter((g) => !caller.groups.includes(g));
    if (extra.length) throw new MeshfedError('forbidden', `you cannot grant groups you are not in: ${extra.join(', ')}`, { reason: 'Escalation' });
  }
  const issued = await trust.issueUserCertificate(csr, user, ttlMs);
  const rec = await credentials.recordCertificate({ serial: new X509Certificate(issued.certPem).serialNumber, user, groups, expiresAt: issued.notAfter });
  log.info('user certificate issued', { serial: rec.serial, user, groups, expiresAt: rec.expiresAt, by: caller.name });
  return { certificate: issued.chainPem, serial: rec.serial, user, groups: rec.groups, expiresAt: rec.expiresAt };
}

export function listCertificatesAnswer(credentials: CredentialStore): { items: (UserCertificateRecord & { state: string })[] } {
  const now = Date.now();
  return { items: credentials.listCertificates().map((c) => ({ ...c, state: c.revokedAt ? 'revoked' : Date.parse(c.expiresAt) <= now ? 'expired' : 'active' })) };
}

export async function revokeCertificateAnswer(credentials: CredentialStore, caller: Principal, serial: string): Promise<UserCertificateRecord> {
  const c = await credentials.revokeCertificate(serial);
  log.info('user certificate revoked', { serial: c.serial, user: c.user, by: caller.name });
  return c;
}
