// Which policies apply to a global service for clients in one cluster, and the
// precedence rule when several select it: per field, the OLDEST policy wins
// (creation time at the hub, then name). The losers are reported as conflicts
// in their status. Pure: the agent (per changed service), the hub (status) and
// `meshfed plan` all use it.
import { meshSettings, type Mesh } from '../api/index.js';
import type { FederatedView, GlobalService } from '../federation/types.js';
import type { AccessPolicy } from './access/kind.js';
import { accessStatuses } from './access/status.js';
import { appliesIn, byAge, policyId, selectorMatches, selects, type PolicyObject } from './common.js';
import type { FailoverPolicy, FailoverPolicySpec } from './failover/kind.js';
import { subsetName, type LoadBalancing, type OutlierDetection, type Route, type TrafficPolicy } from './traffic/kind.js';

export interface PolicySet {
  traffic: TrafficPolicy[];
  failover: FailoverPolicy[];
  /** Enforced by servers (RBAC), not by the client resources: resolveServicePolicy ignores them. */
  access: AccessPolicy[];
}

export const POLICY_KINDS = new Set(['TrafficPolicy', 'FailoverPolicy', 'AccessPolicy']);

/** A set from any objects (non-policies ignored), each list oldest first. */
export function policySet(objects: Iterable<{ kind: string }>): PolicySet {
  const traffic: TrafficPolicy[] = [];
  const failover: FailoverPolicy[] = [];
  const access: AccessPolicy[] = [];
  for (const o of objects) {
    if (o.kind === 'TrafficPolicy') traffic.push(o as TrafficPolicy);
    else if (o.kind === 'FailoverPolicy') failover.push(o as FailoverPolicy);
    else if (o.kind === 'AccessPolicy') access.push(o as AccessPolicy);
  }
  traffic.sort(byAge);
  failover.sort(byAge);
  access.sort(byAge);
  return { traffic, failover, access };
}

export interface Winner<T> {
  value: T;
  /** "TrafficPolicy ns/name" */
  from: string;
}

/** What applies to one global service for clients in one cluster, after precedence. */
export interface ServicePolicy {
  routes?: Winner<Route[]>;
  loadBalancing?: Winner<LoadBalancing>;
  outlierDetection?: Winner<OutlierDetection>;
  failover?: Winner<Pick<FailoverPolicySpec, 'affinity' | 'order' | 'clusters'>>;
}

export interface PolicyConflict {
  policy: string;
  service: string;
  field: string;
  winner: string;
  message: string;
}

const TRAFFIC_FIELDS = ['routes', 'loadBalancing', 'outlierDetection'] as const;

export function resolveServicePolicy(service: GlobalService, set: PolicySet, sourceCluster: string): { policy: ServicePolicy; conflicts: PolicyConflict[] } {
  const policy: ServicePolicy = {};
  const conflicts: PolicyConflict[] = [];
  const svc = `${service.name}.${service.namespace}`;
  const lose = (p: PolicyObject, field: string, winner: string) =>
    conflicts.push({
      policy: policyId(p),
      service: svc,
      field,
      winner,
      message: `${field} for ${svc} (clients in ${sourceCluster}) comes from the older ${winner}; this policy's ${field} is ignored there (oldest wins)`,
    });
  for (const p of set.traffic) {
    if (!appliesIn(p, sourceCluster) || !selects(p, service)) continue;
    for (const f of TRAFFIC_FIELDS) {
      const v = p.spec[f];
      if (v === undefined) continue;
      const cur = policy[f] as Winner<unknown> | undefined;
      if (cur) lose(p, `spec.${f}`, cur.from);
      else (policy as Record<string, Winner<unknown>>)[f] = { value: v, from: policyId(p) };
    }
  }
  for (const p of set.failover) {
    if (!appliesIn(p, sourceCluster) || !selects(p, service)) continue;
    if (policy.failover) lose(p, 'spec', policy.failover.from);
    else {
      const value: Pick<FailoverPolicySpec, 'affinity' | 'order' | 'clusters'> = { affinity: p.spec.affinity, order: p.spec.order };
      if (p.spec.clusters) value.clusters = p.spec.clusters;
      policy.failover = { value, from: policyId(p) };
    }
  }
  return { policy, conflicts };
}

