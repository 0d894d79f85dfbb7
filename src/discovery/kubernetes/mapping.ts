// Pure mapping from the informers' caches to meshfed's discovered objects: one
// Kubernetes Service (with its EndpointSlices, their Pods and Nodes, its
// Namespace and ServiceExport) -> one meshfed Service and its Workloads. No I/O;
// the same caches always give the same objects, so a re-list or a restart
// invents nothing. The objects are built in newService/newWorkload only.
//
// Rules (docs/kubernetes.md, "What the agent reads"):
// - Services in watched namespaces, except ExternalName ones (no endpoints) and
//   those with no TCP port; headless Services are discovered like any other
//   (their endpoints are Pod IPs, which is what xDS clients dial anyway).
// - Port protocol: appProtocol `grpc` / `kubernetes.io/h2c` -> GRPC, `http` /
//   `kubernetes.io/http` -> HTTP, any other appProtocol -> TCP; without one, the
//   port name's prefix (Istio's convention: grpc, grpc-*, http2, h2c -> GRPC;
//   http, http-* -> HTTP); else TCP. UDP and SCTP ports are skipped.
// - An unnamed port (Kubernetes allows one, only when it is the only port) is
//   named after its protocol: grpc, http or tcp (a VM registered with
//   `meshfed register` defaults to "grpc", so both federate).
// - EndpointSlices labelled kubernetes.io/service-name, except those managed by
//   meshfed.io (the agent's own, for imported services): one Workload per
//   endpoint address. Health: ready (unset counts as ready, as the API says) ->
//   HEALTHY; serving and terminating -> DRAINING; otherwise UNHEALTHY.
// - Workload name: the Pod's name when it starts with "<service>-", else
//   "<service>-<pod>"; without a Pod, "<service>-<ip with dashes>". Labels: the
//   Pod's; service account: the Pod's spec.serviceAccountName; zone: the Node's
//   topology.kubernetes.io/zone, else the endpoint's own zone.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { API_VERSION, ServiceKind, WorkloadKind, type Health, type Service, type ServicePort, type Workload } from '../../api/index.js';
import { exportRules, type Problem } from './export.js';
import type { KubeEndpointSlice, KubeNamespace, KubeNode, KubeObject, KubePod, KubeService } from './types.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
/** The managed-by value of the EndpointSlices meshfed writes (imported services): never read back. */
export const MESHFED_MANAGER = 'meshfed.io';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const REGION_LABEL = 'topology.kubernetes.io/region';

/** What the mapping reads; the source's caches implement it. */
export interface CacheView {
  service(namespace: string, name: string): KubeService | undefined;
  slicesOf(namespace: string, service: string): Iterable<KubeEndpointSlice>;
  pod(namespace: string, name: string): KubePod | undefined;
  node(name: string): KubeNode | undefined;
  namespace(name: string): KubeNamespace | undefined;
  serviceExport(namespace: string, name: string): KubeObject | undefined;
}

export interface Mapped {
  /** Unset: the Service is not discovered (gone, ExternalName, no TCP port). */
  service?: Service;
  workloads: Workload[];
  problems: Problem[];
  /** Pods (namespace/name) and Nodes the result read: a change of one of them recomputes this service. */
  pods: string[];
  nodes: string[];
  /** Why it is exported (for status), empty when it is not. */
  exportReasons: string[];
}

/** The one place a discovered Service is built. */
export function newService(cluster: string, namespace: string, name: string, spec: Omit<Service['spec'], 'cluster'>, labels?: Record<string, string>, creationTimestamp?: string): Service {
  const metadata: Service['metadata'] = { name, namespace };
  if (labels && Object.keys(labels).length > 0) metadata.labels = labels;
  if (creationTimestamp) metadata.creationTimestamp = creationTimestamp;
  return { apiVersion: API_VERSION, kind: 'Service', metadata, spec: { cluster, ...spec } };
}

/** The one place a discovered Workload is built. */
export function newWorkload(cluster: string, namespace: string, name: string, spec: Omit<Workload['spec'], 'cluster'>, labels?: Record<string, string>): Workload {
  const metadata: Workload['metadata'] = { name, namespace };
  if (labels && Object.keys(labels).length > 0) metadata.labels = labels;
  return { apiVersion: API_VERSION, kind: 'Workload', metadata, spec: { cluster, ...spec } };
}

export function protocolOf(port: { name?: string; appProtocol?: string }): ServicePort['protocol'] {
  const ap = port.appProtocol?.toLowerCase();
  if (ap) {
    if (ap === 'grpc' || ap === 'kubernetes.io/h2c') return 'GRPC';
    if (ap === 'http' || ap === 'kubernetes.io/http') return 'HTTP';
    return 'TCP';
  }
  const name = port.name ?? '';
  if (/^(grpc|http2|h2c)(-|$)/.test(name)) return 'GRPC';
  if (/^http(-|$)/.test(name)) return 'HTTP';
  return 'TCP';
}

function timestamp(v: unknown): string | undefined {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : v.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return typeof v === 'string' && v ? v : undefined;
}

function objRef(kind: string, namespace: string, name: string): Problem['object'] {
  return { kind, namespace, name };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A DNS label from `want`, or a stable hashed form when it is too long or not one. */
function labelName(want: string, service: string): string {
  if (want.length <= 63 && DNS_LABEL.test(want)) return want;
  const hash = createHash('sha256').update(want).digest('hex').slice(0, 10);
  const base = service.slice(0, 63 - 11).replace(/-+$/, '');
  return `${base}-${hash}`;
}

function workloadName(service: string, pod: string | undefined, ip: string): string {
  if (pod) return labelName(pod.startsWith(`${service}-`) ? pod : `${service}-${pod}`, service);
  return labelName(`${service}-${ip.replace(/[.:]/g, '-')}`, service);
}

function healthOf(c: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null } | undefined): Health {
  if (c?.ready ?? true) return 'HEALTHY';
  if (c?.serving && c.terminating) return 'DRAINING';
  return 'UNHEALTHY';
}

