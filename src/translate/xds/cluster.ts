// Cluster builder: EDS over ADS, round robin, and always an outlier_detection block.
import type { Backend } from './backend.js';
import { CLUSTER_TYPE, duration, wrap, type ClientContext, type XdsResource } from './types.js';

export function edsCluster(ctx: ClientContext, backend: Backend): XdsResource {
  const name = backend.clusterName;
  return {
    typeUrl: CLUSTER_TYPE,
    name,
    message: {
      name,
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
      lb_policy: 'ROUND_ROBIN',
      outlier_detection: outlierDetection(ctx, backend),
    },
  };
}

/**
 * Outlier detection, off for now (enforcing percentages 0). It is sent on every
 * cluster because grpc-js-xds ignores the block when it is added to a live
 * cluster that had none, and every field is explicit because an unset field
 * reaches the library as undefined and wipes its default. Values are Envoy's
 * defaults. A policy will override them here.
 */
export function outlierDetection(_ctx: ClientContext, _backend: Backend): Record<string, unknown> {
  return {
    interval: duration(10_000),
    base_ejection_time: duration(30_000),
    max_ejection_time: duration(300_000),
    max_ejection_percent: wrap(10),
    enforcing_success_rate: wrap(0),
    success_rate_minimum_hosts: wrap(5),
    success_rate_request_volume: wrap(100),
    success_rate_stdev_factor: wrap(1900),
    enforcing_failure_percentage: wrap(0),
    failure_percentage_minimum_hosts: wrap(5),
    failure_percentage_request_volume: wrap(50),
    failure_percentage_threshold: wrap(85),
    // Not read by gRPC, but Envoy enforces consecutive-5xx ejection at 100 % by
    // default once the block exists: keep it off there too.
    enforcing_consecutive_5xx: wrap(0),
  };
}
