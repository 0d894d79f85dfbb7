// The Kubernetes objects the MCS translation produces, and the labels that mark
// them: the vocabulary shared by the pure translation (src/translate/mcs) and
// the applier that writes them (src/kube/mcs-importer.ts). Pure: types and
// constants only.
//
// Invariants: every object meshfed writes carries OWNER_LABELS plus
// AGENT_CLUSTER_LABEL (the garbage collector lists by exactly these, so an
// object without them is never deleted by meshfed); EndpointSlices also carry
// `endpointslice.kubernetes.io/managed-by: meshfed.io`, which the Kubernetes
// discovery source ignores (an agent never re-exports what it imported).

export const MCS_API_VERSION = 'multicluster.x-k8s.io/v1alpha1';
export const DISCOVERY_API_VERSION = 'discovery.k8s.io/v1';

/** KEP-1645's labels on the EndpointSlices of an imported service. */
export const MCS_SERVICE_NAME_LABEL = 'multicluster.kubernetes.io/service-name';
export const MCS_SOURCE_CLUSTER_LABEL = 'multicluster.kubernetes.io/source-cluster';
/** Kubernetes' EndpointSlice controller label; ours, so kube-controller-manager and meshfed's discovery leave the slices alone. */
export const SLICE_MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const SLICE_MANAGED_BY = 'meshfed.io';
/** meshfed's ownership: the garbage collector lists objects by these two labels. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'meshfed';
export const AGENT_CLUSTER_LABEL = 'meshfed.io/agent-cluster';

/** Kubernetes' default maximum of endpoints per EndpointSlice (kube-controller-manager --max-endpoints-per-slice). */
export const MAX_ENDPOINTS_PER_SLICE = 100;

/** The label selector (list query) that finds what the agent of `cluster` wrote. */
export function ownedSelector(cluster: string): string {
  return `${MANAGED_BY_LABEL}=${MANAGED_BY},${AGENT_CLUSTER_LABEL}=${cluster}`;
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** metav1.Condition as the MCS CRDs define it (every field but observedGeneration required). */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface ServiceImportPort {
  name: string;
  protocol: 'TCP';
  appProtocol?: string;
  port: number;
}

export interface ServiceImport {
  apiVersion: typeof MCS_API_VERSION;
  kind: 'ServiceImport';
  metadata: ObjectMeta;
  spec: { type: 'ClusterSetIP'; ports: ServiceImportPort[] };
  /** Written through the status subresource. */
  status: { clusters: { cluster: string }[] };
}

export type AddressType = 'IPv4' | 'IPv6' | 'FQDN';

export interface SliceEndpoint {
  addresses: string[];
  conditions: { ready: boolean; serving: boolean; terminating: boolean };
  zone?: string;
}

export interface SlicePort {
  name: string;
  port: number;
  protocol: 'TCP';
  appProtocol?: string;
}

export interface EndpointSlice {
  apiVersion: typeof DISCOVERY_API_VERSION;
  kind: 'EndpointSlice';
  metadata: ObjectMeta;
  addressType: AddressType;
  endpoints: SliceEndpoint[];
  ports: SlicePort[];
}

/** The apply configuration of a ServiceExport's status (written through /status). */
export interface ServiceExportStatus {
  apiVersion: typeof MCS_API_VERSION;
  kind: 'ServiceExport';
  metadata: { name: string; namespace: string };
  status: { conditions: Condition[] };
}

/** A ServiceExport found in the local cluster: what the translation needs of it. */
export interface LocalServiceExport {
  namespace: string;
  name: string;
  generation?: number;
  /** Its current status.conditions (their lastTransitionTime is kept while a condition's status stays). */
  conditions?: Condition[];
}

/** A service the translation left out, and why (reported in the importer's status). */
export interface SkippedService {
  namespace: string;
  name: string;
  reason: string;
}
