// mTLS in xDS (gRFC A29): client Clusters carry an UpstreamTlsContext that
// verifies the destination's SPIFFE IDs; server listeners carry a
// DownstreamTlsContext that requires a client certificate. Certificates come
// from the proxy's certificate provider instance CERT_PROVIDER (gRPC's
// file_watcher in the bootstrap; `meshfed identity` keeps its files current).
//
// Modes: STRICT sends and requires mTLS. PERMISSIVE and DISABLE serve
// plaintext: a gRPC server cannot accept both on one port (gRFC A36 filter
// chains never match transport_protocol "tls", and gRPC has no TLS sniffing),
// so for proxyless gRPC PERMISSIVE means "plaintext still accepted" and clients
// send plaintext to PERMISSIVE destinations. Envoy listeners would add a TLS
// chain selected by tls_inspector; meshfed does not generate them yet.
import type { SecuritySettings } from '../../api/index.js';
import type { GlobalService } from '../../federation/types.js';
import { workloadId } from '../../ca/spiffe.js';
import { anyOf, wrap } from '../../xdsapi/index.js';

export const CERT_PROVIDER = 'meshfed';
export const UPSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
export const DOWNSTREAM_TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';

/** The SPIFFE IDs of the workloads behind a service (in the given clusters), sorted: what a client accepts. */
export function serviceIdentities(sec: SecuritySettings, service: GlobalService, clusters?: Set<string>): string[] {
  const ids = new Set<string>();
  for (const p of service.parts) {
    if (clusters && !clusters.has(p.cluster)) continue;
    for (const e of p.endpoints) ids.add(workloadId(sec.trustDomain, e.cluster, service.namespace, e.serviceAccount));
  }
  return [...ids].sort();
}

function commonTlsContext(validation: Record<string, unknown>): Record<string, unknown> {
  return {
    tls_certificate_provider_instance: { instance_name: CERT_PROVIDER, certificate_name: 'default' },
    validation_context: { ca_certificate_provider_instance: { instance_name: CERT_PROVIDER, certificate_name: 'ROOTCA' }, ...validation },
  };
}

/**
 * transport_socket for a client Cluster in STRICT mode. The peer must present
 * one of `identities` (exact URI SANs): a server of another service, or an
 * impostor with a certificate from the same root, is refused.
 */
export function upstreamTransportSocket(identities: string[]): Record<string, unknown> {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: anyOf(UPSTREAM_TLS_TYPE, {
      common_tls_context: commonTlsContext({ match_subject_alt_names: identities.map((id) => ({ exact: id })) }),
    }),
  };
}

/** transport_socket for a server filter chain in STRICT mode: client certificates from the mesh's roots required. */
export function downstreamTransportSocket(): Record<string, unknown> {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: anyOf(DOWNSTREAM_TLS_TYPE, {
      common_tls_context: commonTlsContext({}),
      // false would let a client without a certificate in, unauthenticated.
      require_client_certificate: wrap(true),
    }),
  };
}