/** Maps one Kubernetes Service (namespace/name) from the caches. */
export function mapService(view: CacheView, cluster: string, namespace: string, name: string): Mapped {
  const out: Mapped = { workloads: [], problems: [], pods: [], nodes: [], exportReasons: [] };
  const svc = view.service(namespace, name);
  if (!svc || svc.spec?.type === 'ExternalName') return out;
  const ns = view.namespace(namespace);
  const rules = exportRules({
    namespace,
    name,
    annotations: svc.metadata?.annotations,
    namespaceAnnotations: ns?.metadata?.annotations,
    serviceExport: (() => {
      const se = view.serviceExport(namespace, name);
      return se !== undefined && !se.metadata?.deletionTimestamp;
    })(),
  });
  out.problems.push(...rules.problems);

  // Service ports: Kubernetes port name -> meshfed port.
  const ports: ServicePort[] = [];
  const byKubeName = new Map<string, string>();
  for (const [i, p] of (svc.spec?.ports ?? []).entries()) {
    if ((p.protocol ?? 'TCP') !== 'TCP') continue;
    const protocol = protocolOf(p);
    const pname = p.name || protocol.toLowerCase();
    if (!DNS_LABEL.test(pname) || pname.length > 15 || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
      out.problems.push({
        object: objRef('Service', namespace, name),
        field: `spec.ports[${i}]`,
        value: `${p.name ?? ''}:${p.port}`,
        reason: 'InvalidPort',
        message: `Service ${namespace}/${name}: port ${JSON.stringify(p.name ?? '')} (${p.port}) cannot be a meshfed service port (name: a DNS label of at most 15 characters); skipped`,
      });
      continue;
    }
    if (ports.some((q) => q.name === pname)) continue;
    ports.push({ name: pname, port: p.port, protocol });
    byKubeName.set(p.name ?? '', pname);
  }
  if (ports.length === 0) return out;
  const spec: Omit<Service['spec'], 'cluster'> = { ports, exported: rules.exported };
  if (rules.shared === false) spec.shared = false;
  if (rules.affinity) spec.affinity = rules.affinity;
  out.exportReasons = rules.reasons;
  const service = newService(cluster, namespace, name, spec, svc.metadata?.labels, timestamp(svc.metadata?.creationTimestamp));
  const checked = ServiceKind.check(service);
  if (!checked.ok) {
    out.problems.push({
      object: objRef('Service', namespace, name),
      field: checked.errors[0]?.path ?? '',
      value: '',
      reason: 'InvalidPort',
      message: `Service ${namespace}/${name} cannot be discovered: ${checked.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
    });
    return out;
  }
  out.service = service;

  const pods = new Set<string>();
  const nodes = new Set<string>();
  const names = new Set<string>();
  const slices = [...view.slicesOf(namespace, name)].sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
  for (const slice of slices) {
    if (slice.metadata?.labels?.[MANAGED_BY_LABEL] === MESHFED_MANAGER) continue;
    if (slice.addressType === 'FQDN') continue;
    const wlPorts: Record<string, number> = {};
    for (const sp of slice.ports ?? []) {
      const mine = byKubeName.get(sp.name ?? '');
      if (mine && typeof sp.port === 'number' && sp.port >= 1 && sp.port <= 65535 && (sp.protocol ?? 'TCP') === 'TCP') wlPorts[mine] = sp.port;
    }
    if (Object.keys(wlPorts).length === 0) continue;
    for (const ep of slice.endpoints ?? []) {
      const podName = ep.targetRef?.kind === 'Pod' ? ep.targetRef.name : undefined;
      const pod = podName ? view.pod(ep.targetRef?.namespace ?? namespace, podName) : undefined;
      if (podName) pods.add(`${ep.targetRef?.namespace ?? namespace}/${podName}`);
      const nodeName = ep.nodeName ?? pod?.spec?.nodeName;
      const node = nodeName ? view.node(nodeName) : undefined;
      if (nodeName) nodes.add(nodeName);
      const zone = node?.metadata?.labels?.[ZONE_LABEL] ?? ep.zone ?? undefined;
      const health = healthOf(ep.conditions);
      for (const address of ep.addresses ?? []) {
        if (isIP(address) === 0) continue;
        let wname = workloadName(name, podName, address);
        if (names.has(wname)) wname = labelName(`${wname}-${address.replace(/[.:]/g, '-')}`, name);
        if (names.has(wname)) continue;
        const wspec: Omit<Workload['spec'], 'cluster'> = { service: name, address, ports: wlPorts, serviceAccount: pod?.spec?.serviceAccountName || 'default', health };
        if (zone) wspec.zone = zone;
        const w = newWorkload(cluster, namespace, wname, wspec, pod?.metadata?.labels);
        const wc = WorkloadKind.check(w);
        if (!wc.ok) {
          out.problems.push({
            object: objRef('EndpointSlice', namespace, slice.metadata?.name ?? ''),
            field: 'endpoints',
            value: address,
            reason: 'InvalidEndpoint',
            message: `EndpointSlice ${namespace}/${slice.metadata?.name ?? ''}: endpoint ${address}${podName ? ` (Pod ${podName})` : ''} skipped: ${wc.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`,
          });
          continue;
        }
        names.add(wname);
        out.workloads.push(w);
      }
    }
  }
  out.pods = [...pods];
  out.nodes = [...nodes];
  return out;
}
