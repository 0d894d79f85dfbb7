// The federated view: what every cluster exports, merged by namespace/name.
// Produced by federate() (pure), consumed by the translators (xDS, later Istio).
import type { Health, ServicePort } from '../api/index.js';

export interface ClusterTopology {
  name: string;
  network: string;
  region: string;
  zones: string[];
  /** Set while the hub has not heard the cluster's agent (Cluster status.liveness): its endpoints are stale. Unset when Live. */
  liveness?: { state: 'Suspect' | 'Withdrawn'; lastHeartbeat: string };
}

export interface Endpoint {
  /** Workload name (unique per cluster and namespace). */
  workload: string;
  cluster: string;
  network: string;
  region: string;
  zone: string;
  address: string;
  /** service port name -> workload port */
  ports: Record<string, number>;
  health: Health;
  labels: Record<string, string>;
  serviceAccount: string;
  /** Its cluster is Suspect or Withdrawn: when the hub last heard that cluster's agent. */
  staleSince?: string;
  /** Its cluster is Withdrawn: the endpoint is served at the last priority (used only when nothing else is left). */
  withdrawn?: true;
}

/** One cluster's part of a service. Always addressable by its per-cluster hostname. */
export interface ServicePart {
  cluster: string;
  hostname: string;
  ports: ServicePort[];
  exported: boolean;
  /** Whether this part's endpoints are in the global service (false when not exported or in conflict). */
  inGlobal: boolean;
  /** false: the part is in the global service for its own cluster's clients only (Service spec.shared). */
  shared?: false;
  /** The Service's failover affinity in this cluster (spec.affinity): the default for this cluster's clients. */
  affinity?: 'local' | 'remote' | 'none';
  /** When the part's definition is first seen by the hub (oldest export wins a conflict). */
  since: string;
  /** The Service's labels in this cluster (policies select services by them); unset when none. */
  labels?: Record<string, string>;
  endpoints: Endpoint[];
}

export interface FederationConflict {
  cluster: string;
  field: string;
  message: string;
}

export interface GlobalService {
  name: string;
  namespace: string;
  /** Global hostnames: name.ns and name.ns.svc.clusterset.local */
  hostnames: string[];
  /** Ports of the global service: from the reference (oldest) definition. */
  ports: ServicePort[];
  /** Cluster whose definition is the reference. */
  referenceCluster: string;
  /** Parts in cluster-name order. */
  parts: ServicePart[];
  conflicts: FederationConflict[];
}

export interface FederatedView {
  clusters: ClusterTopology[];
  /** Sorted by namespace, then name. */
  services: GlobalService[];
}
