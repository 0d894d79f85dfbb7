// Authentication by client certificate: a user certificate the hub issued
// (POST auth/certificates, src/hub/api-certificates.ts), presented in the TLS
// handshake of the hub API, stands for its user with the groups recorded when
// it was issued. And the composite the hub uses: certificate first, else the
// bearer token.
//
// Invariants: a certificate counts only when (1) TLS verified it against the
// mesh's current trust bundle (the server has `ca` = bundle, requestCert and
// rejectUnauthorized false, so `socket.authorized` is the verdict), (2) its
// one URI SAN is `spiffe://<trust domain>/user/<name>` of this mesh, and (3)
// its serial has an active record (issued here, not revoked, not expired)
// naming the same user. Groups come from the record, never from the
// certificate. Like every authenticator it answers a Principal or undefined,
// never why.
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { parseSpiffeId } from '../ca/spiffe.js';
import type { Authenticator } from './authn.js';
import type { CredentialStore } from './credentials.js';
import type { Principal } from './types.js';

/** The verified peer certificate of a TLS request: serial and URI SANs; undefined on plain HTTP, without one, or unverified. */
function verifiedPeer(req: IncomingMessage): { serial: string; uris: string[]; notAfter: number } | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function' || socket.authorized !== true) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.serialNumber) return undefined;
  const uris = (cert.subjectaltname ?? '')
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
  return { serial: cert.serialNumber, uris, notAfter: Date.parse(cert.valid_to) };
}

/** User client certificates of the hub's CredentialStore. */
export class CertificateAuthenticator implements Authenticator {
  constructor(
    private readonly credentials: CredentialStore,
    private readonly trustDomain: () => string,
  ) {}

  authenticate(req: IncomingMessage): Principal | undefined {
    const peer = verifiedPeer(req);
    if (!peer || peer.uris.length !== 1 || !(peer.notAfter > Date.now())) return undefined;
    const id = parseSpiffeId(peer.uris[0]!);
    if (id?.kind !== 'user' || id.trustDomain !== this.trustDomain()) return undefined;
    const rec = this.credentials.activeCertificate(peer.serial);
    if (!rec || rec.user !== id.name) return undefined;
    return { kind: 'user', name: rec.user, groups: [...rec.groups], via: 'certificate', credentialId: rec.serial };
  }
}

/** The first authenticator that answers a Principal (e.g. certificate, then bearer token). */
export class FirstOfAuthenticator implements Authenticator {
  private readonly list: Authenticator[];

  constructor(...list: Authenticator[]) {
    this.list = list;
  }

  async authenticate(req: IncomingMessage): Promise<Principal | undefined> {
    for (const a of this.list) {
      const p = await a.authenticate(req);
      if (p) return p;
    }
    return undefined;
  }
}
