// RouteConfiguration builder. One virtual host matching every authority: the
// listener name already selected the service, so the route only picks the xDS
// cluster. On the global hostnames a TrafficPolicy's routes (matches, weighted
// splits to subset clusters, retries, timeouts, faults) replace the default route.
import { policyRoutes } from '../../policies/traffic/xds.js';
import type { Backend } from './backend.js';
import { type ClientContext } from './types.js';
import { subsetClusterName, ROUTE_TYPE, type XdsResource } from '../../xdsapi/index.js';

export function routeConfiguration(ctx: ClientContext, name: string, backend: Backend): XdsResource {
  const routes = backend.global ? backend.policy?.routes?.value : undefined;
  const hashHeader = backend.policy?.loadBalancing?.value.hashHeader;
  const defaultAction: Record<string, unknown> = { cluster: backend.clusterName };
  if (hashHeader) defaultAction.hash_policy = [{ header: { header_name: hashHeader } }];
  return {
    typeUrl: ROUTE_TYPE,
    name,
    message: {
      name,
      virtual_hosts: [
        {
          name: backend.host,
          domains: ['*'],
          routes: routes
            ? policyRoutes(ctx, routes, (subset) => (subset === '' ? backend.clusterName : subsetClusterName(backend.host, backend.port.port, subset)), hashHeader)
            : [{ name: 'default', match: { prefix: '' }, route: defaultAction }],
        },
      ],
    },
  };
}
