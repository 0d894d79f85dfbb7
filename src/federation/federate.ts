// Pure: discovered objects in, federated view out. No I/O.
//
// Rule for conflicting definitions (as the Kubernetes MCS API does it): parts of a
// global service must agree on their ports (name, number, protocol). The oldest
// export (earliest `since`, then cluster name) is the reference; a part that
// disagrees stays reachable by its per-cluster name but is left out of the global
// service, and the conflict is reported on the global service.
import type { Cluster, Mesh, Service, ServicePort, Workload } from '../api/index.js';
import { flat } from '../util/intern.js';
import { clusterHostname, clustersetHostname, globalHostname } from './names.js';
import type { ClusterTopology, Endpoint, FederatedView, FederationConflict, GlobalService, ServicePart } from './types.js';

export interface FederationInput {
  clusters: Cluster[];
  mesh?: Mesh;
  services: Service[];
  workloads: Workload[];
}

export function federate(input: FederationInput): FederatedView {
  const members = memberClusters(input.clusters, input.mesh);
  const topo = new Map(members.map((c) => [c.name, c]));

  const workloadsByPart = new Map<string, Workload[]>();
  for (const w of input.workloads) {
    if (!w.metadata.namespace) continue;
    const key = partKey(w.spec.cluster, w.metadata.namespace, w.spec.service);
    const list = workloadsByPart.get(key);
    if (list) list.push(w);
    else workloadsByPart.set(key, [w]);
  }
  const servicesByGlobal = new Map<string, Service[]>();
  for (const s of input.services) {
    if (!s.metadata.namespace) continue;
    const gk = globalKey(s.metadata.namespace, s.metadata.name);
    const list = servicesByGlobal.get(gk);
    if (list) list.push(s);
    else servicesByGlobal.set(gk, [s]);
  }

  const services: GlobalService[] = [];
  for (const [gk, defs] of servicesByGlobal) {
    const [namespace, name] = gk.split('/') as [string, string];
    const g = federateService(namespace, name, defs, (cluster) => workloadsByPart.get(partKey(cluster, namespace, name)) ?? [], topo);
    if (g) services.push(g);
  }
  services.sort(byNamespaceName);
  return { clusters: members, services };
}

/**
 * One global service from its per-cluster definitions and their workloads. The
 * whole-view federate() and the agent's incremental index both use it, so they
 * cannot disagree. Returns undefined when no definition is in a member cluster.
 */
export function federateService(
  namespace: string,
  name: string,
  definitions: Iterable<Service>,
  workloadsOf: (cluster: string) => Iterable<Workload>,
  topo: ReadonlyMap<string, ClusterTopology>,
): GlobalService | undefined {
  const parts: ServicePart[] = [];
  for (const s of definitions) {
    const cluster = s.spec.cluster;
    const t = topo.get(cluster);
    if (!t) continue;
    const endpoints: Endpoint[] = [];
    for (const w of workloadsOf(t.name)) endpoints.push(endpointOf(w, t));
    endpoints.sort(byWorkload);
    const part: ServicePart = {
      cluster: t.name,
      hostname: clusterHostname(name, namespace, t.name),
      ports: s.spec.ports,
      exported: s.spec.exported,
      inGlobal: false,
      since: s.metadata.creationTimestamp ?? '',
      endpoints,
    };
    if (s.metadata.labels && Object.keys(s.metadata.labels).length > 0) part.labels = s.metadata.labels;
    if (s.spec.shared === false) part.shared = false;
    if (s.spec.affinity) part.affinity = s.spec.affinity;
    parts.push(part);
  }
  if (parts.length === 0) return undefined;
  parts.sort((a, b) => a.cluster.localeCompare(b.cluster));
  const exported = parts.filter((p) => p.exported);
  const reference = [...(exported.length > 0 ? exported : parts)].sort((a, b) => a.since.localeCompare(b.since) || a.cluster.localeCompare(b.cluster))[0]!;
  const conflicts: FederationConflict[] = [];
  for (const p of exported) {
    const diff = portsDiffer(reference.ports, p.ports);
    if (diff === undefined) {
      p.inGlobal = true;
    } else {
      conflicts.push({
        cluster: p.cluster,
        field: 'spec.ports',
        message:
          `${p.cluster} defines ports ${formatPorts(p.ports)} but the global service ${name}.${namespace} uses ` +
          `${reference.cluster}'s ${formatPorts(reference.ports)} (oldest export wins): ${diff}; ` +
          `${p.cluster}'s endpoints stay reachable as ${p.hostname} only`,
      });
    }
  }
  return {
    name,
    namespace,
    hostnames: [globalHostname(name, namespace), clustersetHostname(name, namespace)],
    ports: reference.ports,
    referenceCluster: reference.cluster,
    parts,
    conflicts,
  };
}

