// A Backend is what one xDS cluster balances over: one port of a global service
// or of one cluster's part. Every client builder works from it, so policies can
// look up what they apply to (service, port, part) without new parameters.
import type { ServicePort } from '../../api/index.js';
import type { GlobalService, ServicePart } from '../../federation/types.js';
import type { ServicePolicy } from '../../policies/resolve.js';

export interface Backend {
  /** xDS cluster (and ClusterLoadAssignment) name: outbound|PORT||HOST. */
  clusterName: string;
  /** Host in the cluster name: the global hostname, or a part's per-cluster hostname. */
  host: string;
  service: GlobalService;
  port: ServicePort;
  /** Parts whose endpoints are balanced over, in cluster-name order. */
  parts: ServicePart[];
  /** Set when the backend is one cluster's part (its per-cluster hostname). */
  part?: ServicePart;
  /** Policies in effect for this service and the agent's clients (after precedence). */
  policy?: ServicePolicy;
  /** True for the global hostnames (where routes and failover apply). */
  global?: boolean;
  /** Set for a split target: only endpoints in this cluster and/or with these labels. */
  subset?: { name: string; cluster?: string; subset?: Record<string, string> };
}
