// The synthetic fleet, as a pure function of the scale point: clusters, where
// each global service lives, its endpoints, the hot services the changes hit and
// what each light proxy subscribes to. Every process of the benchmark (the
// orchestrator, the simulated agents, the light clients) derives the same fleet
// from the same numbers, so nothing big crosses a process boundary.
import { API_VERSION, type ApiObject } from '../src/api/index.js';
import { xdsClusterName } from '../src/xdsapi/index.js';
import { prng } from '../src/util/prng.js';

export interface Scale {
  clusters: number;
  services: number;
  /** Endpoints in the whole fleet (Workloads), spread over every service part. */
  endpoints: number;
  proxies: number;
  changes: number;
  clustersPerService: number;
  /** Services each light proxy subscribes to (hot ones included). */
  subscriptions: number;
  /** Services the changes hit; every proxy subscribes to all of them. */
  hot: number;
}

export interface ClusterInfo {
  index: number;
  name: string;
  network: string;
  region: string;
  zones: string[];
}

export interface ServiceInfo {
  index: number;
  name: string;
  namespace: string;
  host: string;
  port: number;
  /** Cluster indexes holding a part of the service. */
  clusters: number[];
}

/** Workload port of every synthetic endpoint (nothing listens there: connections are refused at once). */
export const WORKLOAD_PORT = 8080;
/** Index of agent A (changes are registered there) and of agent B (the measured agent). */
export const AGENT_A = 0;
export const AGENT_B = 1;

export function clusterInfo(i: number): ClusterInfo {
  const region = `region${i % 4}`;
  return { index: i, name: `cluster${String(i + 1).padStart(4, '0')}`, network: 'net1', region, zones: [`${region}-a`, `${region}-b`] };
}

export function clusterObject(c: ClusterInfo): ApiObject {
  return { apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: c.name }, spec: { network: c.network, region: c.region, zones: c.zones } };
}

export function namespaces(scale: Scale): number {
  return Math.max(1, Math.ceil(scale.services / 100));
}

export function serviceInfo(scale: Scale, s: number): ServiceInfo {
  const ns = `ns-${s % namespaces(scale)}`;
  const name = `svc-${s}`;
  const cps = Math.min(scale.clustersPerService, scale.clusters);
  // Consecutive clusters from a start that walks the ring by cps: parts spread evenly.
  const start = (s * cps) % scale.clusters;
  const clusters = Array.from({ length: cps }, (_, j) => (start + j) % scale.clusters);
  return { index: s, name, namespace: ns, host: `${name}.${ns}`, port: 7000 + (s % 1000), clusters };
}

/** The hot services: the first `hot` services that have a part in agent A's cluster (changes register there). */
export function hotServices(scale: Scale): ServiceInfo[] {
  const out: ServiceInfo[] = [];
  for (let s = 0; s < scale.services && out.length < scale.hot; s++) {
    const svc = serviceInfo(scale, s);
    if (svc.clusters.includes(AGENT_A)) out.push(svc);
  }
  if (out.length < scale.hot) throw new Error(`only ${out.length} services have a part in ${clusterInfo(AGENT_A).name}; need ${scale.hot} hot services`);
  return out;
}

/** 127.16.0.0 and up, one address per endpoint: loopback, unique, and nothing listens on it. */
export function endpointAddress(e: number): string {
  return `127.${16 + (e >> 16)}.${(e >> 8) & 255}.${e & 255}`;
}

export interface EndpointInfo {
  /** Global endpoint index (also picks the address). */
  e: number;
  service: ServiceInfo;
  cluster: ClusterInfo;
  name: string;
  address: string;
  zone: string;
}

/**
 * Calls fn for every endpoint of the clusters in `only` (all when undefined), in
 * a fixed order. Parts are (service, j) in service order; the fleet's endpoints
 * are dealt over them as evenly as possible.
 */
