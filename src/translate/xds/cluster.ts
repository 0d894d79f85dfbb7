// Cluster builder: EDS over ADS, the fields plugins add (load balancing,
// outlier detection: a TrafficPolicy's, or their defaults), and mTLS to the
// backend's workloads when the destination service is STRICT.
import { serviceMode } from '../../api/index.js';
import type { Backend, ClientContext } from '../../policies/plugin.js';
import { serviceIdentities, upstreamTransportSocket } from './security.js';
import { CLUSTER_TYPE, type XdsResource } from '../../xdsapi/index.js';

export function edsCluster(ctx: ClientContext, backend: Backend): XdsResource {
  const name = backend.clusterName;
  const message: Record<string, unknown> = {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
  };
  for (const plugin of ctx.policies.plugins) {
    const hook = plugin.xds?.clusterFields;
    if (hook) Object.assign(message, hook(ctx, backend, backend.policy?.byKind(plugin.kind.kind)));
  }
  return { typeUrl: CLUSTER_TYPE, name, message: { ...message, ...tlsFields(ctx, backend) } };
}

/** mTLS to the backend's workloads when the destination service is STRICT. */
function tlsFields(ctx: ClientContext, backend: Backend): Record<string, unknown> {
  const svc = backend.service;
  if (!ctx.security || serviceMode(ctx.security, svc.namespace, svc.name) !== 'STRICT') return {};
  const clusters = new Set(backend.parts.map((p) => p.cluster));
  return { transport_socket: upstreamTransportSocket(serviceIdentities(ctx.security, svc, clusters)) };
}
