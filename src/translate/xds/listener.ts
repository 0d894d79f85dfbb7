// Listener builders. Client listeners are gRPC "api listeners" (gRFC A27): the
// listener name is the dial target and the HttpConnectionManager points at a
// RouteConfiguration over ADS. Server listeners (gRFC A36) are what an xDS
// gRPC server requests for the address it binds.
import type { ClientContext, HttpFilter, PolicySet, ServerContext, ServerTarget } from '../../policies/plugin.js';
import type { MtlsMode } from '../../api/index.js';
import { downstreamTransportSocket } from './security.js';
import { HCM_TYPE, LISTENER_TYPE, ROUTER_TYPE, anyOf, parseServerListenerName, type XdsResource } from '../../xdsapi/index.js';

/** HTTP filters of a client listener: the plugins' (a TrafficPolicy's fault filter, off unless a route enables it), then the router, which must stay last. */
export function clientHttpFilters(ctx: ClientContext): HttpFilter[] {
  const filters: HttpFilter[] = [];
  for (const plugin of ctx.policies.plugins) filters.push(...(plugin.xds?.clientHttpFilters?.(ctx) ?? []));
  filters.push(routerFilter());
  return filters;
}

export function routerFilter(): Record<string, unknown> {
  return { name: 'envoy.filters.http.router', typed_config: anyOf(ROUTER_TYPE) };
}

/** Client listener `name`; its RouteConfiguration has the same name. */
export function clientListener(ctx: ClientContext, name: string): XdsResource {
  return {
    typeUrl: LISTENER_TYPE,
    name,
    message: {
      name,
      api_listener: {
        api_listener: anyOf(HCM_TYPE, {
          stat_prefix: name,
          rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: name },
          http_filters: clientHttpFilters(ctx),
        }),
      },
    },
  };
}

/**
 * Settings of one server listener: where it listens, whether it requires mTLS,
 * and the HTTP filters (RBAC of the AccessPolicies) before the router.
 */
export interface ServerListenerOptions {
  address: string;
  port: number;
  /** STRICT: client certificates required. Otherwise plaintext (see security.ts). */
  mode?: MtlsMode;
  /** HTTP filters before the router (src/policies/access/xds.ts); none: every call reaches the service. */
  httpFilters?: Record<string, unknown>[];
}

/**
 * Server listener for an xDS gRPC server. One filter chain without
 * filter_chain_match: grpc-js-xds never matches a chain whose match leaves
 * transport_protocol unset, and toggling default_filter_chain on a live listener
 * crashes the server, so we never use it.
 */
export function serverListenerResource(name: string, opts: ServerListenerOptions): XdsResource {
  const mtls = opts.mode === 'STRICT';
  return {
    typeUrl: LISTENER_TYPE,
    name,
    message: {
      name,
      address: { socket_address: { address: opts.address, port_value: opts.port } },
      filter_chains: [
        {
          name: mtls ? 'inbound-mtls' : 'inbound',
          ...(mtls ? { transport_socket: downstreamTransportSocket() } : {}),
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: anyOf(HCM_TYPE, {
                // Differs by mode on purpose: grpc-js-xds compares server filter
                // chains with an inverted transport_socket check, so plaintext ->
                // TLS with identical filters would be ignored and TLS -> plaintext
                // throws (test/unit/xds-library-pitfalls.test.ts).
                stat_prefix: mtls ? 'inbound-mtls' : 'inbound',
                route_config: {
                  name: 'inbound',
                  virtual_hosts: [
                    {
                      name: 'inbound',
                      domains: ['*'],
                      // Servers must not forward; any other action rejects the RPC.
                      routes: [{ name: 'default', match: { prefix: '' }, non_forwarding_action: {} }],
                    },
                  ],
                },
                http_filters: [...(opts.httpFilters ?? []), routerFilter()],
              }),
            },
          ],
        },
      ],
    },
  };
}

/**
 * Server listener for an A36 listener name; undefined when the name is not one
 * or has no literal IP:PORT. `modeOf` gives the mTLS mode for the address (the
 * mode of the service whose workload listens there; the mesh's mode otherwise),
 * `filtersOf` the access-policy filters of the workload listening there.
 */
export function translateServerListener(
  name: string,
  modeOf: (address: string, port: number) => MtlsMode = () => 'DISABLE',
  filtersOf?: (address: string, port: number, mode: MtlsMode) => Record<string, unknown>[],
): XdsResource | undefined {
  const addr = parseServerListenerName(name);
  if (!addr) return undefined;
  const mode = modeOf(addr.address, addr.port);
  const httpFilters = filtersOf?.(addr.address, addr.port, mode) ?? [];
  return serverListenerResource(name, { ...addr, mode, ...(httpFilters.length ? { httpFilters } : {}) });
}

/** Whether any server-side plugin can put filters on server listeners now (nothing to evaluate otherwise). */
export function serverPoliciesActive(policies: PolicySet, ctx: Pick<ServerContext, 'accessDefault'>): boolean {
  return policies.plugins.some((p) => p.xds?.serverHttpFilters && (p.xds.serverActive?.(ctx, policies.of(p)) ?? policies.of(p).length > 0));
}

/** Whether the server filters depend on the view's workloads (then any workload change re-evaluates them). */
export function serverPoliciesReadWorkloads(policies: PolicySet): boolean {
  return policies.plugins.some((p) => p.xds?.serverReadsWorkloads?.(policies.of(p)) ?? false);
}

/** The HTTP filters (before the router) every server-side plugin puts on the server listener of `target`. */
export function serverPolicyFilters(policies: PolicySet, ctx: ServerContext, target: ServerTarget): HttpFilter[] {
  const filters: HttpFilter[] = [];
  for (const plugin of policies.plugins) filters.push(...(plugin.xds?.serverHttpFilters?.(ctx, target, policies.of(plugin)) ?? []));
  return filters;
}
