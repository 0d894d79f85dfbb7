// RouteConfiguration builder. One virtual host matching every authority: the
// listener name already selected the service, so the route only picks the xDS
// cluster. Weighted splits, retries and fault overrides will be added to the
// route action / typed_per_filter_config here.
import type { Backend } from './backend.js';
import { ROUTE_TYPE, type ClientContext, type XdsResource } from './types.js';

export function routeConfiguration(_ctx: ClientContext, name: string, backend: Backend): XdsResource {
  return {
    typeUrl: ROUTE_TYPE,
    name,
    message: {
      name,
      virtual_hosts: [
        {
          name: backend.host,
          domains: ['*'],
          routes: [{ name: 'default', match: { prefix: '' }, route: { cluster: backend.clusterName } }],
        },
      ],
    },
  };
}