/** Shared by every endpoint without labels (read-only). */
const NO_LABELS: Record<string, string> = Object.freeze({}) as Record<string, string>;

function endpointOf(w: Workload, t: ClusterTopology): Endpoint {
  const ep: Endpoint = {
    workload: w.metadata.name,
    cluster: t.name,
    network: t.network,
    region: t.region,
    zone: w.spec.zone ?? t.zones[0] ?? '',
    address: w.spec.address,
    ports: w.spec.ports,
    health: w.spec.health,
    labels: w.metadata.labels ?? NO_LABELS,
    serviceAccount: w.spec.serviceAccount,
  };
  if (t.liveness) {
    ep.staleSince = t.liveness.lastHeartbeat;
    if (t.liveness.state === 'Withdrawn') ep.withdrawn = true;
  }
  return ep;
}

export function globalKey(namespace: string, name: string): string {
  return flat(`${namespace}/${name}`);
}

export function byNamespaceName(a: { namespace: string; name: string }, b: { namespace: string; name: string }): number {
  return a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name);
}

/**
 * Clusters that federate: every Cluster, or those the Mesh lists, with their
 * liveness. `self` (an agent's own cluster) is always taken as Live: its own
 * discovery is authoritative, whatever the hub last concluded about it.
 */
export function memberClusters(clusters: Cluster[], mesh?: Mesh, self?: string): ClusterTopology[] {
  const allowed = mesh?.spec.clusters?.length ? new Set(mesh.spec.clusters) : undefined;
  return clusters
    .filter((c) => !allowed || allowed.has(c.metadata.name))
    .map((c) => {
      const t: ClusterTopology = { name: c.metadata.name, network: c.spec.network, region: c.spec.region, zones: c.spec.zones };
      const lv = c.status?.liveness;
      if (lv && lv.state !== 'Live' && c.metadata.name !== self) t.liveness = { state: lv.state, lastHeartbeat: lv.lastHeartbeat ?? lv.since };
      return t;
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function partKey(cluster: string, ns: string, name: string): string {
  return flat(`${cluster}/${ns}/${name}`);
}

function byWorkload(a: Endpoint, b: Endpoint): number {
  return a.workload.localeCompare(b.workload);
}

function formatPorts(ports: ServicePort[]): string {
  return ports.map((p) => `${p.name}:${p.port}/${p.protocol}`).join(',');
}

function portsDiffer(ref: ServicePort[], other: ServicePort[]): string | undefined {
  const byName = new Map(ref.map((p) => [p.name, p]));
  if (ref.length !== other.length) return `${other.length} port(s) instead of ${ref.length}`;
  for (const p of other) {
    const r = byName.get(p.name);
    if (!r) return `port "${p.name}" is not in the reference definition`;
    if (r.port !== p.port) return `port "${p.name}" is ${p.port}, not ${r.port}`;
    if (r.protocol !== p.protocol) return `port "${p.name}" protocol is ${p.protocol}, not ${r.protocol}`;
  }
  return undefined;
}

/** Finds the service a hostname (with optional :port) names, for any of the documented forms. */
export function resolveHostname(view: FederatedView, target: string): { service: GlobalService; part?: ServicePart; port: ServicePort } | { error: string } {
  const m = /^(.*?)(?::(\d+))?$/.exec(target)!;
  const host = m[1]!;
  const portNum = m[2] ? Number(m[2]) : undefined;
  for (const s of view.services) {
    let part: ServicePart | undefined;
    let ports: ServicePort[] | undefined;
    if (s.hostnames.includes(host)) ports = s.ports;
    else {
      part = s.parts.find((p) => p.hostname === host);
      if (part) ports = part.ports;
    }
    if (!ports) continue;
    const port = portNum === undefined ? ports[0] : ports.find((p) => p.port === portNum);
    if (!port) return { error: `${host} has no port ${portNum}; ports: ${formatPorts(ports)}` };
    return part ? { service: s, part, port } : { service: s, port };
  }
  return { error: `no service is named ${host}` };
}
