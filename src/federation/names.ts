// The names clients use. One place decides them; docs/naming.md explains them.
//
//   helloworld.sample                          global service (every exporting cluster)
//   helloworld.sample.svc.clusterset.local     the same, MCS-API style alias
//   helloworld.sample.cluster2                 only cluster2's part
//   any of the above with :PORT                a specific service port (default: the first port)

// Names are flat strings (see flat()): every resource name is held several times over.
import { flat } from '../util/intern.js';

export const CLUSTERSET_SUFFIX = 'svc.clusterset.local';

export function globalHostname(name: string, namespace: string): string {
  return flat(`${name}.${namespace}`);
}

export function clustersetHostname(name: string, namespace: string): string {
  return flat(`${name}.${namespace}.${CLUSTERSET_SUFFIX}`);
}

export function clusterHostname(name: string, namespace: string, cluster: string): string {
  return flat(`${name}.${namespace}.${cluster}`);
}

/** xDS cluster name for one port of one host (Istio-like, so it reads in proxy dumps). */
export function xdsClusterName(host: string, port: number): string {
  return flat(`outbound|${port}||${host}`);
}

/** Server-side listener name that an xDS-enabled gRPC server requests (gRFC A36). */
export const SERVER_LISTENER_PREFIX = 'grpc/server?xds.resource.listening_address=';
export function serverListenerName(address: string, port: number): string {
  const host = address.includes(':') ? `[${address}]` : address;
  return `${SERVER_LISTENER_PREFIX}${host}:${port}`;
}
