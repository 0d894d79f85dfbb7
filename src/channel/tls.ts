// TLS on the agent channel: the hub's reloadable server credentials, the
// agent's credentials and its check of the hub's identity, and the first
// contact of a joining agent (finding the pinned root before trusting anything).
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { connect, type DetailedPeerCertificate, type SecureContextOptions } from 'node:tls';
import { fingerprint, parseSpiffeId, uriSans, verifyChain } from '../ca/index.js';
import { HUB_TLS_NAME } from './protocol.js';
import { MeshfedError } from '../util/errors.js';

/**
 * Server credentials whose certificate and trusted roots change without a
 * restart (root rotation, renewal): grpc-js applies every update to new
 * handshakes. Client certificates are requested but not required, so a joining
 * agent (no certificate yet) can call Join; Connect checks the certificate
 * itself and names what is wrong, instead of a bare handshake failure.
 */
export class ReloadableServerCredentials extends grpc.ServerCredentials {
  constructor(ctx: SecureContextOptions) {
    super({ requestCert: true, rejectUnauthorized: false }, ctx);
  }
  update(ctx: SecureContextOptions): void {
    this.updateSecureContextOptions(ctx);
  }
  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/**
 * The agent's check of the hub's certificate, after the chain verified against
 * its bundle: it must carry a hub SPIFFE ID (not a host name: agents dial
 * addresses that may not be in the certificate), and be issued by the mesh CA
 * itself: a cluster's intermediate CA chains to the same root, so without this
 * an agent holding one could pose as the hub to the others.
 */
export function checkHubIdentity(cert: DetailedPeerCertificate): Error | undefined {
  const ids = (cert.subjectaltname ?? '')
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
  const hub = ids.map(parseSpiffeId).find((id) => id?.kind === 'hub');
  if (!hub) return new Error(`the hub's certificate carries no hub SPIFFE ID (spiffe://<trust domain>/meshfed/hub); its URI SANs: ${ids.join(', ') || 'none'}`);
  const issuer = cert.issuerCertificate;
  if (issuer?.raw && issuer !== cert) {
    const byIntermediate = uriSans(issuer.raw)
      .map(parseSpiffeId)
      .find((id) => id?.kind === 'intermediate');
    if (byIntermediate)
      return new Error(
        `the hub's certificate was issued by cluster ${byIntermediate.kind === 'intermediate' ? byIntermediate.cluster : '?'}'s intermediate CA, not by the mesh CA: refusing an impostor`,
      );
  }
  return undefined;
}

/** Credentials for an agent: the bundle as trust anchors, and its client certificate once it has one. */
export function agentCredentials(rootsPem: string, client?: { keyPem: string; certChainPem: string }): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(rootsPem), client ? Buffer.from(client.keyPem) : null, client ? Buffer.from(client.certChainPem) : null, {
    checkServerIdentity: (_host, cert) => checkHubIdentity(cert as DetailedPeerCertificate),
  });
}

/** A join that failed: `unavailable` when a retry may succeed (the hub unreachable), `invalid` when it cannot with this token. */
export class JoinError extends MeshfedError {
  constructor(
    message: string,
    /** Permanent: retrying with the same token cannot succeed. */
    readonly permanent: boolean,
  ) {
    super(permanent ? 'invalid' : 'unavailable', message, { reason: 'JoinFailed' });
  }
}

function splitAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  if (!m) throw new JoinError(`hub address "${address}" is not HOST:PORT`, true);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

/**
 * First contact: reads the certificate chain the hub presents (without
 * trusting it yet) and keeps the root whose fingerprint the join token pins,
 * after checking that the hub's certificate chains to it and names the hub.
 * Returns that root and the trust domain from the hub's SPIFFE ID.
 */
export async function probeHubRoot(address: string, pins: string[], timeoutMs = 10_000): Promise<{ rootPem: string; trustDomain: string }> {
  const { host, port } = splitAddress(address);
  const chain = await new Promise<DetailedPeerCertificate>((resolve, reject) => {
    const socket = connect({ host, port, servername: HUB_TLS_NAME, ALPNProtocols: ['h2'], rejectUnauthorized: false });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new JoinError(`the hub at ${address} did not complete a TLS handshake within ${timeoutMs} ms`, false));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const cert = socket.getPeerCertificate(true);
      socket.destroy();
      resolve(cert);
    });
    socket.once('error', (err: Error & { code?: string }) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED' || err.code === 'EHOSTUNREACH' || err.code === 'ENOTFOUND' || err.code === 'ETIMEDOUT') {
        reject(new JoinError(`cannot reach the hub at ${address} (${err.code})`, false));
      } else {
        reject(
          new JoinError(
            `the hub at ${address} did not complete a TLS handshake (${err.code ?? err.message}): is it running with --insecure-channel? Then start the agent with --insecure-channel too`,
            false,
          ),
        );
      }
    });
  });
  if (!chain.raw) throw new JoinError(`the hub at ${address} presented no certificate`, true);
  const certs: X509Certificate[] = [];
  const seen = new Set<string>();
  for (let c: DetailedPeerCertificate | undefined = chain; c?.raw && certs.length < 10; c = c.issuerCertificate) {
    const x = new X509Certificate(c.raw);
    if (seen.has(x.fingerprint256)) break;
    seen.add(x.fingerprint256);
    certs.push(x);
  }
  const pinned = certs.find((c) => pins.includes(fingerprint(c.toString())));
  if (!pinned) {
    throw new JoinError(
      `the hub at ${address} presented no certificate of the CA pinned in the join token (sha256 ${pins.map((p) => p.slice(0, 16) + '…').join(', ')}): wrong hub address, or its root was rotated after the token was made (create a new token)`,
      true,
    );
  }
  try {
    verifyChain(
      certs[0]!.toString(),
      certs.slice(1).map((c) => c.toString()),
      [pinned.toString()],
    );
  } catch (err) {
    throw new JoinError(`the hub's certificate does not chain to the CA pinned in the join token: ${(err as Error).message}`, true);
  }
  const identity = checkHubIdentity(chain);
  if (identity) throw new JoinError(identity.message, true);
  const hub = uriSans(certs[0]!.raw)
    .map(parseSpiffeId)
    .find((id) => id?.kind === 'hub')!;
  return { rootPem: pinned.toString(), trustDomain: hub.trustDomain };
}
