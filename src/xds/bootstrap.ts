// Bootstrap JSON for proxyless gRPC (GRPC_XDS_BOOTSTRAP file or
// GRPC_XDS_BOOTSTRAP_CONFIG inline; a process reads it once: one identity per
// process) and for Envoy (envoy -c bootstrap.json).
//
// Node id convention: `<cluster>~<namespace>~<workloadName>`, e.g.
// `cluster2~sample~helloworld-v2-0`. '~' cannot occur in any of the three (DNS
// labels), so the agent can split it back to find the Workload a proxy belongs to.
import { isIP } from 'node:net';
import { encodeJsonMessage, loadBootstrapProtos } from './proto.js';
import { SERVER_LISTENER_PREFIX } from '../xdsapi/index.js';

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
  /**
   * Directory where `meshfed identity` keeps cert.pem, key.pem and ca.pem: adds
   * the file_watcher certificate provider the mTLS resources refer to.
   */
  certDir?: string;
}

/** Name of the certificate provider instance in bootstraps; the xDS TLS contexts refer to it (translate/xds/security.ts). */
export const CERT_PROVIDER_INSTANCE = 'meshfed';

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
  if (opts.certDir) {
    const dir = opts.certDir.replace(/\/+$/, '');
    bootstrap.certificate_providers = {
      [CERT_PROVIDER_INSTANCE]: {
        plugin_name: 'file_watcher',
        config: {
          certificate_file: `${dir}/cert.pem`,
          private_key_file: `${dir}/key.pem`,
          ca_certificate_file: `${dir}/ca.pem`,
          // Rotation reaches new handshakes within this interval.
          refresh_interval: '1s',
        },
      },
    };
  }
  return bootstrap;
}

export interface EnvoyBootstrapOptions {
  /** host:port (or [v6]:port) of the agent's ADS server. */
  xdsServer: string;
  nodeId: string;
  /** The mesh cluster the workload runs in (node.cluster). */
  cluster: string;
  locality: { region: string; zone: string; subZone?: string };
  metadata?: Record<string, string>;
  /** Incremental xDS (api_type DELTA_GRPC) instead of state of the world (GRPC). */
  delta?: boolean;
  /** Admin interface; default 127.0.0.1:15000 (loopback: it can change the proxy's state). */
  admin?: { address?: string; port?: number };
}

/** The static cluster every dynamic resource comes through. */
export const ENVOY_XDS_CLUSTER = 'xds_cluster';

/**
 * Envoy v3 bootstrap (proto3 JSON, snake_case) that takes listeners and clusters
 * (and through them routes and endpoints) from the agent over one ADS stream.
 */
export function envoyBootstrap(opts: EnvoyBootstrapOptions): Record<string, unknown> {
  const { host, port } = splitHostPort(opts.xdsServer);
  return {
    node: {
      id: opts.nodeId,
      cluster: opts.cluster,
      locality: { region: opts.locality.region, zone: opts.locality.zone, sub_zone: opts.locality.subZone ?? opts.cluster },
      metadata: { ...(opts.metadata ?? {}) },
    },
    dynamic_resources: {
      ads_config: {
        api_type: opts.delta ? 'DELTA_GRPC' : 'GRPC',
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: ENVOY_XDS_CLUSTER } }],
        // The node (with its metadata) is needed once per stream; not on every request.
        set_node_on_first_message_only: true,
      },
      lds_config: { ads: {}, resource_api_version: 'V3' },
      cds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: {
      clusters: [
        {
          name: ENVOY_XDS_CLUSTER,
          // STATIC needs an IP literal; a host name is resolved by Envoy instead.
          type: isIP(host) ? 'STATIC' : 'STRICT_DNS',
          connect_timeout: '1s',
          // gRPC needs HTTP/2 towards the control plane (Envoy's upstream default is HTTP/1.1).
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: {
            cluster_name: ENVOY_XDS_CLUSTER,
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: host, port_value: port } } } }] }],
          },
        },
      ],
    },
    admin: { address: { socket_address: { address: opts.admin?.address ?? '127.0.0.1', port_value: opts.admin?.port ?? 15000 } } },
  };
}

/**
 * Encodes a bootstrap as envoy.config.bootstrap.v3.Bootstrap with the strict
 * encoder: throws on any field or enum value Envoy's protos do not have.
 */
export function encodeEnvoyBootstrap(bootstrap: object): Uint8Array {
  loadBootstrapProtos();
  return encodeJsonMessage('envoy.config.bootstrap.v3.Bootstrap', bootstrap, 'Envoy bootstrap');
}

function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(addr);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) throw new Error(`xDS server address must be host:port, got "${addr}"`);
  return { host: (m[1] ?? m[2])!, port };
}
