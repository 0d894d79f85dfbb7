// Client-side translation: federated view in, the resources an agent serves to
// proxyless gRPC clients in its cluster out. Pure and deterministic.
//
// For each service port the client can dial
//   Listener NAME -> RouteConfiguration NAME -> Cluster outbound|PORT||HOST -> ClusterLoadAssignment (same name)
// where NAME is a hostname form (global, clusterset alias, per-cluster) with or
// without :PORT (without = the first port) and HOST is the canonical hostname of
// the backend set (the global hostname, or the per-cluster hostname).
import type { ServicePort } from '../../api/index.js';
import type { FederatedView, GlobalService, ServicePart } from '../../federation/types.js';
import { resolveServicePolicy } from '../../policies/resolve.js';
import type { Backend, ClientContext, ResolvedPolicies } from '../../policies/plugin.js';
import { edsCluster } from './cluster.js';
import { loadAssignment } from './endpoints.js';
import { clientListener } from './listener.js';
import { routeConfiguration } from './route.js';
import { xdsClusterName, subsetClusterName, emptyResources, mapFor, type XdsResource, type XdsResources } from '../../xdsapi/index.js';

export function translateClient(view: FederatedView, ctx: ClientContext): XdsResources {
  if (!ctx.locality) {
    const me = view.clusters.find((c) => c.name === ctx.cluster);
    if (me) ctx = { ...ctx, locality: { region: me.region, zones: me.zones } };
  }
  const out = emptyResources();
  const warnings = new Set<string>();
  const sink = mapSink(out, warnings);
  for (const service of view.services) addService(ctx, service, sink);

  const sorted = emptyResources();
  for (const key of ['listeners', 'routes', 'clusters', 'endpoints'] as const) {
    for (const name of [...out[key].keys()].sort()) sorted[key].set(name, out[key].get(name)!);
  }
  if (warnings.size > 0) sorted.warnings = [...warnings].sort();
  return sorted;
}

/**
 * The resources of one global service, as an agent serving ctx.cluster sees it.
 * Resource names embed the service's hostnames, so the resources of different
 * services never share a name: an agent can retranslate only the services that
 * changed and replace exactly their resources.
 */
export function translateService(service: GlobalService, ctx: ClientContext): { resources: XdsResource[]; warnings: string[] } {
  const out = emptyResources();
  const warnings = new Set<string>();
  addService(ctx, service, mapSink(out, warnings));
  const resources: XdsResource[] = [];
  for (const key of ['listeners', 'routes', 'clusters', 'endpoints'] as const) resources.push(...out[key].values());
  return { resources, warnings: [...warnings] };
}

function mapSink(out: XdsResources, warnings: Set<string>): Sink {
  return {
    warnings,
    add(r) {
      const map = mapFor(out, r.typeUrl);
      // Hostname forms cannot collide with valid names (labels have no dots), but a
      // duplicate must never silently replace a resource: first one wins.
      if (map.has(r.name)) warnings.add(`duplicate resource name ${r.name}; kept the first`);
      else map.set(r.name, r);
    },
  };
}

function addService(ctx: ClientContext, service: GlobalService, sink: Sink): void {
  // Policies are resolved once per service (every plugin); builders and hooks read them from the Backend.
  const policy = resolveServicePolicy(service, ctx.policies, ctx.cluster).policy;
  const global = globalBackendParts(service, ctx);
  if (global) addHost(ctx, service, { hostnames: service.hostnames, ...global, policy, global: true }, sink);
  for (const part of service.parts) {
    // A part that is not exported, or not shared, is visible only in its own cluster.
    if ((!part.exported || part.shared === false) && part.cluster !== ctx.cluster) continue;
    addHost(ctx, service, { hostnames: [part.hostname], ports: part.ports, parts: [part], part, policy }, sink);
  }
}

/**
 * Parts behind the global hostnames, as seen from ctx.cluster: every part in the
 * global service (exported and not in conflict; an unshared part only in its own cluster). When no part is, a service that
 * exists in ctx.cluster stays reachable there by its global name with its local
 * part (like a Kubernetes Service that is not exported); elsewhere it does not exist.
 */
function globalBackendParts(service: GlobalService, ctx: ClientContext): { parts: ServicePart[]; ports: ServicePort[] } | undefined {
  // A part that is not shared (Cilium's shared: "false") is in the global service for its own cluster only.
  const inGlobal = service.parts.filter((p) => p.inGlobal && (p.shared !== false || p.cluster === ctx.cluster));
  if (inGlobal.length > 0) return { parts: inGlobal, ports: service.ports };
  const local = service.parts.find((p) => p.cluster === ctx.cluster);
  return local ? { parts: [local], ports: local.ports } : undefined;
}

interface Sink {
  add(r: XdsResource): void;
  warnings: Set<string>;
}

/** Names that reach one backend set; the first hostname is the canonical one (in xDS cluster names). */
interface HostSet {
  hostnames: string[];
  ports: ServicePort[];
  parts: ServicePart[];
  /** Set for a per-cluster hostname. */
  part?: ServicePart;
  policy?: ResolvedPolicies | undefined;
  global?: boolean;
}

function addHost(ctx: ClientContext, service: GlobalService, { hostnames, ports, parts, part, policy, global }: HostSet, sink: Sink): void {
  const canonical = hostnames[0]!;
  ports.forEach((port, i) => {
    // Proxyless gRPC speaks HTTP/2 only; TCP ports will get Envoy TCP listeners
    // later. The bare hostname means the first port (as resolveHostname says), so
    // a service whose first port is TCP has no bare-name listener.
    if (port.protocol === 'TCP') return;
    const backend: Backend = { clusterName: xdsClusterName(canonical, port.port), host: canonical, service, port, parts };
    if (part) backend.part = part;
    if (policy) backend.policy = policy;
    if (global) backend.global = true;
    const names = hostnames.flatMap((h) => (i === 0 ? [h, `${h}:${port.port}`] : [`${h}:${port.port}`]));
    for (const name of names) {
      sink.add(clientListener(ctx, name));
      sink.add(routeConfiguration(ctx, name, backend));
    }
    sink.add(edsCluster(ctx, backend));
    sink.add(loadAssignment(ctx, backend, sink.warnings));
    // Subset backends plugins ask for (a TrafficPolicy's split targets): one xDS cluster (and EDS) each.
    for (const plugin of ctx.policies.plugins) {
      for (const subset of plugin.xds?.subsets?.(backend, backend.policy?.byKind(plugin.kind.kind)) ?? []) {
        const sb: Backend = { ...backend, clusterName: subsetClusterName(canonical, port.port, subset.name), subset };
        sink.add(edsCluster(ctx, sb));
        sink.add(loadAssignment(ctx, sb, sink.warnings));
      }
    }
  });
}