export interface PolicyStatusOut {
  services: string[];
  clusters: string[];
  conflicts: { service: string; field: string; winner: string; message: string }[];
  problems: { path: string; message: string }[];
  /** AccessPolicy: the workloads that enforce it (cluster/namespace/workload (service)). */
  destinations?: string[];
  /** AccessPolicy: the identities (or patterns) it matches. */
  sources?: string[];
}

/**
 * Status of every policy against a federated view: what it selects, in which
 * source clusters it is in effect, conflicts it lost, and references the view
 * cannot satisfy (unknown service or cluster, a subset with no workload).
 */
export function policyStatuses(view: FederatedView, set: PolicySet, mesh?: Mesh): Map<string, PolicyStatusOut> {
  const out = new Map<string, PolicyStatusOut>();
  const clusters = view.clusters.map((c) => c.name);
  const all: PolicyObject[] = [...set.traffic, ...set.failover];
  for (const p of all) {
    const services = view.services.filter((s) => selects(p, s));
    const st: PolicyStatusOut = {
      services: services.map((s) => `${s.name}.${s.namespace}`),
      clusters: services.length ? clusters.filter((c) => appliesIn(p, c)) : [],
      conflicts: [],
      problems: [],
    };
    p.spec.destinations.forEach((d, i) => {
      if (!view.services.some((s) => selectorMatches(d, p.metadata.namespace, s))) {
        const what = [d.name && `named "${d.name}"`, d.cluster && `in cluster "${d.cluster}"`, d.labels && `labelled ${JSON.stringify(d.labels)}`].filter(Boolean).join(', ');
        st.problems.push({ path: `/spec/destinations/${i}`, message: `no service in namespace "${p.metadata.namespace}" ${what || ''}`.trim() });
      }
    });
    p.spec.sources?.forEach((s, i) => {
      if (!clusters.includes(s.cluster)) st.problems.push({ path: `/spec/sources/${i}/cluster`, message: `no member cluster "${s.cluster}"` });
    });
    if (p.kind === 'FailoverPolicy') {
      (p as FailoverPolicy).spec.clusters?.forEach((c, i) => {
        if (!clusters.includes(c)) st.problems.push({ path: `/spec/clusters/${i}`, message: `no member cluster "${c}"` });
      });
    }
    if (p.kind === 'TrafficPolicy') {
      (p as TrafficPolicy).spec.routes?.forEach((r, i) =>
        r.split?.forEach((t, j) => {
          const path = `/spec/routes/${i}/split/${j}`;
          if (t.cluster !== undefined && !clusters.includes(t.cluster)) {
            st.problems.push({ path: `${path}/cluster`, message: `no member cluster "${t.cluster}"` });
            return;
          }
          for (const s of services) {
            if (subsetEndpoints(s, t).length === 0 && t.weight > 0) {
              st.problems.push({
                path: t.subset ? `${path}/subset` : `${path}/cluster`,
                message: `no workload of ${s.name}.${s.namespace} matches ${subsetName(t) || 'the target'}: its ${t.weight}% of calls would fail (UNAVAILABLE)`,
              });
            }
          }
        }),
      );
    }
    out.set(policyId(p), st);
  }
  if (set.access.length > 0) {
    const m = meshSettings(mesh);
    const security = { trustDomain: m.trustDomain, mode: m.mtlsMode, serviceModes: m.serviceModes };
    for (const [id, st] of accessStatuses(view, set.access, security, m.accessDefault)) out.set(id, st);
  }
  for (const c of clusters) {
    for (const s of view.services) {
      for (const x of resolveServicePolicy(s, set, c).conflicts) {
        const st = out.get(x.policy)!;
        if (!st.conflicts.some((y) => y.service === x.service && y.field === x.field && y.winner === x.winner)) {
          st.conflicts.push({ service: x.service, field: x.field, winner: x.winner, message: x.message.replace(` (clients in ${c})`, '') });
        }
      }
    }
  }
  return out;
}

/** Endpoints of the global service a split target selects (parts in the global service only). */
export function subsetEndpoints(s: GlobalService, t: { cluster?: string; subset?: Record<string, string> }) {
  return s.parts
    .filter((p) => p.inGlobal && (t.cluster === undefined || p.cluster === t.cluster))
    .flatMap((p) => p.endpoints)
    .filter((e) => Object.entries(t.subset ?? {}).every(([k, v]) => e.labels[k] === v));
}
