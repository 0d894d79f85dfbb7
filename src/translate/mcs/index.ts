// MCS consumer side (KEP-1645), pure: the agent's federated view in, the
// Kubernetes objects its cluster should hold out. No I/O; the applier
// (src/kube/mcs-importer.ts) writes the result and removes what is no longer in it.
//
// What is produced, for the agent of cluster C:
// - a ServiceImport (type ClusterSetIP, the global service's ports, status.clusters
//   the clusters whose exports form it) for every global service C imports: one
//   with an exported, non-conflicting part in another cluster, in a namespace C
//   imports and that exists in C (namespace sameness: a missing namespace is
//   skipped and reported, never created);
// - EndpointSlices for the remote endpoints: one set per source cluster, split
//   by address type and by port mapping (a slice has one port list), at most
//   MAX_ENDPOINTS_PER_SLICE each; names derive from the service, the source
//   cluster, a hash of the split key and the chunk index, so they are stable
//   across recomputes;
// - for each ServiceExport in C, the status conditions Valid / Ready / Conflict
//   (Conflict from federate()'s decision: oldest export wins).
// Invariants: the output is a function of the input (no clock: `now` is given;
// a condition whose status did not change keeps its lastTransitionTime); output
// order is sorted, so a golden file or a diff is stable.
import { isIPv4, isIPv6 } from 'node:net';
import type { ServicePort } from '../../api/index.js';
import type { Endpoint, FederatedView, GlobalService, ServicePart } from '../../federation/types.js';
import {
  AGENT_CLUSTER_LABEL,
  type AddressType,
  type Condition,
  DISCOVERY_API_VERSION,
  type EndpointSlice,
  type LocalServiceExport,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  MAX_ENDPOINTS_PER_SLICE,
  MCS_API_VERSION,
  MCS_SERVICE_NAME_LABEL,
  MCS_SOURCE_CLUSTER_LABEL,
  type ServiceExportStatus,
  type ServiceImport,
  type SkippedService,
  SLICE_MANAGED_BY,
  SLICE_MANAGED_BY_LABEL,
  type SliceEndpoint,
  type SlicePort,
} from './objects.js';

export * from './objects.js';

export interface McsInput {
  /** The agent's cluster. */
  cluster: string;
  view: FederatedView;
  /** Namespaces this cluster imports (empty or unset: all). */
  importNamespaces?: readonly string[];
  /** Namespaces that exist in the cluster; unset: not known, every namespace is taken to exist. */
  namespaces?: ReadonlySet<string>;
  /** The cluster's ServiceExports. */
  serviceExports: readonly LocalServiceExport[];
  /** RFC 3339 time for a condition that changes now. */
  now: string;
}

export interface McsDesired {
  serviceImports: ServiceImport[];
  endpointSlices: EndpointSlice[];
  exportStatuses: ServiceExportStatus[];
  skipped: SkippedService[];
}

export function translateMcs(input: McsInput): McsDesired {
  const out: McsDesired = { serviceImports: [], endpointSlices: [], exportStatuses: [], skipped: [] };
  const imported = input.importNamespaces?.length ? new Set(input.importNamespaces) : undefined;
  const services = [...input.view.services].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  for (const g of services) {
    const remote = g.parts.filter((p) => p.cluster !== input.cluster && p.inGlobal);
    if (remote.length === 0) continue;
    if (imported && !imported.has(g.namespace)) continue;
    if (input.namespaces && !input.namespaces.has(g.namespace)) {
      out.skipped.push({ namespace: g.namespace, name: g.name, reason: `namespace "${g.namespace}" does not exist in cluster ${input.cluster} (MCS namespace sameness: meshfed does not create it)` });
      continue;
    }
    out.serviceImports.push(serviceImportOf(g, input.cluster));
    for (const part of remote) out.endpointSlices.push(...slicesOf(g, part, input.cluster, out.skipped));
  }
  const byKey = new Map(input.view.services.map((g) => [`${g.namespace}/${g.name}`, g]));
  const exports = [...input.serviceExports].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  for (const se of exports) out.exportStatuses.push(exportStatusOf(se, byKey.get(`${se.namespace}/${se.name}`), input));
  return out;
}