export function forEachEndpoint(scale: Scale, only: Set<number> | undefined, fn: (ep: EndpointInfo) => void): void {
  const cps = Math.min(scale.clustersPerService, scale.clusters);
  const parts = scale.services * cps;
  const base = Math.floor(scale.endpoints / parts);
  const extra = scale.endpoints % parts;
  let e = 0;
  for (let s = 0; s < scale.services; s++) {
    const svc = serviceInfo(scale, s);
    for (let j = 0; j < cps; j++) {
      const p = s * cps + j;
      const n = base + (p < extra ? 1 : 0);
      const ci = svc.clusters[j]!;
      if (only && !only.has(ci)) {
        e += n;
        continue;
      }
      const cluster = clusterInfo(ci);
      for (let k = 0; k < n; k++, e++) {
        fn({ e, service: svc, cluster, name: `${svc.name}-${ci}-${k}`, address: endpointAddress(e), zone: cluster.zones[e % cluster.zones.length]! });
      }
    }
  }
}

/** The Service and Workload objects each of these clusters reports (what its agent would send), in one pass over the fleet. */
export function clusterObjects(scale: Scale, only: Set<number>): Map<number, ApiObject[]> {
  const services = new Map<number, Map<number, ApiObject>>();
  const workloads = new Map<number, ApiObject[]>();
  for (const ci of only) {
    services.set(ci, new Map());
    workloads.set(ci, []);
  }
  forEachEndpoint(scale, only, (ep) => {
    const mine = services.get(ep.cluster.index)!;
    if (!mine.has(ep.service.index)) mine.set(ep.service.index, serviceObject(ep.service, ep.cluster.name));
    workloads.get(ep.cluster.index)!.push({
      apiVersion: API_VERSION,
      kind: 'Workload',
      metadata: { name: ep.name, namespace: ep.service.namespace },
      spec: { cluster: ep.cluster.name, service: ep.service.name, address: ep.address, ports: { grpc: WORKLOAD_PORT }, serviceAccount: 'default', zone: ep.zone, health: 'HEALTHY' },
    });
  });
  // A part with no endpoint (fewer endpoints than parts) still exists as a Service.
  for (let s = 0; s < scale.services; s++) {
    const svc = serviceInfo(scale, s);
    for (const ci of svc.clusters) {
      const mine = services.get(ci);
      if (mine && !mine.has(s)) mine.set(s, serviceObject(svc, clusterInfo(ci).name));
    }
  }
  return new Map([...only].map((ci) => [ci, [...services.get(ci)!.values(), ...workloads.get(ci)!]]));
}

function serviceObject(svc: ServiceInfo, cluster: string): ApiObject {
  return {
    apiVersion: API_VERSION,
    kind: 'Service',
    metadata: { name: svc.name, namespace: svc.namespace },
    spec: { cluster, ports: [{ name: 'grpc', port: svc.port, protocol: 'GRPC' }], exported: true },
  };
}

/** Resource names a proxy subscribes to for one service (by the naming convention of docs/naming.md). */
export function resourceNames(svc: ServiceInfo): { listener: string; route: string; cluster: string; endpoints: string } {
  const c = xdsClusterName(svc.host, svc.port);
  return { listener: svc.host, route: svc.host, cluster: c, endpoints: c };
}

/** Service indexes proxy n subscribes to: every hot service, then distinct random others. */
export function proxySubscriptions(scale: Scale, n: number): number[] {
  const hot = hotServices(scale).map((s) => s.index);
  const want = Math.min(Math.max(scale.subscriptions, hot.length), scale.services);
  const chosen = new Set(hot);
  const rnd = prng(0x5eed + n * 7919);
  while (chosen.size < want) chosen.add(Math.floor(rnd() * scale.services));
  return [...chosen];
}

/** The change series: pairs (register, then deregister the same endpoint), rotating over the hot services. */
export interface Change {
  i: number;
  service: ServiceInfo;
  register: boolean;
  name: string;
  address: string;
}

export function change(scale: Scale, i: number, series: 'meshfed' | 'floor' | 'check'): Change {
  const hot = hotServices(scale);
  const pair = Math.floor(i / 2);
  const service = hot[pair % hot.length]!;
  // Addresses after the fleet's own, different per series so no change collides with an earlier one.
  const offset = { meshfed: 0, floor: 1_000_000, check: 2_000_000 }[series];
  return { i, service, register: i % 2 === 0, name: `bench-${series}-${pair}`, address: endpointAddress(scale.endpoints + offset + pair) };
}
