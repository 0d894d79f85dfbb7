// Bootstrap JSON for proxyless gRPC (GRPC_XDS_BOOTSTRAP file or
// GRPC_XDS_BOOTSTRAP_CONFIG inline). A process reads it once: one identity per process.
//
// Node id convention: `<cluster>~<namespace>~<workloadName>`, e.g.
// `cluster2~sample~helloworld-v2-0`. '~' cannot occur in any of the three (DNS
// labels), so the agent can split it back to find the Workload a proxy belongs to.
import { SERVER_LISTENER_PREFIX } from '../federation/names.js';

export interface GrpcBootstrapOptions {
  /** host:port of the agent's ADS server. */
  xdsServer: string;
  nodeId: string;
  /** The mesh cluster the workload runs in (node.cluster). */
  cluster: string;
  locality: { region: string; zone: string; subZone?: string };
  /** An xDS server (XdsServer) needs the listener name template. */
  server?: boolean;
  metadata?: Record<string, string>;
}

export function nodeIdFor(cluster: string, namespace: string, workload: string): string {
  return `${cluster}~${namespace}~${workload}`;
}

export function parseNodeId(id: string): { cluster: string; namespace: string; workload: string } | undefined {
  const parts = id.split('~');
  if (parts.length !== 3 || parts.some((p) => p === '')) return undefined;
  const [cluster, namespace, workload] = parts as [string, string, string];
  return { cluster, namespace, workload };
}

export function grpcBootstrap(opts: GrpcBootstrapOptions): object {
  const bootstrap: Record<string, unknown> = {
    xds_servers: [
      {
        server_uri: opts.xdsServer,
        // The Node library offers only insecure and google_default towards the
        // control plane: the agent's xDS port must be reachable only locally.
        channel_creds: [{ type: 'insecure' }],
        // Keep serving cached listeners/clusters if a (re)started control plane
        // briefly omits them; they would otherwise be deleted on the client.
        server_features: ['ignore_resource_deletion'],
      },
    ],
    node: {
      id: opts.nodeId,
      cluster: opts.cluster,
      // Required by the library (may be empty); sub_zone defaults to the cluster,
      // matching the localities of the endpoints we serve.
      locality: { region: opts.locality.region, zone: opts.locality.zone, sub_zone: opts.locality.subZone ?? opts.cluster },
      metadata: { ...(opts.metadata ?? {}) },
    },
  };
  if (opts.server) bootstrap.server_listener_resource_name_template = `${SERVER_LISTENER_PREFIX}%s`;
  return bootstrap;
}