function ownerLabels(cluster: string): Record<string, string> {
  return { [MANAGED_BY_LABEL]: MANAGED_BY, [AGENT_CLUSTER_LABEL]: cluster };
}

function serviceImportOf(g: GlobalService, cluster: string): ServiceImport {
  return {
    apiVersion: MCS_API_VERSION,
    kind: 'ServiceImport',
    metadata: { name: g.name, namespace: g.namespace, labels: ownerLabels(cluster) },
    spec: { type: 'ClusterSetIP', ports: g.ports.map((p) => ({ name: p.name, protocol: 'TCP' as const, ...appProtocolOf(p), port: p.port })) },
    status: { clusters: g.parts.filter((p) => p.inGlobal).map((p) => ({ cluster: p.cluster })) },
  };
}

/**
 * meshfed's protocols are L7 over TCP: Kubernetes' protocol is TCP and the L7
 * protocol is the appProtocol hint (`grpc` as Istio and Linkerd read it).
 */
function appProtocolOf(p: ServicePort): { appProtocol?: string } {
  if (p.protocol === 'HTTP') return { appProtocol: 'http' };
  if (p.protocol === 'GRPC') return { appProtocol: 'grpc' };
  return {};
}

/** DNS-1123 subdomain, as an FQDN EndpointSlice address must be. */
const FQDN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function addressTypeOf(address: string): AddressType | undefined {
  if (isIPv4(address)) return 'IPv4';
  if (isIPv6(address)) return 'IPv6';
  return FQDN.test(address) ? 'FQDN' : undefined;
}

/** One source cluster's endpoints as EndpointSlices (see the header for the split and the names). */
function slicesOf(g: GlobalService, part: ServicePart, cluster: string, skipped: SkippedService[]): EndpointSlice[] {
  const groups = new Map<string, { addressType: AddressType; ports: SlicePort[]; endpoints: Endpoint[] }>();
  const bad: string[] = [];
  for (const e of part.endpoints) {
    const addressType = addressTypeOf(e.address);
    if (!addressType) {
      bad.push(`${e.workload} (${e.address})`);
      continue;
    }
    const ports: SlicePort[] = [];
    for (const p of g.ports) {
      const target = e.ports[p.name];
      if (target !== undefined) ports.push({ name: p.name, port: target, protocol: 'TCP', ...appProtocolOf(p) });
    }
    if (ports.length === 0) continue; // serves none of the global service's ports
    const key = `${addressType}|${ports.map((p) => `${p.name}:${p.port}`).join(',')}`;
    const group = groups.get(key);
    if (group) group.endpoints.push(e);
    else groups.set(key, { addressType, ports, endpoints: [e] });
  }
  if (bad.length > 0) {
    skipped.push({
      namespace: g.namespace,
      name: g.name,
      reason: `endpoints of cluster ${part.cluster} with an address that is neither an IP nor a DNS name were left out: ${bad.slice(0, 5).join(', ')}${bad.length > 5 ? ` and ${bad.length - 5} more` : ''}`,
    });
  }
  const slices: EndpointSlice[] = [];
  for (const key of [...groups.keys()].sort()) {
    const group = groups.get(key)!;
    const endpoints = [...group.endpoints].sort((a, b) => a.address.localeCompare(b.address) || a.workload.localeCompare(b.workload));
    const base = `${g.name}-${part.cluster}-${hash6(key)}`;
    for (let i = 0; i * MAX_ENDPOINTS_PER_SLICE < endpoints.length; i++) {
      slices.push({
        apiVersion: DISCOVERY_API_VERSION,
        kind: 'EndpointSlice',
        metadata: {
          name: `${base}-${i}`,
          namespace: g.namespace,
          labels: {
            [MCS_SERVICE_NAME_LABEL]: g.name,
            [MCS_SOURCE_CLUSTER_LABEL]: part.cluster,
            [SLICE_MANAGED_BY_LABEL]: SLICE_MANAGED_BY,
            ...ownerLabels(cluster),
          },
        },
        addressType: group.addressType,
        endpoints: endpoints.slice(i * MAX_ENDPOINTS_PER_SLICE, (i + 1) * MAX_ENDPOINTS_PER_SLICE).map(sliceEndpointOf),
        ports: group.ports,
      });
    }
  }
  return slices;
}

