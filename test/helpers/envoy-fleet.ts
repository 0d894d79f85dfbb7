// A synthetic fleet of Envoy v3 resources for cache and load tests: per service a
// Listener (api_listener, RDS), a RouteConfiguration, an EDS Cluster and its
// ClusterLoadAssignment, all valid for the strict encoder. `gen` varies the
// endpoints so a test can produce a changed assignment.
import { CLUSTER_TYPE, ENDPOINT_TYPE, HCM_TYPE, LISTENER_TYPE, ROUTER_TYPE, ROUTE_TYPE, emptyResources, type XdsResource, type XdsResources } from '../../src/xdsapi/index.js';

export const svcName = (i: number): string => `svc-${i}.ns`;
export const clusterName = (i: number): string => `outbound|8080||svc-${i}.ns`;

export function listener(i: number): XdsResource {
  const name = svcName(i);
  return {
    typeUrl: LISTENER_TYPE,
    name,
    message: {
      name,
      api_listener: {
        api_listener: {
          '@type': HCM_TYPE,
          rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: name },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
        },
      },
    },
  };
}

export function route(i: number): XdsResource {
  const name = svcName(i);
  return {
    typeUrl: ROUTE_TYPE,
    name,
    message: { name, virtual_hosts: [{ name, domains: [name, `${name}:8080`], routes: [{ match: { prefix: '' }, route: { cluster: clusterName(i) } }] }] },
  };
}

export function cluster(i: number): XdsResource {
  const name = clusterName(i);
  return {
    typeUrl: CLUSTER_TYPE,
    name,
    message: { name, type: 'EDS', eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } }, lb_policy: 'ROUND_ROBIN' },
  };
}

export function assignment(i: number, gen = 0, endpoints = 3): XdsResource {
  const name = clusterName(i);
  const lb = Array.from({ length: endpoints }, (_, k) => ({
    // Every gen differs (the port carries gen / 250).
    endpoint: { address: { socket_address: { address: `10.${(i >> 8) & 255}.${i & 255}.${(k + gen) % 250}`, port_value: 8080 + Math.floor(gen / 250) } } },
    health_status: 'HEALTHY',
  }));
  return {
    typeUrl: ENDPOINT_TYPE,
    name,
    message: { cluster_name: name, endpoints: [{ locality: { region: 'r1', zone: 'z1', sub_zone: 'c1' }, load_balancing_weight: { value: endpoints }, priority: 0, lb_endpoints: lb }] },
  };
}

/**
 * `services` services with listener, route, cluster and assignment each; with
 * `listenersPerCluster` > 1 every service also gets that many alias listeners and
 * routes (global names, per-cluster names...), as a federated fleet has.
 */
export function fleet(services: number, opts: { gen?: number; listenersPerCluster?: number } = {}): XdsResources {
  const res = emptyResources();
  const per = opts.listenersPerCluster ?? 1;
  for (let i = 0; i < services; i++) {
    for (let a = 0; a < per; a++) {
      const l = listener(i);
      const r = route(i);
      if (a > 0) {
        const alias = `${svcName(i)}.alias${a}`;
        l.name = alias;
        l.message = { ...l.message, name: alias };
        r.name = alias;
        r.message = { ...r.message, name: alias };
      }
      res.listeners.set(l.name, l);
      res.routes.set(r.name, r);
    }
    res.clusters.set(clusterName(i), cluster(i));
    res.endpoints.set(clusterName(i), assignment(i, opts.gen ?? 0));
  }
  return res;
}
