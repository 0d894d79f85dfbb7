// Per-proxy sync state as people read it: per xDS type SYNCED (the last response
// was ACKed), STALE (sent, not yet ACKed), NACKED (the proxy rejected the last
// response; it keeps its last good version), and the NACK message, with a hint
// when we recognise it: the policy plugins' first (e.g. an RBAC filter on a
// server without GRPC_XDS_EXPERIMENTAL_RBAC), then the core ones below.
import { POLICY_PLUGINS } from '../registry.js';
import type { ProxyStatus } from '../xds/ads-server.js';

export type SyncState = 'SYNCED' | 'STALE' | 'NACKED' | 'WAITING';

export interface ProxyTypeSummary {
  state: SyncState;
  subscribed: number;
  sentVersion?: string;
  ackedVersion?: string;
  /** ms since the proxy last ACKed this type */
  sinceAckMs?: number;
  /** ms since a response went unanswered (STALE) */
  pendingMs?: number;
  nack?: string;
  /** What to do about the NACK, when we know (e.g. a gRPC server without RBAC enabled). */
  hint?: string;
}

export interface ProxySummary {
  nodeId: string;
  cluster: string;
  protocol: string;
  connectedSince: string;
  types: Record<string, ProxyTypeSummary>;
}

const SHORT: Record<string, string> = {
  'type.googleapis.com/envoy.config.listener.v3.Listener': 'LDS',
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration': 'RDS',
  'type.googleapis.com/envoy.config.cluster.v3.Cluster': 'CDS',
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment': 'EDS',
};

export function summarizeProxies(proxies: ProxyStatus[], now = Date.now()): ProxySummary[] {
  return proxies
    .map((p) => {
      const types: Record<string, ProxyTypeSummary> = {};
      for (const [url, t] of Object.entries(p.types)) {
        const nacked = t.lastNack !== undefined && (!t.lastAckAt || t.lastNack.at >= t.lastAckAt);
        const state: SyncState = t.lastSentVersion === undefined ? 'WAITING' : nacked ? 'NACKED' : t.ackedVersion === t.lastSentVersion ? 'SYNCED' : 'STALE';
        const s: ProxyTypeSummary = { state, subscribed: t.subscribed };
        if (t.lastSentVersion !== undefined) s.sentVersion = t.lastSentVersion;
        if (t.ackedVersion !== undefined) s.ackedVersion = t.ackedVersion;
        if (t.lastAckAt) s.sinceAckMs = now - Date.parse(t.lastAckAt);
        if (state === 'STALE' && t.lastSentAt) s.pendingMs = now - Date.parse(t.lastSentAt);
        if (nacked) {
          s.nack = t.lastNack!.message;
          const hint = nackHint(url, s.nack);
          if (hint) s.hint = hint;
        }
        types[SHORT[url] ?? url] = s;
      }
      return {
        nodeId: p.nodeId,
        cluster: p.nodeCluster,
        protocol: (p as { protocol?: string }).protocol ?? 'sotw',
        connectedSince: p.connectedSince,
        types,
      };
    })
    .sort((a, b) => a.nodeId.localeCompare(b.nodeId));
}

/**
 * grpc-js-xds validates HTTP filters (even the router) only against the filters
 * `register()` installed: an XdsServer process that never called it rejects
 * every Listener with "<filter> filter validation failed" and never serves.
 */
export const REGISTER_HINT = 'the server process must call register() from @grpc/grpc-js-xds before creating its XdsServer (without it no HTTP filter, not even the router, validates)';

/**
 * A bootstrap without the certificate provider a TLS context names (written
 * without --cert-dir) makes grpc-js-xds reject the resource: "Unmatched
 * UpstreamTlsContext.tls_certificate_provider_instance.instance_name: meshfed".
 */
export const CERT_DIR_HINT =
  'the bootstrap has no certificate provider for mTLS: write it with `meshfed bootstrap --cert-dir DIR`, DIR where `meshfed identity run` writes the certificates, and restart the process';

/** A hint for a NACK we recognise: the first plugin's that recognises it, else a core one. */
export function nackHint(typeUrl: string, message: string): string | undefined {
  for (const plugin of POLICY_PLUGINS) {
    const hint = plugin.xds?.nackHint?.(typeUrl, message);
    if (hint) return hint;
  }
  if (message.includes('filter validation failed')) return REGISTER_HINT;
  if (message.includes('certificate_provider_instance.instance_name')) return CERT_DIR_HINT;
  return undefined;
}
