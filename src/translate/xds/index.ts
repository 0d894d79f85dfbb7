// Pure xDS translation: federated view in, Envoy v3 resources (plain objects) out.
export * from './types.js';
export type { Backend } from './backend.js';
export { translateClient, translateService } from './client.js';
export { translateServerListener, serverListenerResource, clientListener, routerFilter } from './listener.js';
export type { ServerListenerOptions } from './listener.js';
export { routeConfiguration } from './route.js';
export { edsCluster, outlierDetection } from './cluster.js';
export { loadAssignment } from './endpoints.js';
export * from './security.js';
