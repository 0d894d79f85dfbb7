// The TrafficPolicy plugin: precedence per field (routes, loadBalancing,
// outlierDetection: the oldest policy that sets a field wins it), status (what
// it selects, split targets without endpoints), and the xDS hooks (fault
// filter on client listeners, subset backends for split targets, routes,
// load balancing and outlier detection on Clusters). Pure.
import { applicable, clientPolicyStatus, policyId } from '../common.js';
import type { PolicyPlugin, PolicyStatusOut, Winner } from '../plugin.js';
import type { GlobalService } from '../../federation/types.js';
import { subsetName, TrafficPolicyKind, type LoadBalancing, type OutlierDetection, type Route, type TrafficPolicy } from './kind.js';
import { faultFilter, lbFields, outlierFields, policyRoutes, splitTargets } from './xds.js';
import { subsetClusterName } from '../../xdsapi/index.js';

/** What TrafficPolicies resolve to for one service and source cluster: each field from the oldest policy that sets it. */
export interface TrafficResolved {
  routes?: Winner<Route[]>;
  loadBalancing?: Winner<LoadBalancing>;
  outlierDetection?: Winner<OutlierDetection>;
}

const FIELDS = ['routes', 'loadBalancing', 'outlierDetection'] as const;

export const TrafficPolicyPlugin: PolicyPlugin<TrafficPolicy, TrafficResolved> = {
  kind: TrafficPolicyKind,
  enforcedBy: 'client',

  resolve(policies, service, sourceCluster, lose) {
    const out: Record<string, Winner<unknown>> = {};
    for (const p of applicable(policies, service, sourceCluster)) {
      for (const f of FIELDS) {
        const v = p.spec[f];
        if (v === undefined) continue;
        const cur = out[f];
        if (cur) lose(p, `spec.${f}`, cur.from);
        else out[f] = { value: v, from: policyId(p) };
      }
    }
    return Object.keys(out).length > 0 ? (out as TrafficResolved) : undefined;
  },

  status(view, policies) {
    const out = new Map<string, PolicyStatusOut>();
    const clusters = view.clusters.map((c) => c.name);
    for (const p of policies) {
      const { services, status } = clientPolicyStatus(view, p);
      p.spec.routes?.forEach((r, i) =>
        r.split?.forEach((t, j) => {
          const path = `/spec/routes/${i}/split/${j}`;
          if (t.cluster !== undefined && !clusters.includes(t.cluster)) {
            status.problems.push({ path: `${path}/cluster`, message: `no member cluster "${t.cluster}"` });
            return;
          }
          for (const s of services) {
            if (subsetEndpoints(s, t).length === 0 && t.weight > 0) {
              status.problems.push({
                path: t.subset ? `${path}/subset` : `${path}/cluster`,
                message:
                  t.subset === undefined && t.cluster !== undefined
                    ? `cluster "${t.cluster}" has no endpoints of ${s.name}.${s.namespace}: its ${t.weight}% of calls would fail (UNAVAILABLE)`
                    : `no workload of ${s.name}.${s.namespace} matches ${subsetName(t) || 'the target'}: its ${t.weight}% of calls would fail (UNAVAILABLE)`,
              });
            }
          }
        }),
      );
      out.set(policyId(p), status);
    }
    return out;
  },

  actionsOf: trafficActions,

  xds: {
    // Always present, empty: routes switch faults on per route, so a fault policy never changes the Listener.
    clientHttpFilters: () => [faultFilter()],
    subsets: (backend, r) => (backend.global ? splitTargets(r?.routes?.value) : []),
    routes(ctx, backend, r, routes) {
      const hashHeader = r?.loadBalancing?.value.hashHeader;
      const policy = backend.global ? r?.routes?.value : undefined;
      if (policy) {
        return policyRoutes(ctx, policy, (subset) => (subset === '' ? backend.clusterName : subsetClusterName(backend.host, backend.port.port, subset)), hashHeader);
      }
      if (!hashHeader) return routes;
      return routes.map((e) => ({ ...e, route: { ...(e.route as Record<string, unknown>), hash_policy: [{ header: { header_name: hashHeader } }] } }));
    },
    // Outlier detection goes on every Cluster, off unless a policy turns it on: see outlierFields.
    clusterFields: (_ctx, _backend, r) => ({ ...lbFields(r?.loadBalancing?.value), outlier_detection: outlierFields(r?.outlierDetection?.value) }),
  },
};

/** Actions (src/auth/rbac.ts) a TrafficPolicy uses: one per feature it sets, in a fixed order. */
export function trafficActions(p: TrafficPolicy): string[] {
  const used = new Set<string>();
  for (const r of p.spec.routes ?? []) {
    if (r.split) used.add('traffic-shift');
    if (r.fault) used.add('fault-injection');
    if (r.retries) used.add('retries');
    if (r.timeout !== undefined) used.add('timeouts');
  }
  if (p.spec.loadBalancing) used.add('load-balancing');
  if (p.spec.outlierDetection) used.add('outlier-detection');
  return TRAFFIC_ACTIONS.filter((a) => used.has(a));
}

/** Every action a TrafficPolicy can use. */
export const TRAFFIC_ACTIONS = ['traffic-shift', 'fault-injection', 'retries', 'timeouts', 'load-balancing', 'outlier-detection'];

/** Endpoints of the global service a split target selects (parts in the global service only). */
export function subsetEndpoints(s: GlobalService, t: { cluster?: string; subset?: Record<string, string> }) {
  return s.parts
    .filter((p) => p.inGlobal && (t.cluster === undefined || p.cluster === t.cluster))
    .flatMap((p) => p.endpoints)
    .filter((e) => Object.entries(t.subset ?? {}).every(([k, v]) => e.labels[k] === v));
}