/** HEALTHY: ready and serving; DRAINING: terminating but still serving; UNHEALTHY: neither. */
function sliceEndpointOf(e: Endpoint): SliceEndpoint {
  const conditions =
    e.health === 'HEALTHY'
      ? { ready: true, serving: true, terminating: false }
      : e.health === 'DRAINING'
        ? { ready: false, serving: true, terminating: true }
        : { ready: false, serving: false, terminating: false };
  return { addresses: [e.address], conditions, ...(e.zone ? { zone: e.zone } : {}) };
}

/** 6 hex digits of FNV-1a: short, stable names for a slice group. */
function hash6(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return (h >>> 8).toString(16).padStart(6, '0');
}

type NewCondition = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

/** KEP-1645's conditions for one of the cluster's ServiceExports. */
function exportStatusOf(se: LocalServiceExport, g: GlobalService | undefined, input: McsInput): ServiceExportStatus {
  const cluster = input.cluster;
  const part = g?.parts.find((p) => p.cluster === cluster);
  const conditions: NewCondition[] = [];
  if (!g || !part) {
    const msg = `Service ${se.namespace}/${se.name} does not exist in cluster ${cluster}`;
    conditions.push({ type: 'Valid', status: 'False', reason: 'NoService', message: msg });
    conditions.push({ type: 'Ready', status: 'False', reason: 'Pending', message: `${msg}; nothing is exported` });
  } else {
    conditions.push({ type: 'Valid', status: 'True', reason: 'Valid', message: `Service ${se.namespace}/${se.name} is exported by cluster ${cluster}` });
    const mine = g.conflicts.find((c) => c.cluster === cluster);
    if (!part.exported) {
      conditions.push({ type: 'Ready', status: 'False', reason: 'Pending', message: `the agent of cluster ${cluster} has not discovered Service ${se.namespace}/${se.name} as exported yet` });
    } else if (mine) {
      conditions.push({
        type: 'Ready',
        status: 'False',
        reason: 'Failed',
        message: `this cluster's endpoints are not in the global service ${g.name}.${g.namespace} (see the Conflict condition); they stay reachable as ${part.hostname}`,
      });
    } else {
      conditions.push({ type: 'Ready', status: 'True', reason: 'Exported', message: `exported as ${g.hostnames.join(' and ')}` });
    }
    if (mine) {
      conditions.push({ type: 'Conflict', status: 'True', reason: conflictReason(mine.field), message: `${mine.field}: ${mine.message}` });
    } else if (g.conflicts.length > 0) {
      // KEP-1645 recommends raising Conflict on every constituent export, not only the losing one.
      const losers = [...new Set(g.conflicts.map((c) => c.cluster))].sort();
      const fields = [...new Set(g.conflicts.map((c) => c.field))].sort();
      conditions.push({
        type: 'Conflict',
        status: 'True',
        reason: fields.map(conflictReason).join(','),
        message: `${fields.join(', ')}: the definitions of ${losers.join(', ')} conflict with ${g.referenceCluster}'s, which the global service uses (oldest export wins)${g.referenceCluster === cluster ? '; this cluster is the reference' : ''}`,
      });
    } else {
      conditions.push({ type: 'Conflict', status: 'False', reason: 'NoConflicts', message: 'no conflicting definitions in the cluster set' });
    }
  }
  const previous = new Map((se.conditions ?? []).map((c) => [c.type, c]));
  return {
    apiVersion: MCS_API_VERSION,
    kind: 'ServiceExport',
    metadata: { name: se.name, namespace: se.namespace },
    status: {
      conditions: conditions.map((c) => {
        const before = previous.get(c.type);
        const lastTransitionTime = before && before.status === c.status && before.lastTransitionTime ? before.lastTransitionTime : input.now;
        return { ...c, lastTransitionTime, ...(se.generation !== undefined ? { observedGeneration: se.generation } : {}) };
      }),
    },
  };
}

function conflictReason(field: string): string {
  return field === 'spec.ports' ? 'PortConflict' : 'Conflict';
}
