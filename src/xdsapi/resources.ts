// The xDS vocabulary's resource shapes: type URLs, the resource as the
// translation produces it and the server encodes it, and the four-map set of a
// snapshot. The lowest xDS layer: the server (src/xds), the translation
// (src/translate/xds) and the policy plugins all import it; it imports nothing
// of meshfed's.
//
// Messages are plain objects in protobufjs `fromObject` form with snake_case
// field names (as Envoy's docs and config dumps spell them); an Any is written
// `{ '@type': TYPE_URL, ...fields }` (see messages.ts). Encoding and strict
// field checking live in src/xds/proto.ts.

export const LISTENER_TYPE = 'type.googleapis.com/envoy.config.listener.v3.Listener';
export const ROUTE_TYPE = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
export const CLUSTER_TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
export const ENDPOINT_TYPE = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';

export const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** Order in which a state-of-the-world client needs them (and in which golden files list them). */
export const RESOURCE_TYPES = [LISTENER_TYPE, ROUTE_TYPE, CLUSTER_TYPE, ENDPOINT_TYPE] as const;
export type ResourceTypeUrl = (typeof RESOURCE_TYPES)[number];

export interface XdsResource {
  typeUrl: string;
  name: string;
  /** Plain object in protobufjs fromObject form, snake_case field names. */
  message: Record<string, unknown>;
}

export interface XdsResources {
  listeners: Map<string, XdsResource>;
  routes: Map<string, XdsResource>;
  clusters: Map<string, XdsResource>;
  endpoints: Map<string, XdsResource>;
  /** Things the translation had to drop, for the agent to report (never affects the resources). */
  warnings?: string[];
}

export function emptyResources(): XdsResources {
  return { listeners: new Map(), routes: new Map(), clusters: new Map(), endpoints: new Map() };
}

/** The map holding resources of a type URL. */
export function mapFor(res: XdsResources, typeUrl: string): Map<string, XdsResource> {
  switch (typeUrl) {
    case LISTENER_TYPE:
      return res.listeners;
    case ROUTE_TYPE:
      return res.routes;
    case CLUSTER_TYPE:
      return res.clusters;
    case ENDPOINT_TYPE:
      return res.endpoints;
    default:
      throw new Error(`unknown xDS resource type ${typeUrl}`);
  }
}
