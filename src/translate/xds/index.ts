// Pure xDS translation: federated view in, Envoy v3 resources (plain objects)
// out. The builders drive the policy plugins' xDS hooks (src/policies/plugin.ts)
// and know no policy kind by name.
export type { Backend, ClientContext, ServerContext, ServerTarget } from '../../policies/plugin.js';
export { translateClient, translateService } from './client.js';
export { translateServerListener, serverListenerResource, clientListener, routerFilter, serverPolicyFilters, serverPoliciesActive, serverPoliciesReadWorkloads } from './listener.js';
export type { ServerListenerOptions } from './listener.js';
export { listenerTarget, unknownTarget } from './server-target.js';
export { routeConfiguration } from './route.js';
export { edsCluster } from './cluster.js';
export { loadAssignment } from './endpoints.js';
export * from './security.js';
