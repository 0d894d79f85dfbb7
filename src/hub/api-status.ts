// The hub API's read answers that are computed, not stored, apart from HTTP:
// the federated view (globalservices), policy status (selection, conflicts,
// problems) and Cluster counts, added to objects at read time. The federated
// view and policy statuses come from a FederatedViewCache: computed once per
// store revision, shared by every read until the store changes.
import type { ApiObject } from '../api/index.js';
import type { Store } from '../store/store.js';
import type { FederatedViewCache } from './federated-view.js';
import { POLICY_KINDS } from '../registry.js';

/** GET globalservices: the federated view. */
export async function globalServicesAnswer(store: Store, views: FederatedViewCache): Promise<unknown> {
  const view = await views.view();
  return { items: view.services, clusters: view.clusters, revision: store.revision() };
}

/** Status computed at read time: Cluster counts, policy status (selection, conflicts, problems). */
export async function withStatus(store: Store, views: FederatedViewCache, kind: string, items: ApiObject[]): Promise<ApiObject[]> {
  if (kind === 'Cluster') return withCounts(store, items);
  if (!POLICY_KINDS.has(kind) || items.length === 0) return items;
  const statuses = await views.policyStatuses();
  return items.map((o) => {
    const st = statuses.get(`${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    return st ? { ...o, status: st } : o;
  });
}

/**
 * Clusters with how many services and workloads their agents reported. Counted
 * at read time: storing counts would rewrite the Cluster (and push it to every
 * agent) on every report.
 */
async function withCounts(store: Store, clusters: ApiObject[]): Promise<ApiObject[]> {
  return Promise.all(
    clusters.map(async (c) => ({
      ...c,
      status: {
        ...((c.status as object | undefined) ?? {}),
        services: await store.count({ kind: 'Service', cluster: c.metadata.name }),
        workloads: await store.count({ kind: 'Workload', cluster: c.metadata.name }),
      },
    })),
  );
}
