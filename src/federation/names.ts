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
