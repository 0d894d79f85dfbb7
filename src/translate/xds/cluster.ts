// Cluster builder: EDS over ADS, round robin, and always an outlier_detection block.
import type { Backend } from './backend.js';
import { lbFields, outlierFields } from '../../policies/traffic/xds.js';
import { serviceIdentities, serviceMode, upstreamTransportSocket } from './security.js';
import { type ClientContext } from './types.js';
import { CLUSTER_TYPE, type XdsResource } from '../../xdsapi/index.js';

export function edsCluster(ctx: ClientContext, backend: Backend): XdsResource {
  const name = backend.clusterName;
  return {
    typeUrl: CLUSTER_TYPE,
    name,
    message: {
      name,
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
      ...lbFields(backend.policy),
      outlier_detection: outlierDetection(ctx, backend),
      ...tlsFields(ctx, backend),
    },
  };
}

/** mTLS to the backend's workloads when the destination service is STRICT. */
function tlsFields(ctx: ClientContext, backend: Backend): Record<string, unknown> {
  const svc = backend.service;
  if (!ctx.security || serviceMode(ctx.security, svc.namespace, svc.name) !== 'STRICT') return {};
  const clusters = new Set(backend.parts.map((p) => p.cluster));
  return { transport_socket: upstreamTransportSocket(serviceIdentities(ctx.security, svc, clusters)) };
}

/**
 * Outlier detection: sent on every cluster because grpc-js-xds ignores the
 * block when it is added to a live cluster that had none, and every field is
 * explicit because an unset field reaches the library as undefined and wipes
 * its default. Off (enforcing 0) unless a policy turns it on.
 */
export function outlierDetection(_ctx: ClientContext, backend: Backend): Record<string, unknown> {
  return outlierFields(backend.policy?.outlierDetection?.value);
}
