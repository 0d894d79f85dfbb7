// RouteConfiguration builder. One virtual host matching every authority: the
// listener name already selected the service, so the route only picks the xDS
// cluster. It starts from the default route (every call to the backend) and
// each plugin's routes hook reshapes it (a TrafficPolicy's matches, weighted
// splits to subset clusters, retries, timeouts, faults, hashing).
import type { Backend, ClientContext, RouteEntry } from '../../policies/plugin.js';
import { ROUTE_TYPE, type XdsResource } from '../../xdsapi/index.js';

export function routeConfiguration(ctx: ClientContext, name: string, backend: Backend): XdsResource {
  let routes: RouteEntry[] = [{ name: 'default', match: { prefix: '' }, route: { cluster: backend.clusterName } }];
  for (const plugin of ctx.policies.plugins) {
    const hook = plugin.xds?.routes;
    if (hook) routes = hook(ctx, backend, backend.policy?.byKind(plugin.kind.kind), routes);
  }
  return {
    typeUrl: ROUTE_TYPE,
    name,
    message: { name, virtual_hosts: [{ name: backend.host, domains: ['*'], routes }] },
  };
}
